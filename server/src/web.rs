//! Middleware around the admin UI and admin REST API: the client address, the same-origin
//! rule for state changes, the `Secure` cookie flag behind TLS, and the sign-in redirect.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use app::state::ClientIp;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use store::Store;
use tower_sessions::Session;

/// Puts the caller's `ClientIp` into the request extensions.
pub async fn client_ip(State(trust_forwarded): State<bool>, mut req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let forwarded = trust_forwarded.then(|| forwarded_ip(req.headers())).flatten();
    let ip = forwarded.or(peer).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    req.extensions_mut().insert(ClientIp(ip));
    next.run(req).await
}

/// The address our own proxy saw: the right-most `X-Forwarded-For` entry (proxies append to
/// whatever the client sent, so entries to its left are client-chosen), else `X-Real-IP`.
fn forwarded_ip(headers: &HeaderMap) -> Option<IpAddr> {
    let last = |name: &str| headers.get(name)?.to_str().ok()?.rsplit(',').next().and_then(parse_ip);
    match headers.get("x-forwarded-for") {
        Some(_) => last("x-forwarded-for"),
        None => last("x-real-ip"),
    }
}

/// `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_ip(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    raw.parse()
        .ok()
        .or_else(|| raw.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| raw.trim_start_matches('[').trim_end_matches(']').parse().ok())
}

/// Refuses state-changing requests that a browser sent from another site (CSRF). Requests
/// without `Origin` and `Sec-Fetch-Site` (curl, scripts) are not browser cross-site requests.
pub async fn same_origin_only(req: Request, next: Next) -> Response {
    let authority = req.uri().authority().map(|a| a.as_str().to_owned());
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || is_same_origin(req.headers(), authority.as_deref())
    {
        return next.run(req).await;
    }
    tracing::warn!(path = req.uri().path(), "cross-origin state change refused");
    (StatusCode::FORBIDDEN, axum::Json(serde_json::json!({"code": 403, "message": "cross-origin request refused"})))
        .into_response()
}

/// `authority` is the request URI's authority: HTTP/2 requests carry the host there instead of
/// in a `Host` header. Behind a reverse proxy, forward the original host
/// (`proxy_set_header Host $host` or `X-Forwarded-Host`).
fn is_same_origin(headers: &HeaderMap, authority: Option<&str>) -> bool {
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(header::HOST))
        .and_then(|h| h.to_str().ok())
        .or(authority);
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        let origin_host = origin.split_once("://").map(|(_, rest)| rest.trim_end_matches('/'));
        return origin_host.is_some() && origin_host == host;
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => matches!(site, "same-origin" | "none"),
        None => true,
    }
}

