//! The sticky-session key: which conversation a request belongs to, so the scheduler can send
//! its turns to the same account (and keep the upstream prompt cache warm).
//!
//! This module only derives the key from the request body and headers, and names the
//! coordinator key a binding lives under. It must not look up or store bindings, pick
//! accounts, or change the request; and it never returns raw prompt text: content-derived
//! keys are hashes, and client-supplied ids that do not look like ids are hashed too, so a
//! key is always short and printable.

use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The session id header Claude Code sends with every request.
pub const CLAUDE_CODE_SESSION_HEADER: &str = "x-claude-code-session-id";

/// Longest client-supplied session id used as is; longer ones are hashed.
const MAX_SESSION_ID_LEN: usize = 128;

/// Where a session key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionSource {
    /// `metadata.user_id` in the legacy `user_<hex>_account_…_session_<uuid>` form.
    MetadataUserId,
    /// `metadata.user_id` holding a JSON object with a `session_id`.
    MetadataJson,
    /// The `X-Claude-Code-Session-Id` header.
    ClaudeCodeHeader,
    /// Hash of the text of the first message that has an ephemeral `cache_control` block.
    CachedMessage,
    /// Hash of the text of the system blocks marked with ephemeral `cache_control`.
    CachedSystem,
    /// Hash of the OpenAI `session_id` (or Codex `session-id`) header.
    OpenAiSessionHeader,
    /// Hash of the OpenAI `conversation_id` header.
    OpenAiConversationHeader,
    /// Hash of the Responses body's `prompt_cache_key`.
    PromptCacheKey,
}

/// A request's session key and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    pub source: SessionSource,
    /// Short and printable: a session id (UUIDs lower-cased) or a hex digest.
    pub key: String,
}

impl SessionKey {
    fn new(source: SessionSource, key: String) -> Self {
        Self { source, key }
    }
}

/// The session key of an Anthropic Messages request, or `None` when nothing in it identifies
/// a conversation. In order: `metadata.user_id` (legacy or JSON form), the Claude Code
/// session header, then a hash of the content marked for prompt caching.
pub fn anthropic_session(body: &Value, headers: &HeaderMap) -> Option<SessionKey> {
    metadata_session(body)
        .or_else(|| {
            header_value(headers, CLAUDE_CODE_SESSION_HEADER)
                .map(|id| SessionKey::new(SessionSource::ClaudeCodeHeader, client_session_id(id)))
        })
        .or_else(|| cached_content_session(body))
}

/// The session key of an OpenAI (Chat Completions or Responses) request: the `session_id`
/// header (Codex CLI spells it `session-id`), the `conversation_id` header, or the body's
/// `prompt_cache_key`, each as a full SHA-256 hex digest.
pub fn openai_session(body: &Value, headers: &HeaderMap) -> Option<SessionKey> {
    let header = |names: [&str; 2]| names.into_iter().find_map(|n| header_value(headers, n));
    let (source, value) = if let Some(id) = header(["session_id", "session-id"]) {
        (SessionSource::OpenAiSessionHeader, id)
    } else if let Some(id) = header(["conversation_id", "conversation-id"]) {
        (SessionSource::OpenAiConversationHeader, id)
    } else {
        let key = body.get("prompt_cache_key").and_then(Value::as_str).map(str::trim).filter(|key| !key.is_empty())?;
        (SessionSource::PromptCacheKey, key)
    };
    Some(SessionKey::new(source, sha256_hex(value)))
}

/// The coordinator key a sticky binding is stored under, namespaced by group so the same
/// session in two groups (which have different accounts) never shares a binding.
pub fn binding_key(group_id: i64, session: &str) -> String {
    format!("sticky:{group_id}:{session}")
}

/// The session in `metadata.user_id` when it is in one of the forms Claude Code writes.
pub fn metadata_session(body: &Value) -> Option<SessionKey> {
    #[derive(Deserialize)]
    struct UserIdJson {
        session_id: Option<String>,
    }
    let user_id = body.get("metadata")?.get("user_id")?.as_str()?.trim();
    if user_id.starts_with('{') {
        let parsed: UserIdJson = serde_json::from_str(user_id).ok()?;
        let id = parsed.session_id?;
        let id = id.trim();
        return (!id.is_empty()).then(|| SessionKey::new(SessionSource::MetadataJson, client_session_id(id)));
    }
    legacy_session_uuid(user_id).map(|uuid| SessionKey::new(SessionSource::MetadataUserId, uuid.to_ascii_lowercase()))
}

/// The session uuid of `user_<hex>_account__session_<uuid>` or
/// `user_<hex>_account_<uuid>_session_<uuid>`.
fn legacy_session_uuid(user_id: &str) -> Option<&str> {
    let rest = user_id.strip_prefix("user_")?;
    let (_, account_and_session) = rest.split_once("_account_")?;
    let (_, session) = account_and_session.rsplit_once("_session_")?;
    is_uuid(session).then_some(session)
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(text: &str) -> bool {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let mut parts = text.split('-');
    GROUPS
        .iter()
        .all(|&len| parts.next().is_some_and(|part| part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit())))
        && parts.next().is_none()
}

