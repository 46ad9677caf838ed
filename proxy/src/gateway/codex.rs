//! Shaping a Responses request for a ChatGPT (Codex) subscription account: the ChatGPT
//! backend's Codex endpoint, the token as bearer with the workspace in `chatgpt-account-id`,
//! and a body the backend takes (`store: false`, always streamed, instructions present).
//!
//! The backend streams every answer; a client that asked for a whole one gets the
//! `response` object of the stream's final event ([`whole_from_stream`]).

use axum::body::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::anthropic::rewrite_top_level;
use crate::snapshot::AccountEntry;

/// Client headers forwarded to the Codex backend.
const FORWARDED: &[&str] = &[
    "accept-language",
    "content-type",
    "openai-beta",
    "originator",
    "session_id",
    "conversation_id",
    "user-agent",
    "version",
];

/// Who non-Codex clients are presented as.
const CODEX_USER_AGENT: &str = "codex_cli_rs/0.169.0 (Debian 12; x86_64) xterm-256color";
const CODEX_ORIGINATOR: &str = "codex_cli_rs";
/// Fields the Codex backend refuses.
const REFUSED_FIELDS: &[&str] = &["max_output_tokens", "max_completion_tokens"];

/// Whether the request comes from the Codex CLI itself.
pub(super) fn is_codex(headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    value("originator").starts_with("codex_") || value("user-agent").starts_with("codex_")
}

pub(super) fn url(account: &AccountEntry, default_base: &str, subpath: &str) -> String {
    format!("{}/backend-api/codex/responses{subpath}", super::upstream_base(account, default_base))
}

pub(super) fn headers(client: &HeaderMap, account: &AccountEntry) -> HeaderMap {
    let mut out = super::forwarded_headers(client, FORWARDED);
    if !is_codex(client) {
        out.insert(http::header::USER_AGENT, HeaderValue::from_static(CODEX_USER_AGENT));
        out.insert(HeaderName::from_static("originator"), HeaderValue::from_static(CODEX_ORIGINATOR));
    }
    out.insert(http::header::ACCEPT, HeaderValue::from_static("text/event-stream"));
    out.insert(HeaderName::from_static("openai-beta"), HeaderValue::from_static("responses=experimental"));
    if let Some(id) = account.oauth.as_ref().and_then(|o| o.account_uuid.as_deref())
        && let Ok(value) = HeaderValue::from_str(id)
    {
        out.insert(HeaderName::from_static("chatgpt-account-id"), value);
    }
    if let Some(bearer) = super::secret_header(&format!("Bearer {}", account.api_key)) {
        out.insert(http::header::AUTHORIZATION, bearer);
    }
    out
}

/// The body for the backend: the mapped model, `store: false` and `stream: true`, the
/// client's instructions or `default_instructions` when it sent none, without the fields the
/// backend refuses. Everything else keeps its bytes and order (unless a refused field had to
/// go, which re-encodes the body).
pub(super) fn body(original: &Bytes, upstream_model: &str, default_instructions: &str) -> Bytes {
    let parsed: Option<serde_json::Map<String, Value>> = serde_json::from_slice(original).ok();
    let Some(mut map) = parsed else { return original.clone() };
    let needs_instructions = map.get("instructions").is_none_or(|v| v.is_null() || v.as_str() == Some(""));
    if REFUSED_FIELDS.iter().any(|f| map.contains_key(*f)) {
        for field in REFUSED_FIELDS {
            map.remove(*field);
        }
        map.insert("model".into(), Value::String(upstream_model.to_owned()));
        map.insert("store".into(), Value::Bool(false));
        map.insert("stream".into(), Value::Bool(true));
        if needs_instructions {
            map.insert("instructions".into(), Value::String(default_instructions.to_owned()));
        }
        return serde_json::to_vec(&map).map_or_else(|_| original.clone(), Bytes::from);
    }
    let model = Value::String(upstream_model.to_owned()).to_string();
    let instructions = Value::String(default_instructions.to_owned()).to_string();
    let edited = rewrite_top_level(
        original,
        |key, _| match key {
            "model" => Some(model.clone()),
            "store" => Some("false".into()),
            "stream" => Some("true".into()),
            "instructions" if needs_instructions => Some(instructions.clone()),
            _ => None,
        },
        &[("store", "false"), ("stream", "true"), ("instructions", &instructions)],
    );
    edited.map_or_else(|| original.clone(), Bytes::from)
}

