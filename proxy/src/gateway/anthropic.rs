//! Shaping a request for an Anthropic API-key account: which client headers go upstream,
//! whose credential is used, and the body with the model the account serves.

use axum::body::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::snapshot::AccountEntry;

pub(super) const DEFAULT_VERSION: &str = "2023-06-01";

/// Most bytes held back while looking for `message_start`.
const MAX_HELD: usize = 1024 * 1024;

/// Client headers forwarded upstream; everything else (the gateway key above all, cookies,
/// `accept-encoding`, hop-by-hop headers) stays here.
pub(super) const FORWARDED: &[&str] = &[
    "accept",
    "accept-language",
    "anthropic-beta",
    "anthropic-dangerous-direct-browser-access",
    "anthropic-version",
    "content-type",
    "sec-fetch-mode",
    "user-agent",
    "x-app",
    "x-claude-code-session-id",
];

/// The upstream URL for `path` (`/v1/messages`, …). Of the client's query only `beta` is
/// kept: anything else (a `key=` above all) stays here.
pub(super) fn url(account: &AccountEntry, default_base: &str, path: &str, query: Option<&str>) -> String {
    let base = super::upstream_base(account, default_base);
    let kept: Vec<&str> = query.unwrap_or_default().split('&').filter(|pair| pair.starts_with("beta=")).collect();
    if kept.is_empty() { format!("{base}{path}") } else { format!("{base}{path}?{}", kept.join("&")) }
}

/// The allowlisted client headers, with a default `anthropic-version`.
pub(super) fn forwarded(client: &HeaderMap) -> HeaderMap {
    let mut out = super::forwarded_headers(client, FORWARDED);
    if !out.contains_key("anthropic-version") {
        out.insert(HeaderName::from_static("anthropic-version"), HeaderValue::from_static(DEFAULT_VERSION));
    }
    out
}

/// The headers sent upstream: the allowlisted client headers and the account's key.
pub(super) fn headers(client: &HeaderMap, account: &AccountEntry) -> HeaderMap {
    let mut out = forwarded(client);
    if let Some(key) = super::secret_header(&account.api_key) {
        out.insert(HeaderName::from_static("x-api-key"), key);
    }
    out
}

/// The body to send: unchanged when the model is not mapped, else the same top-level fields
/// in the same order, byte for byte, with only `model` replaced.
pub(super) fn body(original: &Bytes, requested: &str, upstream: &str) -> Bytes {
    if requested == upstream {
        return original.clone();
    }
    replace_model(original, upstream).map_or_else(|| original.clone(), Bytes::from)
}

fn replace_model(original: &[u8], model: &str) -> Option<Vec<u8>> {
    let model = serde_json::Value::String(model.to_owned()).to_string();
    rewrite_top_level(original, |key, _| (key == "model").then(|| model.clone()), &[])
}

/// Re-emits a JSON object's top-level fields in their order and with their exact bytes,
/// except those `edit` returns new JSON text for; `append` adds fields that are absent.
/// `None` when the body is not a JSON object.
pub(super) fn rewrite_top_level(
    original: &[u8],
    edit: impl Fn(&str, &str) -> Option<String>,
    append: &[(&str, &str)],
) -> Option<Vec<u8>> {
    struct Fields<'a>(Vec<(String, &'a RawValue)>);
    struct FieldsVisitor;
    impl<'de> Visitor<'de> for FieldsVisitor {
        type Value = Fields<'de>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut fields = Vec::new();
            while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                fields.push((key, value));
            }
            Ok(Fields(fields))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(original);
    let fields = (&mut de).deserialize_map(FieldsVisitor).ok()?;
    let mut out = Vec::with_capacity(original.len() + 64);
    out.push(b'{');
    for (i, (key, value)) in fields.0.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).ok()?;
        out.push(b':');
        match edit(key, value.get()) {
            Some(text) => out.extend_from_slice(text.as_bytes()),
            None => out.extend_from_slice(value.get().as_bytes()),
        }
    }
    let mut any = !fields.0.is_empty();
    for (key, text) in append {
        if fields.0.iter().any(|(k, _)| k == key) {
            continue;
        }
        if any {
            out.push(b',');
        }
        any = true;
        serde_json::to_writer(&mut out, key).ok()?;
        out.push(b':');
        out.extend_from_slice(text.as_bytes());
    }
    out.push(b'}');
    Some(out)
}

/// Writes `requested` back as the model of a non-stream answer (a no-op when not mapped).
pub(super) fn restore_model(body: Bytes, requested: &str, upstream: &str) -> Bytes {
    if requested == upstream {
        return body;
    }
    replace_model(&body, requested).map_or(body, Bytes::from)
}

/// Rewrites `message.model` in the first event of a stream (`message_start`), passing every
/// other byte through untouched. Holds back bytes only until that first event is complete.
pub(super) struct StreamModelRewriter {
    requested: String,
    pending: Option<Vec<u8>>,
}

impl StreamModelRewriter {
    /// `None` when the model is not mapped: nothing to rewrite.
    pub(super) fn new(requested: &str, upstream: &str) -> Option<Self> {
        (requested != upstream).then(|| Self { requested: requested.to_owned(), pending: Some(Vec::new()) })
    }