/// Adds `Secure` to cookies set on responses to requests that reached the TLS proxy in front
/// of us over HTTPS, so the session cookie never travels in clear text afterwards.
pub async fn secure_cookies_behind_tls(req: Request, next: Next) -> Response {
    let tls = req.headers().get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let mut response = next.run(req).await;
    if tls {
        let cookies: Vec<HeaderValue> = response.headers_mut().get_all(header::SET_COOKIE).iter().cloned().collect();
        if !cookies.is_empty() {
            response.headers_mut().remove(header::SET_COOKIE);
            for cookie in cookies {
                let text = cookie.to_str().unwrap_or_default();
                let value = if text.to_ascii_lowercase().contains("; secure") {
                    cookie
                } else {
                    HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or(cookie)
                };
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
    }
    response
}

/// What `require_sign_in` needs: the page paths that need a signed-in admin.
#[derive(Clone)]
pub struct SignInGuard {
    pub store: Store,
    pub pages: Arc<HashSet<String>>,
}

pub const LOGIN_PATH: &str = "/login";

/// Sends unauthenticated page views to the sign-in page (keeping where they were going),
/// and signed-in admins away from it.
pub async fn require_sign_in(State(guard): State<SignInGuard>, session: Session, req: Request, next: Next) -> Response {
    if req.method() != Method::GET {
        return next.run(req).await;
    }
    let path = req.uri().path();
    let is_login = path == LOGIN_PATH;
    if !is_login && !guard.pages.contains(path) {
        return next.run(req).await;
    }
    let admin = match app::service::auth::session_admin(&guard.store, &session).await {
        Ok(admin) => admin,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    match (admin.is_some(), is_login) {
        (true, true) => Redirect::to("/").into_response(),
        (false, false) => {
            let target = req.uri().path_and_query().map_or(path, |pq| pq.as_str());
            Redirect::to(&format!("{LOGIN_PATH}?next={}", encode_component(target))).into_response()
        }
        _ => next.run(req).await,
    }
}

/// Percent-encodes everything but unreserved characters and `/`.
fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Server functions answer every error with 500; the browser reads the error from the body
/// either way, but logs, proxies and scripts should see "fix the form" (400), "sign in" (401)
/// or "not found" (404) for what they are. Only small 500 bodies that decode as an
/// [`app::AppError`] with another status are rewritten; everything else passes untouched.
pub async fn server_fn_error_status(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let is_server_fn = path.starts_with("/api/") && !path.starts_with("/api/v1/");
    let res = next.run(req).await;
    if !is_server_fn || res.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if let Ok(err) = serde_json::from_slice::<app::AppError>(&bytes) {
        parts.status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// After an admin change (any successful non-read request: REST or server function), reload
/// the gateway's snapshot before answering, so the next proxied request already sees it.
pub async fn refresh_after_change(
    State(gateway): State<std::sync::Arc<proxy::gateway::Gateway>>,
    req: Request,
    next: Next,
) -> Response {
    let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let res = next.run(req).await;
    if !reads && (res.status().is_success() || res.status().is_redirection()) {
        gateway.refresh().await;
        gateway.announce_change().await;
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (header::HeaderName::from_static(k), HeaderValue::from_static(v))).collect()
    }

    fn is_same_origin_h(h: &HeaderMap) -> bool {
        is_same_origin(h, None)
    }

    #[test]
    fn http2_requests_use_the_uri_authority() {
        let h = headers(&[("origin", "https://gw.example")]);
        assert!(is_same_origin(&h, Some("gw.example")));
        assert!(!is_same_origin(&h, Some("other.example")));
    }

    #[test]
    fn origin_must_match_host() {
        assert!(is_same_origin_h(&headers(&[("host", "gw.example:8080"), ("origin", "http://gw.example:8080")])));
        assert!(!is_same_origin_h(&headers(&[("host", "gw.example"), ("origin", "https://evil.example")])));
        assert!(!is_same_origin_h(&headers(&[("host", "gw.example"), ("origin", "null")])));
        assert!(!is_same_origin_h(&headers(&[("host", "gw.example"), ("sec-fetch-site", "cross-site")])));
        assert!(is_same_origin_h(&headers(&[("host", "gw.example"), ("sec-fetch-site", "same-origin")])));
        assert!(is_same_origin_h(&headers(&[("host", "gw.example")])), "non-browser clients send neither header");
    }

    #[test]
    fn next_is_encoded() {
        assert_eq!(encode_component("/usage?page=2&x=a b"), "/usage%3Fpage%3D2%26x%3Da%20b");
    }

    #[test]
    fn forwarded_address_is_first_hop() {
        let h = headers(&[("x-forwarded-for", "198.51.100.66, 203.0.113.7")]);
        assert_eq!(forwarded_ip(&h), "203.0.113.7".parse().ok(), "the client-supplied left entry is ignored");
        let h = headers(&[("x-forwarded-for", "203.0.113.7:4711")]);
        assert_eq!(forwarded_ip(&h), "203.0.113.7".parse().ok());
        let h = headers(&[("x-real-ip", "2001:db8::1")]);
        assert_eq!(forwarded_ip(&h), "2001:db8::1".parse().ok());
    }
}
