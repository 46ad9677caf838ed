//! Shaping a request for a Claude subscription account (OAuth or setup token): the token as
//! `Authorization: Bearer`, the OAuth beta, and — for requests that do not come from Claude
//! Code itself — the identity Claude Code would present: its system prompt block, a stable
//! per-account client fingerprint, and a `metadata.user_id` in the account's name.
//!
//! Genuine Claude Code (its user agent, and a `metadata.user_id` it wrote) passes with the
//! least change: the bearer token, the beta merged in, and the user id moved onto the
//! account (every user behind one subscription would otherwise show up as a different
//! device of it). Nothing else in its headers or body is touched.

use axum::body::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::snapshot::AccountEntry;
use crate::sticky;

pub(super) const OAUTH_BETA: &str = "oauth-2025-04-20";
pub(super) const CLAUDE_CODE_BETA: &str = "claude-code-20250219";
const INTERLEAVED_THINKING_BETA: &str = "interleaved-thinking-2025-05-14";
const FINE_GRAINED_TOOL_STREAMING_BETA: &str = "fine-grained-tool-streaming-2025-05-14";
/// The first system block Claude Code sends.
pub(super) const SYSTEM_PROMPT: &str = "You are Claude Code, Anthropic's official CLI for Claude.";

/// The client Claude Code presents (the fingerprint of non-Claude-Code requests).
const FINGERPRINT: &[(&str, &str)] = &[
    ("user-agent", "claude-cli/2.1.197 (external, cli)"),
    ("x-app", "cli"),
    ("anthropic-dangerous-direct-browser-access", "true"),
    ("x-stainless-lang", "js"),
    ("x-stainless-package-version", "0.94.0"),
    ("x-stainless-os", "Linux"),
    ("x-stainless-arch", "x64"),
    ("x-stainless-runtime", "node"),
    ("x-stainless-runtime-version", "v22.14.0"),
    ("x-stainless-retry-count", "0"),
    ("x-stainless-timeout", "600"),
];

/// Whether the request comes from Claude Code: its user agent and a `metadata.user_id` in
/// one of the forms it writes.
pub(super) fn is_claude_code(headers: &HeaderMap, body: &Value) -> bool {
    let agent = headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    agent.starts_with("claude-cli/") && sticky::metadata_session(body).is_some()
}

/// `anthropic-beta` for the upstream: every beta the client sent, with the OAuth beta added
/// (after the Claude Code beta when present, else first). Without a client value, the set
/// Claude Code sends for the model. Non-Claude-Code clients also get the Claude Code beta.
pub(super) fn merge_beta(client: Option<&str>, model: &str, genuine: bool) -> String {
    let haiku = model.contains("haiku");
    let mut betas: Vec<&str> = client.unwrap_or_default().split(',').map(str::trim).filter(|b| !b.is_empty()).collect();
    if betas.is_empty() {
        return if haiku {
            [OAUTH_BETA, INTERLEAVED_THINKING_BETA].join(",")
        } else {
            [CLAUDE_CODE_BETA, OAUTH_BETA, INTERLEAVED_THINKING_BETA, FINE_GRAINED_TOOL_STREAMING_BETA].join(",")
        };
    }
    if !genuine && !haiku && !betas.contains(&CLAUDE_CODE_BETA) {
        betas.insert(0, CLAUDE_CODE_BETA);
    }
    if !betas.contains(&OAUTH_BETA) {
        let at = betas.iter().position(|b| *b == CLAUDE_CODE_BETA).map_or(0, |i| i + 1);
        betas.insert(at, OAUTH_BETA);
    }
    betas.join(",")
}