/// A session id the client sent: kept (UUIDs lower-cased) when it looks like an id, hashed
/// when it is long or holds spaces or control characters.
fn client_session_id(id: &str) -> String {
    if is_uuid(id) {
        id.to_ascii_lowercase()
    } else if id.len() <= MAX_SESSION_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic()) {
        id.to_owned()
    } else {
        short_sha256_hex(id)
    }
}

fn header_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim).filter(|value| !value.is_empty())
}

/// The first message with an ephemeral `cache_control` block (its whole text), else the
/// system blocks with one. Empty text identifies nothing and is skipped.
fn cached_content_session(body: &Value) -> Option<SessionKey> {
    let message_text = body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|message| {
            message.get("content").and_then(Value::as_array).is_some_and(|blocks| blocks.iter().any(is_ephemeral))
        })
        .and_then(|message| message.get("content"))
        .map(content_text)
        .filter(|text| !text.is_empty());
    if let Some(text) = message_text {
        return Some(SessionKey::new(SessionSource::CachedMessage, short_sha256_hex(&text)));
    }
    let system_text: String = body
        .get("system")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|block| is_ephemeral(block))
        .filter_map(block_text)
        .collect();
    (!system_text.is_empty()).then(|| SessionKey::new(SessionSource::CachedSystem, short_sha256_hex(&system_text)))
}

fn is_ephemeral(block: &Value) -> bool {
    block.get("cache_control").and_then(|cc| cc.get("type")).and_then(Value::as_str) == Some("ephemeral")
}

/// A message's text: a string content as is, or its text blocks concatenated.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(block_text).collect(),
        _ => String::new(),
    }
}

