//! What the relay does to a successful upstream stream on its way to the client, per
//! protocol: pass the bytes on (rewriting the model name back, dropping the usage chunk the
//! gateway asked for itself), read the usage, and notice how the stream ended.

use axum::body::Bytes;
use serde_json::Value;

use super::anthropic::{StreamModelRewriter, event_end};
use crate::translate::StreamConverter;
use crate::usage::{AnthropicStreamUsage, SseEvent, SseLineBuffer, Usage, contains_quoted as has_type};

/// How a stream has ended so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StreamEnd {
    /// No end seen yet: if the upstream stops now, the stream broke.
    Open,
    /// The protocol's own end (`message_stop`, `[DONE]`, `response.completed`).
    Done,
    /// The upstream ended it with an error event (terminal too); its message.
    Failed(String),
}

pub(super) trait StreamTap: Send {
    /// The bytes to send for an upstream chunk; may hold some back until an event is whole.
    fn process(&mut self, chunk: Bytes) -> Bytes;
    /// What is still held back when the upstream ends.
    fn finish(&mut self) -> Bytes;
    /// Sees the bytes that reached the client.
    fn delivered(&mut self, bytes: &[u8]);
    /// Called once after the last byte: completes a last event without its blank line.
    fn close(&mut self);
    fn end(&self) -> &StreamEnd;
    fn usage(&self) -> Option<Usage>;
}

/// An upstream error's message (`error.message`, else `message`, else the raw text), at
/// most 500 characters: for the usage row and the log.
pub(super) fn error_message(data: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(data).ok();
    parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message").or_else(|| v.get("message")))
        .and_then(Value::as_str)
        .map_or_else(|| String::from_utf8_lossy(data).chars().take(500).collect(), |m| m.chars().take(500).collect())
}

/// Anthropic Messages: bytes pass through (only `message_start`'s model is rewritten); usage
/// and the end are read from what the client received, so a client that leaves is billed
/// for what it got.
pub(super) struct AnthropicTap {
    rewriter: Option<StreamModelRewriter>,
    lines: SseLineBuffer,
    usage: AnthropicStreamUsage,
    end: StreamEnd,
}

impl AnthropicTap {
    pub(super) fn new(requested: &str, upstream: &str) -> Self {
        Self {
            rewriter: StreamModelRewriter::new(requested, upstream),
            lines: SseLineBuffer::default(),
            usage: AnthropicStreamUsage::new(),
            end: StreamEnd::Open,
        }
    }
}

fn on_anthropic_event(event: SseEvent<'_>, usage: &mut AnthropicStreamUsage, end: &mut StreamEnd) {
    usage.feed(event.data);
    if event.event == Some("error") || (event.event.is_none() && has_type(event.data, "error")) {
        *end = StreamEnd::Failed(error_message(event.data));
    } else if event.event == Some("message_stop") || (event.event.is_none() && has_type(event.data, "message_stop")) {
        *end = StreamEnd::Done;
    }
}

impl StreamTap for AnthropicTap {
    fn process(&mut self, chunk: Bytes) -> Bytes {
        match self.rewriter.as_mut() {
            Some(r) => r.process(chunk),
            None => chunk,
        }
    }

    fn finish(&mut self) -> Bytes {
        self.rewriter.as_mut().map(StreamModelRewriter::finish).unwrap_or_default()
    }

    fn delivered(&mut self, bytes: &[u8]) {
        let (usage, end) = (&mut self.usage, &mut self.end);
        self.lines.push(bytes, |event| on_anthropic_event(event, usage, end));
    }

    fn close(&mut self) {
        let (usage, end) = (&mut self.usage, &mut self.end);
        self.lines.finish(|event| on_anthropic_event(event, usage, end));
    }

