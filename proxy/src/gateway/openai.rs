//! Shaping a request for an OpenAI API-key account (Chat Completions and Responses): which
//! client headers go upstream, the account's bearer key, and the body with the mapped model
//! and, for chat streams, `stream_options.include_usage` forced on so usage can be billed.

use axum::body::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::anthropic::rewrite_top_level;
use crate::snapshot::AccountEntry;

/// Client headers forwarded upstream (the gateway key and cookies stay here).
const FORWARDED: &[&str] = &[
    "accept",
    "accept-language",
    "content-type",
    "openai-beta",
    "originator",
    "session_id",
    "conversation_id",
    "user-agent",
    "version",
];

pub(super) fn url(account: &AccountEntry, default_base: &str, path: &str) -> String {
    let base = super::upstream_base(account, default_base);
    // A base that already ends in `/v1` (a common way to write it) is not doubled.
    match (base.strip_suffix("/v1"), path.strip_prefix("/v1")) {
        (Some(root), Some(rest)) => format!("{root}/v1{rest}"),
        _ => format!("{base}{path}"),
    }
}

pub(super) fn headers(client: &HeaderMap, account: &AccountEntry) -> HeaderMap {
    let mut out = super::forwarded_headers(client, FORWARDED);
    if let Some(bearer) = super::secret_header(&format!("Bearer {}", account.api_key)) {
        out.insert(http::header::AUTHORIZATION, bearer);
    }
    out
}

/// The body to send: the mapped model, and for a chat stream `include_usage` switched on;
/// every other field keeps its bytes and order.
pub(super) fn body(original: &Bytes, requested: &str, upstream: &str, force_include_usage: bool) -> Bytes {
    if requested == upstream && !force_include_usage {
        return original.clone();
    }
    let edited = rewrite_top_level(
        original,
        |key, raw| match key {
            "model" if requested != upstream => Some(Value::String(upstream.to_owned()).to_string()),
            "stream_options" if force_include_usage => {
                let mut options: Value = serde_json::from_str(raw).ok()?;
                options.as_object_mut()?.insert("include_usage".into(), Value::Bool(true));
                Some(options.to_string())
            }
            _ => None,
        },
        force_include_usage.then_some(("stream_options", r#"{"include_usage":true}"#)).as_slice(),
    );
    edited.map_or_else(|| original.clone(), Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_usage_is_forced_and_the_rest_kept() {
        let original = Bytes::from_static(br#"{"model":"a","stream":true,"messages":[],"x":{"y":1}}"#);
        let out = body(&original, "a", "b", true);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"b","stream":true,"messages":[],"x":{"y":1},"stream_options":{"include_usage":true}}"#
        );
        let with = Bytes::from_static(br#"{"model":"a","stream_options":{"include_usage":false,"z":2}}"#);
        let out: Value = serde_json::from_slice(&body(&with, "a", "a", true)).unwrap();
        assert_eq!(out["stream_options"], serde_json::json!({"include_usage": true, "z": 2}));
        assert_eq!(body(&original, "a", "a", false), original);
    }

    #[test]
    fn base_urls_with_or_without_v1() {
        let mut account = crate::gateway::anthropic::tests_support::account();
        account.base_url = Some("http://up/v1/".into());
        assert_eq!(url(&account, "https://api.openai.com", "/v1/chat/completions"), "http://up/v1/chat/completions");
        account.base_url = None;
        assert_eq!(url(&account, "https://api.openai.com", "/v1/responses"), "https://api.openai.com/v1/responses");
    }
}
