//! [`Script`]: what the fake upstream does with one request — status, headers, body or
//! generated answer, token usage, timing and faults.
//!
//! A script is plain data built with chained setters; it holds no I/O and knows nothing of
//! the wire formats (those live in `wire`). Setters that take header names or values panic on
//! invalid input, since a script is written by a test author and a typo should fail at once.

use std::time::Duration;

use axum::body::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::usage::Usage;

/// Text of the generated answer when a script sets none.
pub const DEFAULT_TEXT: &str = "Hello from the fake upstream.";

/// Content deltas of a generated stream when a script sets none.
pub const DEFAULT_DELTAS: usize = 4;

/// Token usage of a generated answer when a script sets none. Every field is non-zero and
/// the cache write is split between both TTLs, so extractors are exercised on all of them.
pub const DEFAULT_USAGE: Usage = Usage {
    input_tokens: 25,
    output_tokens: 12,
    cache_creation_tokens: 150,
    cache_creation_5m_tokens: 100,
    cache_creation_1h_tokens: 50,
    cache_read_tokens: 200,
};

/// How the body of an answer ends. Counts are of complete events (SSE events, or the whole
/// body of a non-streaming answer).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Ending {
    /// Every event, then a clean end of the body.
    #[default]
    Complete,
    /// `after` events, then the connection is aborted (the body stream fails).
    Disconnect { after: usize },
    /// `after` events, then one provider-shaped error event, then a clean end.
    ErrorEvent { after: usize },
    /// `after` events, then nothing until the client goes away or the fake shuts down.
    Hang { after: usize },
}

/// What the fake upstream answers to one request.
///
/// The default ([`Script::ok`]) is a successful answer in the protocol of the route that was
/// called, echoing the requested `model`, streaming when the request asked for it, and
/// carrying [`DEFAULT_USAGE`]. An error status ([`Script::status`]) answers with the
/// provider's error body for that status unless [`Script::body`] replaces it.
///
/// ```no_run
/// # use std::time::Duration;
/// # use http::StatusCode;
/// # use proxy::testing::{FakeUpstream, Script};
/// # fn example(fake: &FakeUpstream) {
/// fake.push(Script::status(StatusCode::TOO_MANY_REQUESTS).header("retry-after", "2"));
/// fake.push(Script::ok().deltas(8).delay_between_events(Duration::from_millis(50)));
/// fake.push(Script::ok().disconnect_after_events(3));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Script {
    pub(super) status: StatusCode,
    /// Extra response headers, in order; a name given here replaces the fake's own header
    /// of that name (content type, request id).
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    /// A verbatim body replacing the generated answer or error body.
    pub(super) body: Option<Bytes>,
    /// Verbatim SSE events replacing the generated stream, whatever the request asked for.
    pub(super) events: Option<Vec<Bytes>>,
    /// `error.type` of a generated error body or in-stream error event.
    pub(super) error_type: Option<String>,
    /// `error.message` of a generated error body or in-stream error event.
    pub(super) error_message: Option<String>,
    pub(super) usage: Usage,
    pub(super) text: String,
    pub(super) deltas: usize,
    pub(super) delay_before_headers: Duration,
    pub(super) delay_between_events: Duration,
    pub(super) ending: Ending,
}

impl Default for Script {
    fn default() -> Self {
        Self::ok()
    }
}

impl Script {
    /// A successful answer (200) with the default text, usage and number of deltas.
    pub fn ok() -> Self {
        Self {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: None,
            events: None,
            error_type: None,
            error_message: None,
            usage: DEFAULT_USAGE,
            text: DEFAULT_TEXT.to_owned(),
            deltas: DEFAULT_DELTAS,
            delay_before_headers: Duration::ZERO,
            delay_between_events: Duration::ZERO,
            ending: Ending::Complete,
        }
    }

    /// An answer with this status. A non-2xx status gets the provider's error body for it
    /// (e.g. Anthropic 429 → `rate_limit_error`, OpenAI 429 → `rate_limit_exceeded`); a 2xx
    /// status gets the normal generated answer.
    pub fn status(status: StatusCode) -> Self {
        Self { status, ..Self::ok() }
    }