    /// The bytes to forward for `chunk` (possibly none yet). Events before `message_start`
    /// (a relay's keep-alive, a ping) pass through as they complete.
    pub(super) fn process(&mut self, chunk: Bytes) -> Bytes {
        let Some(pending) = self.pending.as_mut() else {
            return chunk;
        };
        pending.extend_from_slice(&chunk);
        let mut out = Vec::new();
        while let Some(pending) = self.pending.as_mut() {
            let Some(end) = event_end(pending) else {
                if pending.len() > MAX_HELD {
                    // Not an event stream we understand: stop holding bytes back.
                    out.extend(self.pending.take().unwrap_or_default());
                }
                break;
            };
            let rest = pending.split_off(end);
            let event = std::mem::replace(pending, rest);
            match rewrite_event(&event, &self.requested) {
                Some(rewritten) => {
                    out.extend(rewritten);
                    out.extend(self.pending.take().unwrap_or_default());
                }
                None => out.extend(event),
            }
        }
        Bytes::from(out)
    }

    /// Bytes still held when the stream ended before its first event was complete.
    pub(super) fn finish(&mut self) -> Bytes {
        self.pending.take().map(Bytes::from).unwrap_or_default()
    }
}

/// End (exclusive) of the first whole event in `buf`: after its blank line.
pub(super) fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn rewrite_event(event: &[u8], requested: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(event).ok()?;
    let mut out = String::with_capacity(text.len() + requested.len());
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        let (content, ending) = match line.strip_suffix("\r\n") {
            Some(c) => (c, "\r\n"),
            None => line.strip_suffix('\n').map_or((line, ""), |c| (c, "\n")),
        };
        let data = content.strip_prefix("data:").map(|d| d.strip_prefix(' ').unwrap_or(d));
        let rewritten = data.and_then(|d| {
            let mut value: serde_json::Value = serde_json::from_str(d).ok()?;
            let message = value.get_mut("message")?.as_object_mut()?;
            message.insert("model".into(), serde_json::Value::String(requested.to_owned()));
            serde_json::to_string(&value).ok()
        });
        match rewritten {
            Some(json) => {
                changed = true;
                out.push_str("data: ");
                out.push_str(&json);
            }
            None => out.push_str(content),
        }
        out.push_str(ending);
    }
    changed.then(|| out.into_bytes())
}

#[cfg(test)]
pub(super) mod tests_support {
    /// A plain Anthropic API-key account for unit tests.
    pub(crate) fn account() -> crate::snapshot::AccountEntry {
        crate::snapshot::AccountEntry {
            id: 1,
            name: "a".into(),
            platform: domain::Platform::Anthropic,
            kind: domain::AccountKind::ApiKey,
            api_key: "sk-ant-upstream".into(),
            base_url: Some("http://up/".into()),
            model_mapping: Default::default(),
            concurrency: 1,
            priority: 1,
            status: domain::AccountStatus::Active,
            schedulable: true,
            rate_limit_reset_at: None,
            overload_until: None,
            last_used_at: None,
            proxy: None,
            oauth: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_model_changes_and_field_order_is_kept() {
        let original = Bytes::from_static(
            br#"{"z":1,"model":"claude-x","messages":[{"role":"system","content":"s"}],"thinking":{"type":"enabled"}}"#,
        );
        let out = body(&original, "claude-x", "claude-y");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"z":1,"model":"claude-y","messages":[{"role":"system","content":"s"}],"thinking":{"type":"enabled"}}"#
        );
        assert_eq!(body(&original, "same", "same"), original, "unmapped bodies are the same bytes");
    }

    #[test]
    fn stream_rewrite_touches_only_message_start_across_chunk_boundaries() {
        let mut r = StreamModelRewriter::new("asked", "served").unwrap();
        let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"served\",\"id\":\"m\"}}\n\n";
        let (a, b) = start.split_at(30);
        assert!(r.process(Bytes::from(a.to_owned())).is_empty(), "held until the event is complete");
        let out = r.process(Bytes::from(format!("{b}event: ping\n")));
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.contains("\"model\":\"asked\"") && !text.contains("served"), "{text}");
        assert!(text.ends_with("\n\nevent: ping\n"), "the rest passes through: {text}");
        let later = Bytes::from_static(b"data: {\"model\":\"served\"}\n\n");
        assert_eq!(r.process(later.clone()), later, "after the first event, bytes are untouched");

        let mut r = StreamModelRewriter::new("asked", "served").unwrap();
        let out = r.process(Bytes::from(format!(": keep-alive\n\nevent: ping\ndata: {{}}\n\n{start}")));
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with(": keep-alive\n\nevent: ping\n"), "{text}");
        assert!(text.contains("\"model\":\"asked\""), "message_start after other events is still rewritten: {text}");
    }

    #[test]
    fn client_credentials_never_go_upstream() {
        let mut client = HeaderMap::new();
        client.insert("authorization", HeaderValue::from_static("Bearer sk-gateway"));
        client.insert("x-api-key", HeaderValue::from_static("sk-gateway"));
        client.insert("anthropic-beta", HeaderValue::from_static("tools-2024"));
        client.insert("x-stainless-lang", HeaderValue::from_static("python"));
        client.insert("cookie", HeaderValue::from_static("a=b"));
        let account = tests_support::account();
        let h = headers(&client, &account);
        assert_eq!(h["x-api-key"], "sk-ant-upstream");
        assert!(h.get("authorization").is_none() && h.get("cookie").is_none());
        assert_eq!(
            (h["anthropic-beta"].to_str().unwrap(), h["x-stainless-lang"].to_str().unwrap()),
            ("tools-2024", "python")
        );
        assert_eq!(h["anthropic-version"], DEFAULT_VERSION);
        assert_eq!(
            url(&account, "https://api.anthropic.com", "/v1/messages", Some("beta=true")),
            "http://up/v1/messages?beta=true"
        );
    }
}
