//! [`FakeUpstream`]: a real HTTP server on 127.0.0.1 that plays an Anthropic / OpenAI /
//! Gemini upstream for the gateway's integration tests and benchmarks.
//!
//! Each request takes the next [`Script`] (per-credential queue, then the shared queue, then
//! the per-credential default, then the default) and is answered in the wire format of its
//! route, with the script's status, headers, timing and faults. Every request is journaled
//! and counted in flight until its response body finished or the client dropped it.
//!
//! It must not be used outside tests and benchmarks: it trusts every request and keeps
//! everything in memory.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use futures_util::stream;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::fake_oauth::{FakeOAuth, TokenRequest};
use super::journal::{Journal, RecordedRequest, Slot};
use super::script::{Ending, Script};
use super::wire::{self, Endpoint, Exchange, Protocol, Reply, ReplyBody};

/// Largest request body the fake reads; Claude Code bodies are ~80 KB, so this only stops a
/// runaway test.
const MAX_REQUEST_BODY: usize = 64 << 20;

/// A handle to a running fake upstream. Cheap to clone; the server stops when the last handle
/// is dropped or on [`FakeUpstream::shutdown`], and then every open response breaks off.
#[derive(Clone)]
pub struct FakeUpstream {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for FakeUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeUpstream").field("addr", &self.inner.addr).finish_non_exhaustive()
    }
}

struct Handle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Sends `true` on shutdown. Only handles own it, so dropping the last handle drops it,
    /// which every waiter treats as shutdown too.
    stop: watch::Sender<bool>,
    /// The serve task, taken by the first [`FakeUpstream::shutdown`] to await it.
    server: Mutex<Option<JoinHandle<()>>>,
}

/// State shared by the handles and the request handlers.
struct Shared {
    /// A std lock: every critical section is short and none spans an `.await`.
    state: Mutex<FakeState>,
    /// Woken whenever a request begins or ends, for [`FakeUpstream::wait_until`].
    changed: Notify,
    /// Becomes `true` (or closed) on shutdown; cloned into every response in progress.
    stop: watch::Receiver<bool>,
}

#[derive(Default)]
struct FakeState {
    scripts: Scripts,
    journal: Journal,
    oauth: FakeOAuth,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        // A panic while holding this lock leaves consistent data (plain counters and queues).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The scripted answers waiting for requests.
#[derive(Debug, Default)]
struct Scripts {
    queue: VecDeque<Script>,
    queue_for: HashMap<String, VecDeque<Script>>,
    default: Option<Script>,
    default_for: HashMap<String, Script>,
}

impl Scripts {
    /// The script for the next request: queued before default, credential-specific before
    /// shared at each level.
    fn next(&mut self, credential: Option<&str>) -> Script {
        if let Some(script) = credential.and_then(|c| self.queue_for.get_mut(c)).and_then(VecDeque::pop_front) {
            return script;
        }
        if let Some(script) = self.queue.pop_front() {
            return script;
        }
        if let Some(script) = credential.and_then(|c| self.default_for.get(c)) {
            return script.clone();
        }
        self.default.clone().unwrap_or_default()
    }

    fn queued(&self) -> usize {
        self.queue.len() + self.queue_for.values().map(VecDeque::len).sum::<usize>()
    }
}

impl FakeUpstream {
    /// Starts a fake upstream on `127.0.0.1` with an OS-assigned port.
    ///
    /// # Panics
    /// When no local port can be bound; use [`FakeUpstream::try_start_on`] to handle that.
    pub async fn start() -> FakeUpstream {
        match Self::try_start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await {
            Ok(fake) => fake,
            Err(error) => panic!("fake upstream: cannot bind 127.0.0.1:0: {error}"),
        }
    }