/// The final `response` object of a Responses event stream (`response.completed`,
/// `response.incomplete` or `response.failed`), as JSON bytes.
pub(super) fn whole_from_stream(sse: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(sse).ok()?;
    text.lines()
        .rev()
        .filter_map(|line| line.strip_prefix("data:").map(str::trim))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter(|event| {
            matches!(
                event.get("type").and_then(Value::as_str),
                Some("response.completed" | "response.incomplete" | "response.failed")
            )
        })
        .find_map(|event| event.get("response").cloned())
        .and_then(|response| serde_json::to_vec(&response).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountEntry {
        let mut a = super::super::anthropic::tests_support::account();
        a.platform = domain::Platform::Openai;
        a.kind = domain::AccountKind::OAuth;
        a.api_key = "fake-at-3".into();
        a.base_url = None;
        a.oauth = Some(std::sync::Arc::new(crate::snapshot::OAuthEntry {
            expires_at: 0,
            refreshable: true,
            account_uuid: Some("acct-1".into()),
            project_id: None,
        }));
        a
    }

    #[test]
    fn sdk_requests_become_codex_backend_requests() {
        let mut client = HeaderMap::new();
        client.insert("authorization", HeaderValue::from_static("Bearer sk-gateway"));
        client.insert("user-agent", HeaderValue::from_static("OpenAI/Python 2.0"));
        let h = headers(&client, &account());
        assert_eq!(h["authorization"], "Bearer fake-at-3");
        assert_eq!(h["chatgpt-account-id"], "acct-1");
        assert_eq!(
            (h["originator"].to_str().ok(), h["accept"].to_str().ok()),
            (Some("codex_cli_rs"), Some("text/event-stream"))
        );
        assert!(h["user-agent"].to_str().unwrap_or_default().starts_with("codex_cli_rs/"));
        assert_eq!(url(&account(), "https://chatgpt.com/", ""), "https://chatgpt.com/backend-api/codex/responses");

        let b =
            Bytes::from_static(br#"{"model":"gpt-x","input":"hi","store":true,"max_output_tokens":50,"stream":false}"#);
        let out: Value = serde_json::from_slice(&body(&b, "gpt-5.1", "Be helpful.")).unwrap_or_default();
        assert_eq!((out["store"].as_bool(), out["stream"].as_bool()), (Some(false), Some(true)));
        assert_eq!((out["model"].as_str(), out["instructions"].as_str()), (Some("gpt-5.1"), Some("Be helpful.")));
        assert!(out.get("max_output_tokens").is_none(), "{out}");
        assert_eq!(out["input"], "hi");
    }

    #[test]
    fn codex_keeps_its_identity_and_instructions() {
        let mut client = HeaderMap::new();
        client.insert("originator", HeaderValue::from_static("codex_exec"));
        client.insert("user-agent", HeaderValue::from_static("codex_exec/0.169.0"));
        assert!(is_codex(&client));
        let h = headers(&client, &account());
        assert_eq!(
            (h["originator"].to_str().ok(), h["user-agent"].to_str().ok()),
            (Some("codex_exec"), Some("codex_exec/0.169.0"))
        );
        let b = Bytes::from_static(br#"{"model":"gpt-5.1","instructions":"codex prompt","input":[],"stream":true}"#);
        let out = body(&b, "gpt-5.1", "x");
        assert_eq!(
            &out[..],
            br#"{"model":"gpt-5.1","instructions":"codex prompt","input":[],"stream":true,"store":false}"#
        );
    }

    #[test]
    fn a_whole_answer_from_the_final_event() {
        let sse = b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"r\",\"status\":\"in_progress\"}}\n\nevent: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"status\":\"completed\",\"usage\":{\"input_tokens\":3}}}\n\n";
        let whole: Value = serde_json::from_slice(&whole_from_stream(sse).unwrap_or_default()).unwrap_or_default();
        assert_eq!((whole["status"].as_str(), whole["usage"]["input_tokens"].as_i64()), (Some("completed"), Some(3)));
        assert!(whole_from_stream(b"data: {\"type\":\"response.created\"}\n\n").is_none());
    }
}
