//! `fake-upstream`: the scripted fake upstream as a standalone server, for benchmarks and for
//! running real clients against the gateway by hand.
//!
//! Serves the default behaviour (every request succeeds, echoing its model, with usage) on
//! 127.0.0.1. The first line on stdout is the bound address (`127.0.0.1:PORT`); the server
//! runs until Ctrl-C. The journal is off so memory stays flat under load.
//!
//! ```text
//! fake-upstream [--port N] [--delay-ms MS] [--event-delay-ms MS] [--deltas N] [--control-port N]
//! ```
//!
//! With `--control-port`, a second listener on 127.0.0.1 lets a browser test change how the
//! fake answers one credential: `PUT /credentials/{api key}` with `{"status": 401,
//! "message": "…"}` (status 200 restores the normal answer). Its address is the second line
//! on stdout.

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use proxy::testing::{DEFAULT_DELTAS, FakeUpstream, Script};

/// The flags that take a value.
const FLAGS: [&str; 5] = ["--port", "--delay-ms", "--event-delay-ms", "--deltas", "--control-port"];

const USAGE: &str =
    "usage: fake-upstream [--port N] [--delay-ms MS] [--event-delay-ms MS] [--deltas N] [--control-port N]";

/// Command-line options.
#[derive(Debug, Default)]
struct Options {
    /// Port on 127.0.0.1; 0 picks a free one.
    port: u16,
    /// Delay before the response headers of every request (time to first byte).
    delay_ms: u64,
    /// Delay between streamed events.
    event_delay_ms: u64,
    /// Text deltas per stream; the default when absent.
    deltas: Option<usize>,
    /// Port of the control listener; none when absent.
    control_port: Option<u16>,
}

impl Options {
    /// The options, `None` for `--help`, or a message naming the bad argument.
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
        let mut options = Options::default();
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            if !FLAGS.contains(&flag.as_str()) {
                return Err(format!("unknown argument {flag:?}\n{USAGE}"));
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let invalid = |_| format!("{flag}: invalid value {value:?}\n{USAGE}");
            match flag.as_str() {
                "--port" => options.port = value.parse().map_err(invalid)?,
                "--delay-ms" => options.delay_ms = value.parse().map_err(invalid)?,
                "--event-delay-ms" => options.event_delay_ms = value.parse().map_err(invalid)?,
                "--deltas" => options.deltas = Some(value.parse().map_err(invalid)?),
                "--control-port" => options.control_port = Some(value.parse().map_err(invalid)?),
                _ => return Err(format!("unknown argument {flag:?}\n{USAGE}")),
            }
        }
        Ok(Some(options))
    }

    fn script(&self) -> Script {
        Script::ok()
            .deltas(self.deltas.unwrap_or(DEFAULT_DELTAS))
            .delay_before_headers(Duration::from_millis(self.delay_ms))
            .delay_between_events(Duration::from_millis(self.event_delay_ms))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => return print_line(USAGE).map_or(ExitCode::FAILURE, |()| ExitCode::SUCCESS),
        Err(message) => {
            eprintln!("fake-upstream: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("fake-upstream: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until Ctrl-C.
async fn run(options: &Options) -> io::Result<()> {
    let fake = FakeUpstream::try_start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, options.port))).await?;
    fake.set_recording(false);
    fake.set_default(options.script());
    print_line(&fake.addr().to_string())?;
    if let Some(port) = options.control_port {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        print_line(&listener.local_addr()?.to_string())?;
        let control = axum::Router::new()
            .route("/credentials/{credential}", axum::routing::put(set_answer))
            .with_state((fake.clone(), options.script()));
        tokio::spawn(async move { axum::serve(listener, control).await });
    }
    tokio::signal::ctrl_c().await?;
    fake.shutdown().await;
    Ok(())
}

#[derive(serde::Deserialize)]
struct Answer {
    status: u16,
    #[serde(default)]
    message: Option<String>,
}

/// Sets how the fake answers one credential from now on.
async fn set_answer(
    axum::extract::State((fake, normal)): axum::extract::State<(FakeUpstream, Script)>,
    axum::extract::Path(credential): axum::extract::Path<String>,
    axum::Json(answer): axum::Json<Answer>,
) -> axum::http::StatusCode {
    let script = match answer.status {
        200 => normal,
        status => {
            let script = Script::status_code(status);
            match answer.message {
                Some(message) => script.error_message(message),
                None => script,
            }
        }
    };
    fake.set_default_for(credential, script);
    axum::http::StatusCode::NO_CONTENT
}

/// Writes one line to stdout and flushes it, so a parent reading the address sees it at once.
fn print_line(line: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        Options::parse(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn parses_flags_and_rejects_unknown_ones() {
        let options = parse(&["--port", "18081", "--delay-ms", "50", "--deltas", "2"]).unwrap().unwrap();
        assert_eq!((options.port, options.delay_ms, options.event_delay_ms, options.deltas), (18081, 50, 0, Some(2)));
        assert_eq!(parse(&["--control-port", "0"]).unwrap().unwrap().control_port, Some(0));
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--bogus"]).unwrap_err().starts_with("unknown argument \"--bogus\""));
        assert!(parse(&["--port"]).unwrap_err().starts_with("--port needs a value"));
        assert!(parse(&["--port", "http"]).unwrap_err().starts_with("--port: invalid value"));
    }
}