    fn end(&self) -> &StreamEnd {
        &self.end
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.has_usage().then(|| self.usage.usage())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OpenAiKind {
    Chat,
    Responses,
}

/// OpenAI Chat Completions and Responses. Usage and the end are read from the upstream
/// events (the usage chunk of a chat stream may be dropped before the client sees it). When
/// an event needs editing (model mapped, usage chunk to drop) bytes are held back until their
/// event is whole; otherwise they pass straight through.
pub(super) struct OpenAiTap {
    kind: OpenAiKind,
    requested: String,
    upstream: String,
    drop_usage_chunk: bool,
    editing: bool,
    pending: Vec<u8>,
    lines: SseLineBuffer,
    usage: Option<Usage>,
    end: StreamEnd,
}

impl OpenAiTap {
    /// `drop_usage_chunk`: the client did not ask for the usage chunk the gateway forced.
    pub(super) fn new(kind: OpenAiKind, requested: &str, upstream: &str, drop_usage_chunk: bool) -> Self {
        let drop_usage_chunk = drop_usage_chunk && kind == OpenAiKind::Chat;
        Self {
            kind,
            requested: requested.to_owned(),
            upstream: upstream.to_owned(),
            drop_usage_chunk,
            editing: drop_usage_chunk || requested != upstream,
            pending: Vec::new(),
            lines: SseLineBuffer::default(),
            usage: None,
            end: StreamEnd::Open,
        }
    }

    fn observe(kind: OpenAiKind, event: SseEvent<'_>, usage: &mut Option<Usage>, end: &mut StreamEnd) {
        let data = event.data;
        if data == b"[DONE]" {
            *end = StreamEnd::Done;
            return;
        }
        match kind {
            OpenAiKind::Chat => {
                if let Some(u) = Usage::from_openai_chat(data) {
                    *usage = Some(u);
                }
                if has_type(data, "error") && data.starts_with(b"{\"error\"") {
                    *end = StreamEnd::Failed(error_message(data));
                }
            }
            OpenAiKind::Responses => {
                if let Some(u) = Usage::from_openai_responses_event(data) {
                    *usage = Some(u);
                }
                let named = |name: &str| event.event == Some(name) || has_type(data, name);
                if named("response.completed") || named("response.incomplete") {
                    *end = StreamEnd::Done;
                } else if named("response.failed") || event.event == Some("error") {
                    *end = StreamEnd::Failed(error_message(data));
                }
            }
        }
    }

    /// One whole event (its lines and blank line): observed, then edited or dropped.
    fn edit_event(&mut self, event: &[u8]) -> Option<Vec<u8>> {
        let (kind, usage, end) = (self.kind, &mut self.usage, &mut self.end);
        let mut data_seen: Option<Vec<u8>> = None;
        {
            let mut lines = SseLineBuffer::default();
            lines.push(event, |ev| {
                Self::observe(kind, ev, usage, end);
                data_seen = Some(ev.data.to_vec());
            });
            lines.finish(|ev| {
                Self::observe(kind, ev, usage, end);
                data_seen = Some(ev.data.to_vec());
            });
        }
        let Some(data) = data_seen.filter(|d| d.first() == Some(&b'{')) else {
            return Some(event.to_vec());
        };
        let Ok(mut value) = serde_json::from_slice::<Value>(&data) else {
            return Some(event.to_vec());
        };
        let mut changed = false;
        if self.drop_usage_chunk {
            if value.get("usage").is_some_and(|u| !u.is_null())
                && value.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty)
            {
                return None;
            }
            // The `"usage": null` the forced option adds to every chunk goes too.
            if let Some(object) = value.as_object_mut()
                && object.get("usage").is_some_and(Value::is_null)
            {
                object.remove("usage");
                changed = true;
            }
        }
        for path in ["/model", "/response/model"] {
            if let Some(model) = value.pointer_mut(path)
                && model.as_str() == Some(self.upstream.as_str())
            {
                *model = Value::String(self.requested.clone());
                changed = true;
            }
        }
        if !changed {
            return Some(event.to_vec());
        }
        let text = std::str::from_utf8(event).ok()?;
        let mut out = String::with_capacity(event.len() + 16);
        let mut wrote_data = false;
        for line in text.split_inclusive('\n') {
            if line.starts_with("data:") {
                if !wrote_data {
                    out.push_str("data: ");
                    out.push_str(&value.to_string());
                    out.push('\n');
                    wrote_data = true;
                }
            } else {
                out.push_str(line);
            }
        }
        Some(out.into_bytes())
    }

    fn drain_events(&mut self, out: &mut Vec<u8>) {
        while let Some(end) = event_end(&self.pending) {
            let rest = self.pending.split_off(end);
            let event = std::mem::replace(&mut self.pending, rest);
            if let Some(bytes) = self.edit_event(&event) {
                out.extend(bytes);
            }
        }
    }
}

impl StreamTap for OpenAiTap {
    fn process(&mut self, chunk: Bytes) -> Bytes {
        if !self.editing {
            let (kind, usage, end) = (self.kind, &mut self.usage, &mut self.end);
            self.lines.push(&chunk, |event| Self::observe(kind, event, usage, end));
            return chunk;
        }
        self.pending.extend_from_slice(&chunk);
        let mut out = Vec::new();
        self.drain_events(&mut out);
        Bytes::from(out)
    }

    fn finish(&mut self) -> Bytes {
        if !self.editing || self.pending.is_empty() {
            return Bytes::new();
        }
        let rest = std::mem::take(&mut self.pending);
        Bytes::from(self.edit_event(&rest).unwrap_or_default())
    }

    fn delivered(&mut self, _bytes: &[u8]) {}