    /// [`Script::status`] from a number, for codes without a constant such as 529.
    ///
    /// # Panics
    /// When `code` is not a valid HTTP status (100–999).
    pub fn status_code(code: u16) -> Self {
        match StatusCode::from_u16(code) {
            Ok(status) => Self::status(status),
            Err(_) => panic!("Script::status_code: {code} is not an HTTP status"),
        }
    }

    /// Adds a response header. Repeating a name sends every value; a name the fake sets
    /// itself (`content-type`, `request-id`, `x-request-id`, `content-length`) is replaced.
    ///
    /// # Panics
    /// When the name or value is not a valid header name or value.
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        K: TryInto<HeaderName>,
        K::Error: std::fmt::Debug,
        V: TryInto<HeaderValue>,
        V::Error: std::fmt::Debug,
    {
        let name = name.try_into().unwrap_or_else(|error| panic!("Script::header: invalid name: {error:?}"));
        let value = value.try_into().unwrap_or_else(|error| panic!("Script::header: invalid value: {error:?}"));
        self.headers.push((name, value));
        self
    }

    /// Sends exactly these bytes as the body (content type `application/json` unless a
    /// header says otherwise) instead of the generated answer or error body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Streams exactly these SSE events (each one complete, e.g. `"data: {}\n\n"`) with
    /// content type `text/event-stream`, instead of the generated answer. Timing and faults
    /// apply to them as to generated events.
    pub fn events<I>(mut self, events: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Bytes>,
    {
        self.events = Some(events.into_iter().map(Into::into).collect());
        self
    }

    /// The `error.type` of a generated error body or in-stream error event (by default it
    /// follows from the status, or is the provider's overload/server error in a stream).
    pub fn error_type(mut self, kind: impl Into<String>) -> Self {
        self.error_type = Some(kind.into());
        self
    }

    /// The `error.message` of a generated error body or in-stream error event.
    pub fn error_message(mut self, message: impl Into<String>) -> Self {
        self.error_message = Some(message.into());
        self
    }

    /// The token usage the answer reports, in the gateway's terms (see
    /// [`Protocol::reported_usage`](super::Protocol::reported_usage) for what each wire
    /// format can carry). Anthropic answers send `cache_creation_tokens` as
    /// `cache_creation_input_tokens` and the 5m/1h fields as the split, verbatim: keep
    /// `cache_creation_tokens = 5m + 1h` for a realistic answer.
    pub fn usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    /// The answer text; a stream splits it into the configured number of deltas.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    /// The number of text delta events in a generated stream (the text is split evenly by
    /// characters; a text shorter than `n` gives some empty deltas). 0 streams no text.
    pub fn deltas(mut self, n: usize) -> Self {
        self.deltas = n;
        self
    }

    /// Waits this long before sending the response headers (time to first byte).
    pub fn delay_before_headers(mut self, delay: Duration) -> Self {
        self.delay_before_headers = delay;
        self
    }

    /// Waits this long before each event after the first, and before a scripted
    /// disconnect.
    pub fn delay_between_events(mut self, delay: Duration) -> Self {
        self.delay_between_events = delay;
        self
    }

    /// Sends `n` events, then aborts the connection: the client sees a broken body, not a
    /// clean end. A non-streaming answer is cut in the middle of its body whatever `n` is.
    /// Replaces any other scripted ending.
    pub fn disconnect_after_events(mut self, n: usize) -> Self {
        self.ending = Ending::Disconnect { after: n };
        self
    }

    /// Sends `n` events, then the provider's in-stream error event (Anthropic
    /// `event: error`, Chat Completions an `error` chunk, Responses `response.failed`), then
    /// ends the body cleanly. Has no effect on a non-streaming answer. Replaces any other
    /// scripted ending.
    pub fn error_event_after(mut self, n: usize) -> Self {
        self.ending = Ending::ErrorEvent { after: n };
        self
    }

    /// Sends the headers and then no byte until the client goes away (or the fake shuts
    /// down). Replaces any other scripted ending.
    pub fn hang(self) -> Self {
        self.hang_after_events(0)
    }

    /// Sends `n` events, then stalls until the client goes away (or the fake shuts down). A
    /// non-streaming answer stalls before its body whatever `n` is. Replaces any other
    /// scripted ending.
    pub fn hang_after_events(mut self, n: usize) -> Self {
        self.ending = Ending::Hang { after: n };
        self
    }
}