    /// Starts a fake upstream on `addr` (port 0 picks a free port).
    pub async fn try_start_on(addr: SocketAddr) -> io::Result<FakeUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // Without TCP_NODELAY each small streamed chunk waits on the client's delayed ACK
        // (about 40 ms per streamed request).
        let listener = listener.tap_io(|tcp| {
            // Best effort: a socket that refuses it still works, only slower.
            let _ = tcp.set_nodelay(true);
        });
        let (stop, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared { state: Mutex::default(), changed: Notify::new(), stop: stop_rx.clone() });
        let app = Router::new().fallback(fake_upstream_handler).with_state(Arc::clone(&shared));
        let mut signal = stop_rx;
        let server = tokio::spawn(async move {
            let shutdown = async move {
                // An error means every handle is gone: stop as well.
                let _ = signal.wait_for(|stopped| *stopped).await;
            };
            // `serve` only returns once shut down; accept errors are retried inside it.
            let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
        });
        Ok(FakeUpstream { inner: Arc::new(Handle { addr, shared, stop, server: Mutex::new(Some(server)) }) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The base URL, `http://127.0.0.1:<port>` (no trailing slash, no `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Queues a script for the next request that no credential-specific queue claims.
    pub fn push(&self, script: Script) {
        self.shared().lock().scripts.queue.push_back(script);
    }

    /// Queues a script for the next request carrying `credential` (its `x-api-key`, its
    /// `Authorization: Bearer` token, or its `x-goog-api-key`).
    pub fn push_for(&self, credential: impl Into<String>, script: Script) {
        self.shared().lock().scripts.queue_for.entry(credential.into()).or_default().push_back(script);
    }

    /// The script used when no queue has one (initially [`Script::ok`]).
    pub fn set_default(&self, script: Script) {
        self.shared().lock().scripts.default = Some(script);
    }

    /// The script used for requests carrying `credential` when no queue has one; e.g. an
    /// account that always answers 401.
    pub fn set_default_for(&self, credential: impl Into<String>, script: Script) {
        self.shared().lock().scripts.default_for.insert(credential.into(), script);
    }

    /// Queued scripts not yet taken by a request (shared and per-credential).
    pub fn queued(&self) -> usize {
        self.shared().lock().scripts.queued()
    }

    /// Turns storing journal entries on or off (on at start). Counts and in-flight gauges are
    /// kept either way; benchmarks turn it off so memory stays flat.
    pub fn set_recording(&self, recording: bool) {
        self.shared().lock().journal.recording = recording;
    }

    /// Every recorded request since start or the last reset, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared().lock().journal.entries().to_vec()
    }

    /// The recorded requests that carried `credential`.
    pub fn requests_for(&self, credential: &str) -> Vec<RecordedRequest> {
        let state = self.shared().lock();
        state.journal.entries().iter().filter(|r| r.credential.as_deref() == Some(credential)).cloned().collect()
    }

    /// The most recent recorded request.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared().lock().journal.entries().last().cloned()
    }

    /// Requests received since start or the last reset (recorded or not).
    pub fn count(&self) -> usize {
        self.shared().lock().journal.overall.total
    }

    /// Requests received carrying `credential` since start or the last reset.
    pub fn count_for(&self, credential: &str) -> usize {
        self.shared().lock().journal.gauge(credential).total
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.shared().lock().journal.overall.current
    }

    /// The most requests ever in flight at once since start or the last reset.
    pub fn max_in_flight(&self) -> usize {
        self.shared().lock().journal.overall.peak
    }

    /// Requests carrying `credential` in flight now.
    pub fn in_flight_for(&self, credential: &str) -> usize {
        self.shared().lock().journal.gauge(credential).current
    }

    /// The most requests carrying `credential` ever in flight at once.
    pub fn max_in_flight_for(&self, credential: &str) -> usize {
        self.shared().lock().journal.gauge(credential).peak
    }

    /// Clears the journal, counts and peaks (requests still in flight stay counted) but
    /// keeps the scripts.
    pub fn clear_journal(&self) {
        self.shared().lock().journal.clear();
    }

    /// Back to the state after start: clears the journal, counts, peaks, queued scripts and
    /// defaults. Requests still in flight stay counted and finish with their script.
    pub fn reset(&self) {
        let mut state = self.shared().lock();
        state.journal.clear();
        state.scripts = Scripts::default();
    }

    /// Waits until `condition` holds, re-checking whenever a request begins or ends.
    /// Returns whether it held before `timeout`.
    pub async fn wait_until(&self, timeout: Duration, mut condition: impl FnMut(&FakeUpstream) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared().changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the check, so a change between check and wait is not lost.
            changed.as_mut().enable();
            if condition(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return condition(self);
            }
        }
    }

    /// Lifetime (seconds) of the access tokens the fake OAuth endpoint issues from now on.
    pub fn set_token_lifetime(&self, seconds: i64) {
        self.shared().lock().oauth.expires_in = seconds;
    }

    /// The next token issued lives `seconds`; later ones the usual lifetime again.
    pub fn push_token_lifetime(&self, seconds: i64) {
        self.shared().lock().oauth.next_lifetimes.push_back(seconds);
    }

    /// Every refresh token issued so far stops working (`invalid_grant`).
    pub fn revoke_refresh_tokens(&self) {
        self.shared().lock().oauth.revoke_all();
    }

    /// The next token request gets `status` with the OAuth error `error`.
    pub fn fail_next_token_request(&self, status: u16, error: &str) {
        self.shared().lock().oauth.failures.push_back((status, error.to_owned()));
    }

    /// Every request the fake OAuth token endpoint received, oldest first.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.shared().lock().oauth.requests.clone()
    }

    /// Stops accepting connections, breaks off every response in progress and waits for
    /// the server to finish. Later calls return at once.
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let server = self.inner.server.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(server) = server {
            // A join error means the serve task panicked or was cancelled: it is stopped.
            let _ = server.await;
        }
    }
}

/// The credential a request carried, as the journal and per-credential scripts key it.
fn credential_of(headers: &HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(key) = header("x-api-key") {
        return Some(key.to_owned());
    }
    if let Some(token) = header(AUTHORIZATION.as_str()).and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }) {
        return Some(token.to_owned());
    }
    header("x-goog-api-key").map(str::to_owned)
}

/// Counts a request in flight; dropping it (when the response body ends or is dropped, or
/// the handler is cancelled) counts it out and stamps its end in the journal.
struct InFlight {
    shared: Arc<Shared>,
    slot: Option<Slot>,
    credential: Option<String>,
}

impl InFlight {
    fn set_status(&self, status: StatusCode) {
        self.shared.lock().journal.set_status(self.slot, status);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = Instant::now();
        self.shared.lock().journal.end(self.slot, self.credential.as_deref(), now);
        self.shared.changed.notify_waiters();
    }
}

/// The one handler: journals the request, takes its script and answers.
async fn fake_upstream_handler(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let (body, body_read) = match to_bytes(body, MAX_REQUEST_BODY).await {
        Ok(body) => (body, true),
        Err(_) => (Bytes::new(), false),
    };
    if parts.method == http::Method::POST && parts.uri.path().ends_with("/oauth/token") {
        let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let (status, json) = shared.lock().oauth.answer(parts.uri.path(), content_type, &body);
        let mut res = axum::Json(json).into_response();
        *res.status_mut() = status;
        return res;
    }
    let json = serde_json::from_slice::<Value>(&body).ok();
    let credential = credential_of(&parts.headers);
    let endpoint = Endpoint::of(&parts.method, parts.uri.path());
    let mut exchange = Exchange::read(json.as_ref()).with_target(endpoint, &parts.uri);
    let protocol = endpoint.protocol(&parts.headers);

    let record = RecordedRequest {
        seq: 0,
        uri: parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), ToString::to_string),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        method: parts.method,
        headers: parts.headers,
        credential: credential.clone(),
        body,
        json,
        status: None,
        started: Instant::now(),
        ended: None,
    };
    let (in_flight, script) = {
        let mut state = shared.lock();
        let script = match (endpoint, body_read) {
            (Endpoint::Unknown, _) => Script::status(StatusCode::NOT_FOUND),
            (_, false) => Script::status(StatusCode::BAD_REQUEST).error_message("fake upstream: unreadable body"),
            _ => state.scripts.next(credential.as_deref()),
        };
        let (seq, slot) = state.journal.begin(record);
        exchange.seq = seq;
        (InFlight { shared: Arc::clone(&shared), slot, credential }, script)
    };
    shared.changed.notify_waiters();

    let mut stop = shared.stop.clone();
    if !script.delay_before_headers.is_zero() && !pause(script.delay_before_headers, &mut stop).await {
        return broken_response(in_flight, stop);
    }

    let reply = wire::render(endpoint, protocol, &script, &exchange);
    in_flight.set_status(reply.status);
    respond(reply, protocol, &script, &exchange, in_flight, stop)
}

/// Builds the response: headers now, the body fed by a [`BodyFeed`].
fn respond(
    reply: Reply,
    protocol: Protocol,
    script: &Script,
    exchange: &Exchange,
    in_flight: InFlight,
    stop: watch::Receiver<bool>,
) -> Response {
    let Reply { status, content_type, body } = reply;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(request_id) = HeaderValue::from_str(&format!("req_fake{:06}", exchange.seq)) {
        headers.insert(wire::request_id_header(protocol), request_id);
    }
    let (chunks, tail) = match body {
        ReplyBody::Whole(body) => {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
            match script.ending {
                Ending::Complete | Ending::ErrorEvent { .. } => (vec![body], Tail::End),
                Ending::Disconnect { .. } => (vec![body.slice(..body.len() / 2)], Tail::Break),
                Ending::Hang { .. } => (Vec::new(), Tail::Stall),
            }
        }
        ReplyBody::Events(mut events) => match script.ending {
            Ending::Complete => (events, Tail::End),
            Ending::Disconnect { after } => {
                events.truncate(after);
                (events, Tail::Break)
            }
            Ending::ErrorEvent { after } => {
                events.truncate(after);
                events.push(wire::stream_error_event(protocol, script, exchange, events.len()));
                (events, Tail::End)
            }
            Ending::Hang { after } => {
                events.truncate(after);
                (events, Tail::Stall)
            }
        },
    };
    // Scripted headers replace the fake's own of the same name; repeated names all go out.
    for (name, _) in &script.headers {
        headers.remove(name);
    }
    for (name, value) in &script.headers {
        headers.append(name.clone(), value.clone());
    }
    let feed = BodyFeed {
        chunks: chunks.into_iter(),
        tail,
        gap: script.delay_between_events,
        sent_any: false,
        finished: false,
        stop,
        _in_flight: in_flight,
    };
    let mut response = Response::new(feed.into_body());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The answer when the fake shut down before the headers were due: a 503 whose body breaks.
fn broken_response(in_flight: InFlight, stop: watch::Receiver<bool>) -> Response {
    in_flight.set_status(StatusCode::SERVICE_UNAVAILABLE);
    let feed = BodyFeed {
        chunks: Vec::new().into_iter(),
        tail: Tail::Break,
        gap: Duration::ZERO,
        sent_any: false,
        finished: false,
        stop,
        _in_flight: in_flight,
    };
    let mut response = Response::new(feed.into_body());
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
}

/// What follows the last chunk of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// A clean end.
    End,
    /// An error: hyper aborts the connection, so the client sees a broken body.
    Break,
    /// Nothing until the client goes away or the fake shuts down (then a break).
    Stall,
}

/// Produces a response body chunk by chunk with the scripted gaps and tail. Owns the
/// request's [`InFlight`] guard, so the request counts as in flight until the body is done or
/// dropped (a client disconnect drops it).
struct BodyFeed {
    chunks: std::vec::IntoIter<Bytes>,
    tail: Tail,
    gap: Duration,
    sent_any: bool,
    finished: bool,
    stop: watch::Receiver<bool>,
    _in_flight: InFlight,
}

impl BodyFeed {
    fn into_body(self) -> Body {
        Body::from_stream(stream::unfold(self, |mut feed| async move {
            let item = feed.next_item().await?;
            Some((item, feed))
        }))
    }

    /// The next chunk, an error for a break, or `None` at the end.
    async fn next_item(&mut self) -> Option<io::Result<Bytes>> {
        if self.finished {
            return None;
        }
        if let Some(chunk) = self.chunks.next() {
            if self.sent_any && !self.gap.is_zero() && !pause(self.gap, &mut self.stop).await {
                return Some(self.fail("fake upstream shut down").await);
            }
            self.sent_any = true;
            return Some(Ok(chunk));
        }
        match self.tail {
            Tail::End => None,
            Tail::Break => {
                if self.sent_any && !self.gap.is_zero() {
                    pause(self.gap, &mut self.stop).await;
                }
                Some(self.fail("fake upstream: scripted disconnect").await)
            }
            Tail::Stall => {
                // Wait for shutdown (or all handles gone); a client that leaves drops us first.
                let _ = self.stop.wait_for(|stopped| *stopped).await;
                Some(self.fail("fake upstream shut down").await)
            }
        }
    }

    /// The error that makes hyper abort the connection. Hyper drops whatever it has not
    /// flushed yet when a body fails, so first yield once: seeing the body pending, hyper
    /// flushes the headers and the events sent so far to the socket.
    async fn fail(&mut self, reason: &'static str) -> io::Result<Bytes> {
        self.finished = true;
        tokio::task::yield_now().await;
        Err(io::Error::new(io::ErrorKind::ConnectionAborted, reason))
    }
}

/// Sleeps for `delay` unless the fake shuts down first; returns false on shutdown.
async fn pause(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        _ = stop.wait_for(|stopped| *stopped) => false,
    }
}