    fn close(&mut self) {
        let (kind, usage, end) = (self.kind, &mut self.usage, &mut self.end);
        self.lines.finish(|event| Self::observe(kind, event, usage, end));
    }

    fn end(&self) -> &StreamEnd {
        &self.end
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// Gemini `streamGenerateContent?alt=sse`: bytes pass through untouched. Every `data:` chunk
/// may carry `usageMetadata`, cumulative so far, so the last one delivered wins; the last
/// chunk carries a `finishReason` (Gemini streams have no end event of their own), and an
/// `{"error":…}` chunk ends the stream with an error.
pub(super) struct GeminiTap {
    lines: SseLineBuffer,
    usage: Option<Usage>,
    end: StreamEnd,
    /// Code Assist: each chunk comes out of its `{"response": …}` envelope first.
    unwrap: Option<super::code_assist::StreamUnwrap>,
}

impl GeminiTap {
    pub(super) fn new(code_assist: bool) -> Self {
        Self {
            lines: SseLineBuffer::default(),
            usage: None,
            end: StreamEnd::Open,
            unwrap: code_assist.then(super::code_assist::StreamUnwrap::default),
        }
    }

    fn observe(event: SseEvent<'_>, usage: &mut Option<Usage>, end: &mut StreamEnd) {
        let data = event.data;
        if let Some(u) = Usage::from_gemini(data) {
            *usage = Some(u);
        }
        if has_type(data, "finishReason") {
            *end = StreamEnd::Done;
        } else if has_type(data, "error")
            && serde_json::from_slice::<Value>(data).is_ok_and(|v| v.get("error").is_some_and(Value::is_object))
        {
            *end = StreamEnd::Failed(error_message(data));
        }
    }
}

impl StreamTap for GeminiTap {
    fn process(&mut self, chunk: Bytes) -> Bytes {
        match &mut self.unwrap {
            Some(unwrap) => unwrap.process(&chunk),
            None => chunk,
        }
    }

    fn finish(&mut self) -> Bytes {
        self.unwrap.as_mut().map(super::code_assist::StreamUnwrap::finish).unwrap_or_default()
    }

    fn delivered(&mut self, bytes: &[u8]) {
        let (usage, end) = (&mut self.usage, &mut self.end);
        self.lines.push(bytes, |event| Self::observe(event, usage, end));
    }

    fn close(&mut self) {
        let (usage, end) = (&mut self.usage, &mut self.end);
        self.lines.finish(|event| Self::observe(event, usage, end));
    }

    fn end(&self) -> &StreamEnd {
        &self.end
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// A stream in another protocol than the client's: each whole upstream event goes through
/// the converter; usage and the end are read from the upstream's own events.
pub(super) struct TranslateTap {
    converter: Box<dyn StreamConverter>,
    /// The upstream speaks Chat Completions (else Anthropic Messages).
    from_chat: bool,
    lines: SseLineBuffer,
    anthropic_usage: AnthropicStreamUsage,
    chat_usage: Option<Usage>,
    end: StreamEnd,
}

impl TranslateTap {
    pub(super) fn new(converter: Box<dyn StreamConverter>, from_chat: bool) -> Self {
        Self {
            converter,
            from_chat,
            lines: SseLineBuffer::default(),
            anthropic_usage: AnthropicStreamUsage::new(),
            chat_usage: None,
            end: StreamEnd::Open,
        }
    }

    fn on_event(&mut self, event: SseEvent<'_>, out: &mut Vec<u8>) {
        if self.from_chat {
            OpenAiTap::observe(OpenAiKind::Chat, event, &mut self.chat_usage, &mut self.end);
        } else {
            on_anthropic_event(event, &mut self.anthropic_usage, &mut self.end);
        }
        self.converter.event(event.event, event.data, out);
    }
}

impl StreamTap for TranslateTap {
    fn process(&mut self, chunk: Bytes) -> Bytes {
        let mut out = Vec::new();
        let mut lines = std::mem::take(&mut self.lines);
        lines.push(&chunk, |event| self.on_event(event, &mut out));
        self.lines = lines;
        Bytes::from(out)
    }

    fn finish(&mut self) -> Bytes {
        let mut out = Vec::new();
        let mut lines = std::mem::take(&mut self.lines);
        lines.finish(|event| self.on_event(event, &mut out));
        self.lines = lines;
        self.converter.finish(self.end == StreamEnd::Done, &mut out);
        Bytes::from(out)
    }

    fn delivered(&mut self, _bytes: &[u8]) {}

    fn close(&mut self) {}

    fn end(&self) -> &StreamEnd {
        &self.end
    }

    fn usage(&self) -> Option<Usage> {
        if self.from_chat {
            self.chat_usage
        } else {
            self.anthropic_usage.has_usage().then(|| self.anthropic_usage.usage())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tap: &mut dyn StreamTap, chunks: &[&str]) -> String {
        let mut out = Vec::new();
        for c in chunks {
            let bytes = tap.process(Bytes::from(c.to_string()));
            tap.delivered(&bytes);
            out.extend_from_slice(&bytes);
        }
        let rest = tap.finish();
        tap.delivered(&rest);
        out.extend_from_slice(&rest);
        tap.close();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn gemini_streams_pass_through_and_the_last_usage_wins() {
        let first = r#"{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"}}],"usageMetadata":{"promptTokenCount":900,"cachedContentTokenCount":600,"candidatesTokenCount":2},"modelVersion":"gemini-2.5-flash"}"#;
        let last = r#"{"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":900,"cachedContentTokenCount":600,"candidatesTokenCount":40,"thoughtsTokenCount":10},"modelVersion":"gemini-2.5-flash"}"#;
        let stream = format!("data: {first}\r\n\r\ndata: {last}\r\n\r\n");
        let (a, b) = stream.split_at(37);
        let mut tap = GeminiTap::new(false);
        assert_eq!(run(&mut tap, &[a, b]), stream, "bytes are untouched");
        let u = tap.usage().unwrap();
        assert_eq!((u.input_tokens, u.cache_read_tokens, u.output_tokens), (300, 600, 50));
        assert_eq!(tap.end(), &StreamEnd::Done);

        let mut cut = GeminiTap::new(false);
        run(&mut cut, &[&format!("data: {first}\n\n")]);
        assert_eq!(cut.end(), &StreamEnd::Open, "no finishReason: the stream broke");
        assert_eq!(cut.usage().map(|u| u.output_tokens), Some(2), "billed for what was delivered");

        let mut failed = GeminiTap::new(false);
        let error = r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#;
        run(&mut failed, &[&format!("data: {first}\n\ndata: {error}\n\n")]);
        assert_eq!(failed.end(), &StreamEnd::Failed("The model is overloaded.".into()));
    }

    #[test]
    fn chat_usage_chunk_is_read_then_dropped_when_not_asked_for() {
        let usage = r#"{"id":"c","model":"up","choices":[],"usage":{"prompt_tokens":30,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":10}}}"#;
        let chunk = r#"{"id":"c","model":"up","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}"#;
        let stream = format!("data: {chunk}\n\ndata: {usage}\n\ndata: [DONE]\n\n");
        let (a, b) = stream.split_at(20);
        let mut tap = OpenAiTap::new(OpenAiKind::Chat, "asked", "up", true);
        let out = run(&mut tap, &[a, b]);
        assert!(!out.contains("prompt_tokens"), "the forced usage chunk is gone: {out}");
        assert!(!out.contains("\"usage\""), "and the usage: null it added to every chunk: {out}");
        assert!(out.contains("\"model\":\"asked\"") && !out.contains("\"up\""), "{out}");
        assert!(out.ends_with("data: [DONE]\n\n"));
        let u = tap.usage().unwrap();
        assert_eq!((u.input_tokens, u.cache_read_tokens, u.output_tokens), (20, 10, 5));
        assert_eq!(tap.end(), &StreamEnd::Done);

        let mut keep = OpenAiTap::new(OpenAiKind::Chat, "same", "same", false);
        let out = run(&mut keep, &[&stream.replace("\"up\"", "\"same\"")]);
        assert!(out.contains("prompt_tokens"), "kept when the client asked for it");
    }

    #[test]
    fn responses_end_and_usage() {
        let done = r#"{"type":"response.completed","response":{"model":"up","usage":{"input_tokens":9,"output_tokens":4,"input_tokens_details":{"cached_tokens":3}}}}"#;
        let stream = format!(
            "event: response.created\ndata: {{\"type\":\"response.created\",\"response\":{{\"model\":\"up\"}}}}\n\nevent: response.completed\ndata: {done}\n\n"
        );
        let mut tap = OpenAiTap::new(OpenAiKind::Responses, "asked", "up", false);
        let out = run(&mut tap, &[&stream]);
        assert!(!out.contains("\"up\""), "nested response.model rewritten: {out}");
        assert_eq!(tap.end(), &StreamEnd::Done);
        assert_eq!(tap.usage().unwrap().output_tokens, 4);
    }

    #[test]
    fn anthropic_end_without_a_final_blank_line_counts() {
        let mut tap = AnthropicTap::new("m", "m");
        run(&mut tap, &["event: message_stop\ndata: {\"type\":\"message_stop\"}\n"]);
        assert_eq!(tap.end(), &StreamEnd::Done);
    }
}
