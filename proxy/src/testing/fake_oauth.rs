//! The token endpoint of a fake OAuth provider, served by [`super::FakeUpstream`] on
//! `POST …/oauth/token`: Claude's (JSON body, `/v1/oauth/token`) and OpenAI's
//! (form-encoded, `/oauth/token`) authorization-code and refresh-token grants.
//!
//! It accepts any authorization code except [`BAD_CODE`], issues numbered tokens
//! (`fake-at-N`, `fake-rt-N`), rotates refresh tokens on every refresh (the old one then
//! answers `invalid_grant`, as the real providers do), and keeps every request it received.

use std::collections::{HashSet, VecDeque};

use axum::body::Bytes;
use base64::Engine;
use http::StatusCode;
use serde_json::{Value, json};

/// An authorization code the fake refuses with `invalid_grant`.
pub const BAD_CODE: &str = "bad-code";
/// The account and organisation the fake's tokens belong to.
pub const ACCOUNT_UUID: &str = "0f5c2a9e-4b1d-4c4e-9a53-6f2b8f0e7d11";
pub const ORG_UUID: &str = "7d3e1c52-88a0-4f6b-b1c9-2e4a5d6f7a80";
pub const EMAIL: &str = "owner@example.com";
/// The ChatGPT account id carried in the OpenAI id token.
pub const CHATGPT_ACCOUNT_ID: &str = "acct-fake-chatgpt-1";

/// One token request as received.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub path: String,
    /// The grant's fields (from JSON or form encoding).
    pub fields: serde_json::Map<String, Value>,
}

impl TokenRequest {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }
}

#[derive(Debug)]
pub(super) struct FakeOAuth {
    issued: u64,
    /// Lifetime of the access tokens it issues.
    pub(super) expires_in: i64,
    /// Lifetimes for the next tokens, before `expires_in` applies again.
    pub(super) next_lifetimes: VecDeque<i64>,
    /// Refresh tokens that still work.
    live_refresh: HashSet<String>,
    /// Answers to give before any normal one: (status, OAuth error code).
    pub(super) failures: VecDeque<(u16, String)>,
    pub(super) requests: Vec<TokenRequest>,
}

impl Default for FakeOAuth {
    fn default() -> Self {
        Self {
            issued: 0,
            expires_in: 28_800,
            next_lifetimes: VecDeque::new(),
            live_refresh: HashSet::new(),
            failures: VecDeque::new(),
            requests: vec![],
        }
    }
}

impl FakeOAuth {
    /// Every refresh token issued so far stops working.
    pub(super) fn revoke_all(&mut self) {
        self.live_refresh.clear();
    }

    /// Answers one token request: the status and the JSON body.
    pub(super) fn answer(&mut self, path: &str, content_type: Option<&str>, body: &Bytes) -> (StatusCode, Value) {
        let fields = parse_fields(content_type, body);
        self.requests.push(TokenRequest { path: path.to_owned(), fields: fields.clone() });
        if let Some((status, error)) = self.failures.pop_front() {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            return (status, oauth_error(&error, "scripted failure"));
        }
        let field = |name: &str| fields.get(name).and_then(Value::as_str).unwrap_or_default();
        if field("client_id").is_empty() {
            return (StatusCode::BAD_REQUEST, oauth_error("invalid_client", "client_id is required"));
        }
        let openai = !path.ends_with("/v1/oauth/token");
        match field("grant_type") {
            "authorization_code" => {
                let verifier = field("code_verifier");
                if field("code").is_empty() || !(43..=128).contains(&verifier.len()) {
                    return (StatusCode::BAD_REQUEST, oauth_error("invalid_request", "code and code_verifier needed"));
                }
                if field("code") == BAD_CODE {
                    return (StatusCode::BAD_REQUEST, oauth_error("invalid_grant", "Invalid authorization code"));
                }
                let scope = field("scope");
                (
                    StatusCode::OK,
                    self.issue(openai, if scope.is_empty() { "user:profile user:inference" } else { scope }),
                )
            }
            "refresh_token" => {
                let token = field("refresh_token");
                if !self.live_refresh.remove(token) {
                    return (
                        StatusCode::BAD_REQUEST,
                        oauth_error("invalid_grant", "Refresh token not found or invalid"),
                    );
                }
                (StatusCode::OK, self.issue(openai, "user:profile user:inference"))
            }
            other => (StatusCode::BAD_REQUEST, oauth_error("unsupported_grant_type", other)),
        }
    }

    fn issue(&mut self, openai: bool, scope: &str) -> Value {
        self.issued += 1;
        let n = self.issued;
        let refresh = format!("fake-rt-{n}");
        self.live_refresh.insert(refresh.clone());
        let mut out = json!({
            "token_type": "Bearer",
            "access_token": format!("fake-at-{n}"),
            "refresh_token": refresh,
            "expires_in": self.next_lifetimes.pop_front().unwrap_or(self.expires_in),
        });
        if openai {
            out["id_token"] = Value::String(id_token());
            out["scope"] = json!("openid profile email offline_access");
        } else {
            out["scope"] = json!(scope);
            out["organization"] = json!({"uuid": ORG_UUID, "name": "Fake Org"});
            out["account"] = json!({"uuid": ACCOUNT_UUID, "email_address": EMAIL});
        }
        out
    }
}

fn oauth_error(code: &str, description: &str) -> Value {
    json!({"error": code, "error_description": description})
}

/// An unsigned JWT with the claims the gateway reads from an OpenAI id token.
fn id_token() -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({
        "email": EMAIL,
        "https://api.openai.com/auth": {"chatgpt_account_id": CHATGPT_ACCOUNT_ID, "chatgpt_user_id": "user-fake-1"},
    });
    format!("{}.{}.sig", b64(&json!({"alg": "none"})), b64(&claims))
}

fn parse_fields(content_type: Option<&str>, body: &Bytes) -> serde_json::Map<String, Value> {
    if content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")) {
        return url::form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
    }
    serde_json::from_slice::<Value>(body).ok().and_then(|v| v.as_object().cloned()).unwrap_or_default()
}
