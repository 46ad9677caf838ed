//! Logging setup. Text for people, JSON (one object per line) for collectors; every request
//! runs in a span that carries its request id. Headers and query strings are never logged:
//! they carry credentials.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

pub fn init(log: &LogConfig) {
    // `Config::validate` has already accepted the filter; fall back to `info` regardless.
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    // A second init (tests that start several servers) keeps the first subscriber.
    drop(result);
}