fn block_text(block: &Value) -> Option<&str> {
    if block.get("type").and_then(Value::as_str) != Some("text") {
        return None;
    }
    block.get("text").and_then(Value::as_str)
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The first 32 hex digits (128 bits) of the SHA-256 of `text`.
fn short_sha256_hex(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    const SESSION: &str = "3591154d-7c1e-4c57-9a8e-2f3b7a1d0e42";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn with_user_id(user_id: &str) -> Value {
        json!({
            "model": "claude-sonnet-4-5-20250929",
            "max_tokens": 1024,
            "metadata": {"user_id": user_id},
            "messages": [{"role": "user", "content": "hi"}],
        })
    }

    fn key(source: SessionSource, key: &str) -> Option<SessionKey> {
        Some(SessionKey::new(source, key.to_owned()))
    }

    #[test]
    fn legacy_user_id_with_empty_account() {
        let user_id = format!("user_{}_account__session_{SESSION}", "a1".repeat(32));
        assert_eq!(
            anthropic_session(&with_user_id(&user_id), &HeaderMap::new()),
            key(SessionSource::MetadataUserId, SESSION)
        );
    }

    #[test]
    fn legacy_user_id_with_account_uuid() {
        let user_id = format!(
            "user_{}_account_0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0_session_{}",
            "b2".repeat(32),
            SESSION.to_uppercase()
        );
        assert_eq!(
            anthropic_session(&with_user_id(&user_id), &HeaderMap::new()),
            key(SessionSource::MetadataUserId, SESSION),
            "the session uuid, lower-cased, not the account uuid"
        );
    }

    #[test]
    fn json_user_id() {
        let user_id = format!(r#"{{"device_id":"{}","account_uuid":"","session_id":"{SESSION}"}}"#, "c3".repeat(32));
        assert_eq!(
            anthropic_session(&with_user_id(&user_id), &HeaderMap::new()),
            key(SessionSource::MetadataJson, SESSION)
        );
    }

    #[test]
    fn metadata_wins_over_the_header() {
        let user_id = format!("user_{}_account__session_{SESSION}", "d4".repeat(32));
        let other = "11111111-2222-4333-8444-555555555555";
        assert_eq!(
            anthropic_session(&with_user_id(&user_id), &headers(&[(CLAUDE_CODE_SESSION_HEADER, other)])),
            key(SessionSource::MetadataUserId, SESSION)
        );
    }

    #[test]
    fn header_when_metadata_has_no_session() {
        let other = "11111111-2222-4333-8444-555555555555";
        for user_id in [
            "user-1234",
            "user_abc_account__session_not-a-uuid",
            r#"{"device_id":"x","session_id":""}"#,
            "{broken json",
        ] {
            assert_eq!(
                anthropic_session(&with_user_id(user_id), &headers(&[("X-Claude-Code-Session-Id", other)])),
                key(SessionSource::ClaudeCodeHeader, other),
                "{user_id}"
            );
        }
    }

    #[test]
    fn odd_client_session_ids_are_hashed() {
        let long = "s".repeat(500);
        let got =
            anthropic_session(&json!({"messages": []}), &headers(&[(CLAUDE_CODE_SESSION_HEADER, &long)])).unwrap();
        assert_eq!(got.key, short_sha256_hex(&long));
        let spaced = r#"{"session_id":"my session"}"#;
        assert_eq!(
            anthropic_session(&with_user_id(spaced), &HeaderMap::new()).unwrap().key,
            short_sha256_hex("my session")
        );
        let plain = r#"{"session_id":"conv_42"}"#;
        assert_eq!(
            anthropic_session(&with_user_id(plain), &HeaderMap::new()),
            key(SessionSource::MetadataJson, "conv_42")
        );
    }

    #[test]
    fn first_cached_message_is_hashed() {
        let body = json!({
            "system": [{"type": "text", "text": "You are helpful.", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "plain first turn"},
                {"role": "assistant", "content": [{"type": "text", "text": "ok"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Here is the document: "},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                    {"type": "text", "text": "summarise it", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
                ]},
                {"role": "user", "content": [{"type": "text", "text": "later", "cache_control": {"type": "ephemeral"}}]}
            ]
        });
        let got = anthropic_session(&body, &HeaderMap::new()).unwrap();
        assert_eq!(got.source, SessionSource::CachedMessage);
        assert_eq!(got.key, short_sha256_hex("Here is the document: summarise it"));
        assert_eq!(got.key.len(), 32);
        assert!(got.key.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn cached_system_blocks_when_no_message_is_cached() {
        let body = json!({
            "system": [
                {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Not cached."},
                {"type": "text", "text": " Project rules.", "cache_control": {"type": "ephemeral"}}
            ],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
        });
        assert_eq!(
            anthropic_session(&body, &HeaderMap::new()),
            key(SessionSource::CachedSystem, &short_sha256_hex("You are Claude Code. Project rules."))
        );
    }

    #[test]
    fn same_cached_prefix_gives_the_same_key_across_turns() {
        let turn = |extra: &str| {
            json!({
                "system": [{"type": "text", "text": "Stable prompt", "cache_control": {"type": "ephemeral"}}],
                "messages": [{"role": "user", "content": extra}]
            })
        };
        let first = anthropic_session(&turn("one"), &HeaderMap::new());
        let second = anthropic_session(&turn("two"), &HeaderMap::new());
        assert!(first.is_some());
        assert_eq!(first, second);
    }

    #[test]
    fn nothing_identifies_the_conversation() {
        for body in [
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            json!({"system": "You are helpful.", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "image", "source": {}, "cache_control": {"type": "ephemeral"}}]}]}),
            json!({"metadata": {"user_id": 42}, "messages": "not an array"}),
            json!(null),
        ] {
            assert_eq!(anthropic_session(&body, &HeaderMap::new()), None, "{body}");
        }
    }

    #[test]
    fn openai_session_sources_in_order() {
        let body = json!({"model": "gpt-5.1-codex", "prompt_cache_key": "pck-1", "input": []});
        assert_eq!(
            openai_session(&body, &headers(&[("session_id", "s-1"), ("conversation_id", "c-1")])),
            key(SessionSource::OpenAiSessionHeader, &sha256_hex("s-1"))
        );
        assert_eq!(
            openai_session(&body, &headers(&[("session-id", "s-2")])),
            key(SessionSource::OpenAiSessionHeader, &sha256_hex("s-2")),
            "Codex CLI sends the header with a hyphen"
        );
        assert_eq!(
            openai_session(&body, &headers(&[("conversation_id", "c-1")])),
            key(SessionSource::OpenAiConversationHeader, &sha256_hex("c-1"))
        );
        assert_eq!(openai_session(&body, &HeaderMap::new()), key(SessionSource::PromptCacheKey, &sha256_hex("pck-1")));
        assert_eq!(openai_session(&json!({"prompt_cache_key": "  "}), &headers(&[("session_id", " ")])), None);
    }

    #[test]
    fn digests_are_sha256() {
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(short_sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223");
    }

    #[test]
    fn binding_keys_are_namespaced_by_group() {
        assert_eq!(binding_key(7, SESSION), format!("sticky:7:{SESSION}"));
        assert_ne!(binding_key(1, "s"), binding_key(2, "s"));
    }

    #[test]
    fn uuid_shape() {
        assert!(is_uuid(SESSION));
        assert!(is_uuid("3591154D-7C1E-4C57-9A8E-2F3B7A1D0E42"));
        assert!(!is_uuid("3591154d-7c1e-4c57-9a8e-2f3b7a1d0e4"));
        assert!(!is_uuid("3591154d-7c1e-4c57-9a8e-2f3b7a1d0e42-00"));
        assert!(!is_uuid("3591154d7c1e4c579a8e2f3b7a1d0e42abcd"));
        assert!(!is_uuid("zzzzzzzz-7c1e-4c57-9a8e-2f3b7a1d0e42"));
    }
}