/// The upstream headers: the allowlisted client headers, the bearer token, the merged beta,
/// and for non-Claude-Code clients the account's fingerprint in place of theirs.
pub(super) fn headers(
    client: &HeaderMap,
    forwarded: HeaderMap,
    account: &AccountEntry,
    model: &str,
    genuine: bool,
) -> HeaderMap {
    let mut out = forwarded;
    if !genuine {
        for (name, value) in FINGERPRINT {
            out.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
    }
    let client_beta = client.get("anthropic-beta").and_then(|v| v.to_str().ok());
    if let Ok(beta) = HeaderValue::from_str(&merge_beta(client_beta, model, genuine)) {
        out.insert(HeaderName::from_static("anthropic-beta"), beta);
    }
    out.remove("x-api-key");
    if let Some(value) = super::secret_header(&format!("Bearer {}", account.api_key)) {
        out.insert(http::header::AUTHORIZATION, value);
    }
    out
}

/// The account's stable device id (64 hex): the same on every instance, different per
/// account.
fn device_id(account: &AccountEntry) -> String {
    let uuid = account.oauth.as_ref().and_then(|o| o.account_uuid.as_deref()).unwrap_or_default();
    hex::encode(Sha256::digest(format!("sub2api-device\0{}\0{uuid}", account.id)))
}

/// A UUID derived from `seed`, so one client session always maps to one upstream session.
fn derived_uuid(seed: &str) -> String {
    let mut b: [u8; 16] = Sha256::digest(seed.as_bytes())[..16].try_into().unwrap_or_default();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// What identifies the conversation: the client's session (its user id, Claude Code's
/// header, or its cache-marked content), else its user id with the system prompt and first
/// message (the same for every turn).
fn conversation_seed(body: &Value, headers: &HeaderMap) -> String {
    if let Some(session) = sticky::anthropic_session(body, headers) {
        return session.key;
    }
    let client_user = body.pointer("/metadata/user_id").and_then(Value::as_str).unwrap_or_default();
    let first = body.pointer("/messages/0/content").map(Value::to_string).unwrap_or_default();
    let system = body.get("system").map(Value::to_string).unwrap_or_default();
    hex::encode(Sha256::digest(format!("{client_user}\0{system}\0{first}")))
}

/// The account's `metadata.user_id` for this conversation, in the form the client used
/// (legacy or JSON; JSON when the client sent none).
fn user_id(account: &AccountEntry, body: &Value, headers: &HeaderMap) -> String {
    let device = device_id(account);
    let uuid = account.oauth.as_ref().and_then(|o| o.account_uuid.clone()).unwrap_or_default();
    let session = derived_uuid(&format!("{}::{}", account.id, conversation_seed(body, headers)));
    let legacy = sticky::metadata_session(body).is_some_and(|s| s.source == sticky::SessionSource::MetadataUserId);
    if legacy {
        return format!("user_{device}_account_{uuid}_session_{session}");
    }
    json!({"device_id": device, "account_uuid": uuid, "session_id": session}).to_string()
}

/// The upstream body: the mapped model, the user id on the account (Messages only: token
/// counting takes no metadata), and for non-Claude-Code clients the system prompt block
/// first. Every other field keeps its bytes and order.
pub(super) fn body(
    original: &Bytes,
    parsed: &Value,
    headers: &HeaderMap,
    account: &AccountEntry,
    upstream_model: &str,
    messages: bool,
    genuine: bool,
) -> Bytes {
    let model = Value::String(upstream_model.to_owned()).to_string();
    let user_id = messages.then(|| user_id(account, parsed, headers));
    let metadata = user_id.as_ref().map(|id| json!({"user_id": id}).to_string());
    let system = (!genuine).then(|| json!([system_block()]).to_string());
    let edited = super::anthropic::rewrite_top_level(
        original,
        |key, raw| match key {
            "model" => Some(model.clone()),
            "metadata" => {
                let id = user_id.as_ref()?;
                let mut value: Value = serde_json::from_str(raw).ok()?;
                value.as_object_mut()?.insert("user_id".into(), Value::String(id.clone()));
                Some(value.to_string())
            }
            "system" if !genuine => Some(with_system_block(raw)),
            _ => None,
        },
        &[metadata.as_deref().map(|m| ("metadata", m)), system.as_deref().map(|s| ("system", s))]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
    );
    edited.map_or_else(|| original.clone(), Bytes::from)
}

fn system_block() -> Value {
    json!({"type": "text", "text": SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}})
}

/// The client's system prompt with Claude Code's block in front (once).
fn with_system_block(raw: &str) -> String {
    let blocks = match serde_json::from_str::<Value>(raw) {
        Ok(Value::String(text)) if text.is_empty() => vec![system_block()],
        Ok(Value::String(text)) => vec![system_block(), json!({"type": "text", "text": text})],
        Ok(Value::Array(blocks)) => {
            let first = blocks.first().and_then(|b| b.get("text")).and_then(Value::as_str);
            if first.is_some_and(|t| t.starts_with(SYSTEM_PROMPT)) {
                return raw.to_owned();
            }
            std::iter::once(system_block()).chain(blocks).collect()
        }
        Ok(Value::Null) => vec![system_block()],
        _ => return raw.to_owned(),
    };
    Value::Array(blocks).to_string()
}

/// Subscription accounts always call the beta Messages endpoint.
pub(super) fn query(client: Option<&str>) -> String {
    let mut pairs: Vec<&str> = client.unwrap_or_default().split('&').filter(|p| p.starts_with("beta=")).collect();
    if pairs.is_empty() {
        pairs.push("beta=true");
    }
    pairs.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountEntry {
        let mut a = super::super::anthropic::tests_support::account();
        a.kind = domain::AccountKind::OAuth;
        a.api_key = "fake-at-1".into();
        a.oauth = Some(std::sync::Arc::new(crate::snapshot::OAuthEntry {
            expires_at: 0,
            refreshable: true,
            account_uuid: Some("acc-uuid".into()),
            project_id: None,
        }));
        a
    }

    /// A request as Claude Code 2.1.197 sends it (headers and the parts of the body that
    /// matter here).
    fn claude_code() -> (HeaderMap, Bytes) {
        let mut h = HeaderMap::new();
        h.insert("user-agent", HeaderValue::from_static("claude-cli/2.1.197 (external, sdk-cli)"));
        h.insert("x-api-key", HeaderValue::from_static("sk-gateway"));
        h.insert("x-stainless-package-version", HeaderValue::from_static("0.94.0"));
        h.insert(
            "anthropic-beta",
            HeaderValue::from_static("claude-code-20250219,context-1m-2025-08-07,interleaved-thinking-2025-05-14"),
        );
        let body = json!({
            "model": "claude-opus-4-8",
            "messages": [{"role": "user", "content": "say hi"}, {"role": "system", "content": "agents"}],
            "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197"},
                       {"type": "text", "text": "You are a Claude agent"}],
            "metadata": {"user_id": "{\"device_id\":\"aa\",\"account_uuid\":\"\",\"session_id\":\"3591154d-0000-4000-8000-000000000001\"}"},
            "thinking": {"type": "adaptive"},
            "stream": true
        });
        (h, Bytes::from(body.to_string()))
    }

    fn sdk() -> (HeaderMap, Bytes) {
        let mut h = HeaderMap::new();
        h.insert("user-agent", HeaderValue::from_static("Anthropic/Python 2.14.0"));
        h.insert("x-stainless-lang", HeaderValue::from_static("python"));
        h.insert("authorization", HeaderValue::from_static("Bearer sk-gateway"));
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "system": "Be terse.",
            "messages": [{"role": "user", "content": "hi"}], "metadata": {"user_id": "client-user"}});
        (h, Bytes::from(body.to_string()))
    }

    fn shape(h: &HeaderMap, b: &Bytes) -> (HeaderMap, Value) {
        let parsed: Value = serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}"));
        let genuine = is_claude_code(h, &parsed);
        let forwarded = super::super::forwarded_headers(h, super::super::anthropic::FORWARDED);
        let model = parsed["model"].as_str().unwrap_or_default().to_owned();
        let headers = headers(h, forwarded, &account(), &model, genuine);
        let out = body(b, &parsed, h, &account(), &model, true, genuine);
        (headers, serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn claude_code_keeps_its_headers_and_body_but_the_credential_and_user() {
        let (h, b) = claude_code();
        assert!(is_claude_code(&h, &serde_json::from_slice(&b).unwrap_or_default()));
        let (out, body) = shape(&h, &b);
        assert_eq!(out["authorization"], "Bearer fake-at-1");
        assert!(out.get("x-api-key").is_none());
        assert_eq!(
            out["anthropic-beta"],
            "claude-code-20250219,oauth-2025-04-20,context-1m-2025-08-07,interleaved-thinking-2025-05-14"
        );
        assert_eq!(out["user-agent"], "claude-cli/2.1.197 (external, sdk-cli)", "its own user agent");
        assert_eq!(out["x-stainless-package-version"], "0.94.0");
        let original: Value = serde_json::from_slice(&b).unwrap_or_default();
        assert_eq!(body["system"], original["system"], "no extra system block");
        assert_eq!(body["messages"], original["messages"], "system-role messages kept");
        let user: Value =
            serde_json::from_str(body["metadata"]["user_id"].as_str().unwrap_or_default()).unwrap_or_default();
        assert_eq!(user["account_uuid"], "acc-uuid");
        assert_eq!(user["device_id"].as_str().map(str::len), Some(64));
        assert_ne!(user["session_id"], "3591154d-0000-4000-8000-000000000001", "mapped onto the account");
    }

    #[test]
    fn sdk_requests_get_the_claude_code_identity() {
        let (h, b) = sdk();
        let (out, body) = shape(&h, &b);
        assert_eq!(out["user-agent"], FINGERPRINT[0].1);
        assert_eq!(out["x-stainless-lang"], "js");
        assert_eq!(out["authorization"], "Bearer fake-at-1");
        let defaults = "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14";
        assert_eq!(out["anthropic-beta"], defaults);
        assert_eq!(
            merge_beta(Some("tools-x"), "claude-sonnet-4-5", false),
            "claude-code-20250219,oauth-2025-04-20,tools-x"
        );
        assert_eq!(body["system"][0]["text"], SYSTEM_PROMPT);
        assert_eq!(body["system"][1], json!({"type": "text", "text": "Be terse."}));
        let id = body["metadata"]["user_id"].as_str().unwrap_or_default().to_owned();
        assert!(id.contains("acc-uuid"), "{id}");
        let (_, again) = shape(&h, &b);
        assert_eq!(again["metadata"]["user_id"], id, "one conversation, one id");
        let other = Bytes::from(String::from_utf8_lossy(&b).replace("\"hi\"", "\"hello\""));
        let (_, other) = shape(&h, &other);
        assert_ne!(other["metadata"]["user_id"], id, "another conversation, another id");
    }

    #[test]
    fn system_and_metadata_are_added_when_absent_and_the_block_is_not_doubled() {
        let b = Bytes::from_static(br#"{"model":"claude-haiku-4-5","messages":[]}"#);
        let (out, body) = shape(&HeaderMap::new(), &b);
        assert_eq!(out["anthropic-beta"], "oauth-2025-04-20,interleaved-thinking-2025-05-14");
        assert_eq!(body["system"][0]["text"], SYSTEM_PROMPT);
        assert!(body["metadata"]["user_id"].is_string());
        let twice = with_system_block(&body["system"].to_string());
        assert_eq!(serde_json::from_str::<Value>(&twice).unwrap_or_default(), body["system"]);
    }

    #[test]
    fn legacy_user_ids_stay_legacy_and_beta_query_is_forced() {
        let legacy = "user_abc_account__session_11111111-2222-4333-8444-555555555555";
        let body = json!({"metadata": {"user_id": legacy}, "messages": []});
        let id = user_id(&account(), &body, &HeaderMap::new());
        assert!(id.starts_with("user_") && id.contains("_account_acc-uuid_session_"), "{id}");
        assert_eq!(query(None), "beta=true");
        assert_eq!(query(Some("beta=true&key=x")), "beta=true");
        assert_eq!(merge_beta(Some("oauth-2025-04-20,x"), "claude-sonnet", true), "oauth-2025-04-20,x");
    }
}
