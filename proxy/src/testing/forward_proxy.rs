//! [`ForwardProxy`]: a minimal HTTP forward proxy on 127.0.0.1 for tests of accounts that
//! use an outbound proxy. It takes absolute-form requests (`POST http://host:port/path`),
//! optionally demands `Proxy-Authorization: Basic …`, forwards them with reqwest and streams
//! the answer back, counting what it saw.
//!
//! Plain HTTP only (no `CONNECT` tunnels): the fake upstream speaks plain HTTP. It must not
//! be used outside tests: it forwards anything to anywhere.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderValue, StatusCode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Headers that concern one hop, not the request: never forwarded.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "host",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A running forward proxy; it stops when dropped.
pub struct ForwardProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

struct Shared {
    /// `Basic …` the proxy insists on, if any.
    expected_auth: Option<String>,
    client: reqwest::Client,
    received: AtomicUsize,
    refused: AtomicUsize,
}

impl ForwardProxy {
    /// Starts a proxy on `127.0.0.1` with an OS-assigned port. With `credentials`, requests
    /// without the matching `Proxy-Authorization` get `407`.
    ///
    /// # Panics
    /// When no local port can be bound or no HTTP client can be built.
    pub async fn start(credentials: Option<(&str, &str)>) -> ForwardProxy {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap_or_else(|e| panic!("forward proxy: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("forward proxy: no local address: {e}"));
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_else(|e| panic!("forward proxy: cannot build a client: {e}"));
        let shared = Arc::new(Shared {
            expected_auth: credentials
                .map(|(user, pass)| format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))),
            client,
            received: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(forward_handler).with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            // `serve` only returns on a fatal listener error; the task is aborted on drop.
            let _ = axum::serve(listener, app).await;
        });
        ForwardProxy { addr, shared, server }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests received, refused ones included.
    pub fn count(&self) -> usize {
        self.shared.received.load(Ordering::SeqCst)
    }

    /// Requests answered `407` for missing or wrong credentials.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn forward_handler(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    shared.received.fetch_add(1, Ordering::SeqCst);
    if let Some(expected) = &shared.expected_auth {
        let given = request.headers().get(http::header::PROXY_AUTHORIZATION).and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let mut res = answer(StatusCode::PROXY_AUTHENTICATION_REQUIRED, "proxy authentication required");
            res.headers_mut()
                .insert(http::header::PROXY_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"test\""));
            return res;
        }
    }
    // Only absolute-form requests name where to go.
    if request.uri().scheme().is_none() || request.uri().authority().is_none() {
        return answer(StatusCode::BAD_REQUEST, "expected an absolute-form request");
    }
    let (parts, body) = request.into_parts();
    let mut outgoing = shared.client.request(parts.method, parts.uri.to_string());
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    let upstream = match outgoing.body(reqwest::Body::wrap_stream(body.into_data_stream())).send().await {
        Ok(upstream) => upstream,
        Err(e) => return answer(StatusCode::BAD_GATEWAY, &format!("forward proxy: {}", e.without_url())),
    };
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    for name in HOP_BY_HOP.iter().chain(&["content-length"]) {
        headers.remove(*name);
    }
    let mut res = Response::new(Body::from_stream(upstream.bytes_stream()));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

fn answer(status: StatusCode, text: &str) -> Response {
    let mut res = Response::new(Body::from(text.to_owned()));
    *res.status_mut() = status;
    res
}
