//! Protocol translation through typed wire structs: OpenAI Chat Completions and Responses
//! requests served by Anthropic Messages accounts, and Anthropic Messages requests served by
//! OpenAI accounts. Requests and whole responses are converted value to value; streams are
//! converted one whole SSE event at a time by a [`StreamConverter`].
//!
//! The relay decides when to translate (the key's group platform differs from the route's
//! protocol) and keeps doing everything else itself: scheduling, failover, usage rows.

pub mod anthropic;
pub mod chat;
pub mod responses;

use serde::Serialize;
use serde_json::{Value, json};

use crate::error::Protocol;

/// A request that cannot be expressed in the target protocol; `field` names what stopped it
/// (a JSON path in the caller's request, such as `messages[2].content[0].type`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Unmappable {
    pub field: String,
    pub message: String,
}

impl Unmappable {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Converts one protocol's stream into another's, one whole upstream SSE event at a time.
pub trait StreamConverter: Send {
    /// One upstream event (its `event:` name if any, its `data:` payload); whole client
    /// events are appended to `out`.
    fn event(&mut self, name: Option<&str>, data: &[u8], out: &mut Vec<u8>);
    /// The upstream stream is over. `clean`: it reached its own end (`message_stop`,
    /// `[DONE]`); otherwise the relay follows with one terminal error event, so nothing that
    /// claims success may be written.
    fn finish(&mut self, clean: bool, out: &mut Vec<u8>);
}

/// Appends one SSE event: an optional `event:` line and one compact `data:` line.
pub fn write_event(out: &mut Vec<u8>, name: Option<&str>, data: &impl Serialize) {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // Serialising plain structs and `Value`s into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, data);
    out.extend_from_slice(b"\n\n");
}

/// Seconds since the Unix epoch, for `created` / `created_at` fields.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// An upstream error body in the client's protocol: its message and type kept, its shape
/// changed (Anthropic `{"type":"error","error":{type,message}}` ⇄ OpenAI
/// `{"error":{message,type,param,code}}`).
pub fn error_body(to: Protocol, upstream: &[u8]) -> Vec<u8> {
    let parsed: Option<Value> = serde_json::from_slice(upstream).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let text = |key: &str| error.and_then(|e| e.get(key)).and_then(Value::as_str);
    let message =
        text("message").map_or_else(|| String::from_utf8_lossy(upstream).chars().take(500).collect(), str::to_owned);
    let kind = text("type").unwrap_or("api_error");
    let body = match to {
        Protocol::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
        Protocol::OpenAi | Protocol::Google => json!({"error": {
            "message": message,
            "type": kind,
            "param": error.and_then(|e| e.get("param")).cloned().unwrap_or(Value::Null),
            "code": error.and_then(|e| e.get("code")).cloned().unwrap_or(Value::Null),
        }}),
    };
    body.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_change_shape_and_keep_message_and_type() {
        let anthropic = br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}"#;
        let out: Value = serde_json::from_slice(&error_body(Protocol::OpenAi, anthropic)).unwrap();
        assert_eq!(
            out,
            json!({"error": {"message": "max_tokens: too big", "type": "invalid_request_error", "param": null, "code": null}})
        );
        let openai = br#"{"error":{"message":"bad model","type":"invalid_request_error","param":"model","code":"model_not_found"}}"#;
        let out: Value = serde_json::from_slice(&error_body(Protocol::Anthropic, openai)).unwrap();
        assert_eq!(out, json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad model"}}));
        let out: Value = serde_json::from_slice(&error_body(Protocol::Anthropic, b"gateway timeout")).unwrap();
        assert_eq!(out["error"]["message"], "gateway timeout");
    }
}
