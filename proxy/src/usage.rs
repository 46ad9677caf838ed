//! Token usage extraction: reading what a response cost from Anthropic Messages, OpenAI
//! Chat Completions / Responses and Gemini bodies and SSE streams, and the SSE line splitter
//! the stream observer uses.
//!
//! Everything here only *observes* bytes the gateway forwards: it never changes, holds back
//! or reorders them, and a payload it cannot parse is skipped, not an error. It does no I/O
//! and knows nothing about prices or storage; the caller turns a [`Usage`] into a usage row.
//! It runs on every event of every stream, so payloads that cannot carry usage are rejected
//! by a byte check before any JSON parsing.

use serde::{Deserialize, Serialize};

/// Default longest SSE line (and event data) the observer parses; longer ones are skipped.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// Buffers above this capacity are freed after use instead of kept for the next event, so a
/// long-lived stream that once carried a large event does not pin that memory.
const RETAINED_CAPACITY: usize = 64 << 10;

/// Tokens one request consumed, in the gateway's own terms (the same for every platform).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens billed at the full rate: cached reads are *not* included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// All tokens written to the prompt cache (`cache_creation_5m + cache_creation_1h`).
    pub cache_creation_tokens: u64,
    /// Cache writes with the 5-minute TTL (also where an unsplit total goes).
    pub cache_creation_5m_tokens: u64,
    /// Cache writes with the 1-hour TTL.
    pub cache_creation_1h_tokens: u64,
    pub cache_read_tokens: u64,
}

impl Usage {
    /// From a non-streaming Anthropic Messages response body (its top-level `usage`).
    pub fn from_anthropic_response(body: &[u8]) -> Option<Usage> {
        #[derive(Deserialize)]
        struct Response {
            usage: Option<AnthropicUsageFields>,
        }
        let response: Response = serde_json::from_slice(body).ok()?;
        response.usage.map(|fields| fields.to_usage())
    }

    /// From an OpenAI Chat Completions body: a non-streaming response, or one stream chunk.
    /// `None` for chunks without usage (all but the last when `include_usage` is set).
    pub fn from_openai_chat(body: &[u8]) -> Option<Usage> {
        #[derive(Deserialize)]
        struct Response {
            usage: Option<OpenAiChatUsage>,
        }
        #[derive(Deserialize)]
        struct OpenAiChatUsage {
            #[serde(default)]
            prompt_tokens: u64,
            #[serde(default)]
            completion_tokens: u64,
            prompt_tokens_details: Option<CachedTokens>,
        }
        if !contains_quoted(body, "prompt_tokens") {
            return None;
        }
        let usage = serde_json::from_slice::<Response>(body).ok()?.usage?;
        let cached = usage.prompt_tokens_details.map_or(0, |d| d.cached_tokens);
        Some(Usage::openai(usage.prompt_tokens, cached, usage.completion_tokens))
    }

    /// From a non-streaming OpenAI Responses body (the `response` object).
    pub fn from_openai_responses(body: &[u8]) -> Option<Usage> {
        #[derive(Deserialize)]
        struct Response {
            usage: Option<OpenAiResponsesUsage>,
        }
        let usage = serde_json::from_slice::<Response>(body).ok()?.usage?;
        Some(usage.to_usage())
    }

    /// From one OpenAI Responses stream event; only `response.completed` and
    /// `response.incomplete` carry the final usage.
    pub fn from_openai_responses_event(data: &[u8]) -> Option<Usage> {
        #[derive(Deserialize)]
        struct Event {
            #[serde(rename = "type")]
            kind: ResponsesEventKind,
            response: Option<Response>,
        }
        #[derive(Deserialize)]
        enum ResponsesEventKind {
            #[serde(rename = "response.completed")]
            Completed,
            #[serde(rename = "response.incomplete")]
            Incomplete,
            #[serde(other)]
            Other,
        }
        #[derive(Deserialize)]
        struct Response {
            usage: Option<OpenAiResponsesUsage>,
        }
        if !may_have_type(data, &["response.completed", "response.incomplete"]) {
            return None;
        }
        let event: Event = serde_json::from_slice(data).ok()?;
        match event.kind {
            ResponsesEventKind::Completed | ResponsesEventKind::Incomplete => Some(event.response?.usage?.to_usage()),
            ResponsesEventKind::Other => None,
        }
    }

    /// From a Gemini `generateContent` answer or one `streamGenerateContent` chunk (its
    /// `usageMetadata`). A JSON array of chunks (a stream without `alt=sse`) gives the last
    /// usage it carries: stream usage is cumulative, so the last one wins. Cached prompt
    /// tokens are inside `promptTokenCount` and billed once, as cache reads; thinking tokens
    /// are output.
    pub fn from_gemini(body: &[u8]) -> Option<Usage> {
        #[derive(Deserialize)]
        struct Chunk {
            #[serde(rename = "usageMetadata")]
            usage_metadata: Option<GeminiUsage>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct GeminiUsage {
            #[serde(default)]
            prompt_token_count: u64,
            #[serde(default)]
            candidates_token_count: u64,
            #[serde(default)]
            cached_content_token_count: u64,
            #[serde(default)]
            thoughts_token_count: u64,
        }
        // The array first: a struct would also accept an array, positionally.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Body {
            Chunks(Vec<Chunk>),
            One(Chunk),
        }
        if !contains_quoted(body, "usageMetadata") {
            return None;
        }
        let usage = match serde_json::from_slice::<Body>(body).ok()? {
            Body::One(chunk) => chunk.usage_metadata?,
            Body::Chunks(chunks) => chunks.into_iter().rev().find_map(|c| c.usage_metadata)?,
        };
        let cached = usage.cached_content_token_count;
        Some(Usage {
            input_tokens: usage.prompt_token_count.saturating_sub(cached),
            output_tokens: usage.candidates_token_count.saturating_add(usage.thoughts_token_count),
            cache_read_tokens: cached,
            ..Usage::default()
        })
    }

    /// OpenAI counts cached tokens inside the prompt; the gateway bills them separately.
    fn openai(prompt_tokens: u64, cached_tokens: u64, output_tokens: u64) -> Usage {
        Usage {
            input_tokens: prompt_tokens.saturating_sub(cached_tokens),
            output_tokens,
            cache_read_tokens: cached_tokens,
            ..Usage::default()
        }
    }
}

#[derive(Deserialize)]
struct CachedTokens {
    #[serde(default)]
    cached_tokens: u64,
}

#[derive(Deserialize)]
struct OpenAiResponsesUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    input_tokens_details: Option<CachedTokens>,
}

impl OpenAiResponsesUsage {
    fn to_usage(&self) -> Usage {
        let cached = self.input_tokens_details.as_ref().map_or(0, |d| d.cached_tokens);
        Usage::openai(self.input_tokens, cached, self.output_tokens)
    }
}

/// An Anthropic `usage` object as sent: every field may be absent (`None`), which is not
/// the same as an explicit 0 when merging stream events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
struct AnthropicUsageFields {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation: CacheCreationSplit,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
struct CacheCreationSplit {
    ephemeral_5m_input_tokens: Option<u64>,
    ephemeral_1h_input_tokens: Option<u64>,
}

impl AnthropicUsageFields {
    /// Overlays `later` on `self`: every field `later` carries wins, an explicit 0 included;
    /// fields it lacks keep their earlier value.
    fn merge(&mut self, later: &AnthropicUsageFields) {
        fn overlay(earlier: &mut Option<u64>, later: Option<u64>) {
            if later.is_some() {
                *earlier = later;
            }
        }
        overlay(&mut self.input_tokens, later.input_tokens);
        overlay(&mut self.output_tokens, later.output_tokens);
        overlay(&mut self.cache_creation_input_tokens, later.cache_creation_input_tokens);
        overlay(&mut self.cache_read_input_tokens, later.cache_read_input_tokens);
        overlay(&mut self.cache_creation.ephemeral_5m_input_tokens, later.cache_creation.ephemeral_5m_input_tokens);
        overlay(&mut self.cache_creation.ephemeral_1h_input_tokens, later.cache_creation.ephemeral_1h_input_tokens);
    }

    fn to_usage(self) -> Usage {
        let split = self.cache_creation;
        let split_known = split.ephemeral_5m_input_tokens.is_some() || split.ephemeral_1h_input_tokens.is_some();
        let five_min = split.ephemeral_5m_input_tokens.unwrap_or(0);
        let one_hour = split.ephemeral_1h_input_tokens.unwrap_or(0);
        let total = self.cache_creation_input_tokens.unwrap_or(five_min.saturating_add(one_hour));
        let (five_min, one_hour) = if split_known { (five_min, one_hour) } else { (total, 0) };
        Usage {
            input_tokens: self.input_tokens.unwrap_or(0),
            output_tokens: self.output_tokens.unwrap_or(0),
            cache_creation_tokens: total,
            cache_creation_5m_tokens: five_min,
            cache_creation_1h_tokens: one_hour,
            cache_read_tokens: self.cache_read_input_tokens.unwrap_or(0),
        }
    }
}

/// Accumulates usage over an Anthropic Messages stream, fed one SSE `data:` payload at a time.
///
/// `message_start` carries `message.usage` (input and cache counts, output so far);
/// `message_delta` carries `usage` (final output, and on newer API versions the cumulative
/// input and cache counts too). A field present in a later event replaces the earlier value
/// even when it is 0 — keeping the stale value double-bills the 5m/1h cache split — and a
/// field a later event lacks keeps its value.
#[derive(Debug, Clone, Default)]
pub struct AnthropicStreamUsage {
    fields: AnthropicUsageFields,
    seen: bool,
}

impl AnthropicStreamUsage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one `data:` payload. Returns true when it was a `message_start` or
    /// `message_delta` event whose usage was merged; any other payload is ignored, most of
    /// them without being parsed.
    pub fn feed(&mut self, data: &[u8]) -> bool {
        #[derive(Deserialize)]
        struct Event {
            #[serde(rename = "type")]
            kind: StreamEventKind,
            message: Option<Message>,
            usage: Option<AnthropicUsageFields>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "snake_case")]
        enum StreamEventKind {
            MessageStart,
            MessageDelta,
            #[serde(other)]
            Other,
        }
        #[derive(Deserialize)]
        struct Message {
            usage: Option<AnthropicUsageFields>,
        }

        if !may_have_type(data, &["message_start", "message_delta"]) {
            return false;
        }
        let Ok(event) = serde_json::from_slice::<Event>(data) else {
            return false;
        };
        let usage = match event.kind {
            StreamEventKind::MessageStart => event.message.and_then(|m| m.usage),
            StreamEventKind::MessageDelta => event.usage,
            StreamEventKind::Other => None,
        };
        let Some(usage) = usage else {
            return false;
        };
        self.fields.merge(&usage);
        self.seen = true;
        true
    }

    /// True once any usage-carrying event was merged.
    pub fn has_usage(&self) -> bool {
        self.seen
    }

    /// The usage so far (after the last event: the final usage). For a stream the client
    /// abandoned, this is what was reported up to that point.
    pub fn usage(&self) -> Usage {
        self.fields.to_usage()
    }
}

/// One complete server-sent event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, if the event had one (absent means `message`).
    pub event: Option<&'a str>,
    /// The `data:` lines joined with `\n`.
    pub data: &'a [u8],
}

/// Splits a byte stream into server-sent events, whatever the chunk boundaries.
///
/// Observation only: the caller forwards every chunk untouched and pushes a copy of the bytes
/// here. Lines end in `\n` or `\r\n` (a lone `\r` is not a line end). `:` comment lines and
/// `id:`/`retry:` fields are ignored; one space after the colon is optional. A line longer
/// than the limit is skipped, and so is the event it belonged to (its data would be
/// incomplete); memory stays bounded by the limit.
#[derive(Debug)]
pub struct SseLineBuffer {
    max_line: usize,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The current line outgrew `max_line`; its bytes are dropped up to the next `\n`.
    skipping_line: bool,
    /// `event:` value of the event being assembled (`has_event_name` says if it was set).
    event_name: String,
    has_event_name: bool,
    /// `data:` lines of the event being assembled, each followed by `\n`.
    data: Vec<u8>,
    /// A line of the event being assembled was dropped, so it is not dispatched.
    damaged: bool,
    dropped_lines: u64,
}

impl Default for SseLineBuffer {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

impl SseLineBuffer {
    /// A buffer that parses lines (and event data) up to `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line,
            partial: Vec::new(),
            skipping_line: false,
            event_name: String::new(),
            has_event_name: false,
            data: Vec::new(),
            damaged: false,
            dropped_lines: 0,
        }
    }

    /// Feeds the next chunk of the stream; calls `on_event` for each event it completes.
    pub fn push(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) {
        let mut rest = chunk;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let (piece, after) = (&rest[..newline], &rest[newline + 1..]);
            rest = after;
            if self.skipping_line {
                self.skipping_line = false;
            } else if self.partial.is_empty() {
                // The whole line is in this chunk: no copy.
                if piece.len() > self.max_line {
                    self.drop_line();
                } else {
                    self.process_line(piece, &mut on_event);
                }
            } else if self.partial.len() + piece.len() > self.max_line {
                self.partial.clear();
                self.drop_line();
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(piece);
                self.process_line(&line, &mut on_event);
                line.clear();
                self.partial = line;
            }
        }
        if rest.is_empty() || self.skipping_line {
            return;
        }
        if self.partial.len() + rest.len() > self.max_line {
            self.partial.clear();
            self.skipping_line = true;
            self.drop_line();
        } else {
            self.partial.extend_from_slice(rest);
        }
    }

    /// Ends the stream: a last line without its newline and a last event without its blank
    /// line are still delivered (the spec would discard them, but for billing an upstream
    /// that closed without the final blank line still reported its usage).
    pub fn finish(&mut self, mut on_event: impl FnMut(SseEvent<'_>)) {
        if !self.skipping_line && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.process_line(&line, &mut on_event);
        }
        self.skipping_line = false;
        self.partial = Vec::new();
        self.dispatch(&mut on_event);
    }

    /// How many lines were skipped for being longer than the limit.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines
    }

    fn drop_line(&mut self) {
        self.dropped_lines += 1;
        self.damaged = true;
        if self.partial.capacity() > RETAINED_CAPACITY {
            self.partial = Vec::new();
        }
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"data" => {
                if self.data.len() + value.len() + 1 > self.max_line {
                    self.damaged = true;
                    self.dropped_lines += 1;
                } else {
                    self.data.extend_from_slice(value);
                    self.data.push(b'\n');
                }
            }
            b"event" => {
                self.event_name.clear();
                match std::str::from_utf8(value) {
                    Ok(name) => {
                        self.event_name.push_str(name);
                        self.has_event_name = true;
                    }
                    Err(_) => self.has_event_name = false,
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if !self.damaged
            && let Some(data) = self.data.strip_suffix(b"\n")
        {
            on_event(SseEvent { event: self.has_event_name.then_some(self.event_name.as_str()), data });
        }
        self.data.clear();
        if self.data.capacity() > RETAINED_CAPACITY {
            self.data = Vec::new();
        }
        self.event_name.clear();
        self.has_event_name = false;
        self.damaged = false;
    }
}

/// Cheap pre-filter: may this JSON payload's `"type"` be one of `types`? Providers put
/// `type` first, so `{"type":"<name>"` is checked directly; any other layout falls back to a
/// search for the quoted name. False positives are fine (the caller parses); a payload whose
/// type is listed is never rejected.
fn may_have_type(payload: &[u8], types: &[&str]) -> bool {
    let trimmed = payload.trim_ascii_start();
    if let Some(rest) = trimmed.strip_prefix(br#"{"type":""#) {
        return types
            .iter()
            .any(|name| rest.strip_prefix(name.as_bytes()).is_some_and(|after| after.first() == Some(&b'"')));
    }
    types.iter().any(|name| contains_quoted(payload, name))
}

/// Does `haystack` contain `"needle"`, quotes included? Inside a JSON string a quote is
/// escaped (`\"`), so text that merely mentions the name does not match.
pub(crate) fn contains_quoted(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.as_bytes();
    let width = needle.len() + 2;
    haystack
        .windows(width)
        .any(|window| window[0] == b'"' && window[width - 1] == b'"' && &window[1..width - 1] == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects every event of a stream pushed in the given chunks.
    fn events(buffer: &mut SseLineBuffer, chunks: &[&[u8]]) -> Vec<(Option<String>, String)> {
        let mut out = Vec::new();
        let mut collect = |event: SseEvent<'_>| {
            out.push((event.event.map(str::to_owned), String::from_utf8(event.data.to_vec()).unwrap()))
        };
        for chunk in chunks {
            buffer.push(chunk, &mut collect);
        }
        buffer.finish(&mut collect);
        out
    }

    fn ev(name: Option<&str>, data: &str) -> (Option<String>, String) {
        (name.map(str::to_owned), data.to_owned())
    }

    /// A Messages stream as the Anthropic API sends it (shapes captured from real traffic).
    const ANTHROPIC_STREAM: &str = concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":2048,"cache_read_input_tokens":10240,"cache_creation":{"ephemeral_5m_input_tokens":2048,"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}"#,
        "\n\n",
        "event: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        "\n\n",
        "event: ping\n",
        r#"data: {"type": "ping"}"#,
        "\n\n",
        "event: content_block_delta\n",
        r#"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello! The \"message_delta\" event ends a stream."}}"#,
        "\n\n",
        "event: content_block_stop\n",
        r#"data: {"type":"content_block_stop","index":0}"#,
        "\n\n",
        "event: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
        "\n\n",
        "event: message_stop\n",
        r#"data: {"type":"message_stop"}"#,
        "\n\n",
    );

    fn anthropic_stream_usage(stream: &[u8], chunk_size: usize) -> (Usage, usize) {
        let mut buffer = SseLineBuffer::default();
        let mut usage = AnthropicStreamUsage::new();
        let mut merged = 0;
        for chunk in stream.chunks(chunk_size) {
            buffer.push(chunk, |event| merged += usize::from(usage.feed(event.data)));
        }
        buffer.finish(|event| merged += usize::from(usage.feed(event.data)));
        (usage.usage(), merged)
    }

    const ANTHROPIC_STREAM_USAGE: Usage = Usage {
        input_tokens: 472,
        output_tokens: 15,
        cache_creation_tokens: 2048,
        cache_creation_5m_tokens: 2048,
        cache_creation_1h_tokens: 0,
        cache_read_tokens: 10240,
    };

    #[test]
    fn anthropic_stream_usage_merges_start_and_delta() {
        let (usage, merged) = anthropic_stream_usage(ANTHROPIC_STREAM.as_bytes(), usize::MAX);
        assert_eq!(usage, ANTHROPIC_STREAM_USAGE);
        assert_eq!(merged, 2, "exactly message_start and message_delta carry usage");
    }

    #[test]
    fn anthropic_stream_usage_survives_every_chunk_boundary() {
        for chunk_size in [1, 2, 3, 7, 64, 100, 333] {
            let (usage, merged) = anthropic_stream_usage(ANTHROPIC_STREAM.as_bytes(), chunk_size);
            assert_eq!(usage, ANTHROPIC_STREAM_USAGE, "chunk size {chunk_size}");
            assert_eq!(merged, 2, "chunk size {chunk_size}");
        }
        let crlf = ANTHROPIC_STREAM.replace('\n', "\r\n");
        for chunk_size in [1, 5, usize::MAX] {
            let (usage, _) = anthropic_stream_usage(crlf.as_bytes(), chunk_size);
            assert_eq!(usage, ANTHROPIC_STREAM_USAGE, "CRLF, chunk size {chunk_size}");
        }
    }

    #[test]
    fn explicit_zero_in_a_later_event_overwrites() {
        let mut usage = AnthropicStreamUsage::new();
        assert!(usage.feed(
            br#"{"type":"message_start","message":{"usage":{"input_tokens":12,"cache_creation_input_tokens":500,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":500,"ephemeral_1h_input_tokens":0},"output_tokens":1}}}"#
        ));
        assert!(usage.feed(
            br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":12,"cache_creation_input_tokens":500,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":500},"output_tokens":40}}"#
        ));
        assert_eq!(
            usage.usage(),
            Usage {
                input_tokens: 12,
                output_tokens: 40,
                cache_creation_tokens: 500,
                cache_creation_5m_tokens: 0,
                cache_creation_1h_tokens: 500,
                cache_read_tokens: 0,
            },
            "the 5m bucket must drop to the delta's explicit 0, not stay at 500"
        );
    }

    #[test]
    fn absent_fields_keep_their_earlier_value() {
        let mut usage = AnthropicStreamUsage::new();
        usage.feed(
            br#"{"type":"message_start","message":{"usage":{"input_tokens":30,"cache_read_input_tokens":7,"output_tokens":1}}}"#,
        );
        usage.feed(br#"{"type":"message_delta","usage":{"output_tokens":0}}"#);
        usage.feed(br#"{"type":"message_delta","usage":{"output_tokens":9}}"#);
        let got = usage.usage();
        assert_eq!((got.input_tokens, got.cache_read_tokens), (30, 7));
        assert_eq!(got.output_tokens, 9);
    }

    #[test]
    fn unsplit_cache_creation_goes_to_the_5m_bucket() {
        let mut usage = AnthropicStreamUsage::new();
        usage.feed(
            br#"{"type":"message_start","message":{"usage":{"input_tokens":3,"cache_creation_input_tokens":1200,"output_tokens":1}}}"#,
        );
        let got = usage.usage();
        assert_eq!(got.cache_creation_tokens, 1200);
        assert_eq!(got.cache_creation_5m_tokens, 1200);
        assert_eq!(got.cache_creation_1h_tokens, 0);
    }

    #[test]
    fn split_without_total_sums_the_split() {
        let usage = Usage::from_anthropic_response(
            br#"{"usage":{"input_tokens":1,"output_tokens":2,"cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20}}}"#,
        )
        .unwrap();
        assert_eq!(usage.cache_creation_tokens, 30);
        assert_eq!((usage.cache_creation_5m_tokens, usage.cache_creation_1h_tokens), (10, 20));
    }

    #[test]
    fn stream_feed_ignores_other_events_and_garbage() {
        let mut usage = AnthropicStreamUsage::new();
        for payload in [
            &br#"{"type":"ping"}"#[..],
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"message_delta"}}"#,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            b"[DONE]",
            b"",
            b"{not json \"message_start\"",
            br#"{"type":"message_delta","usage":{"output_tokens":"many"}}"#,
        ] {
            assert!(!usage.feed(payload), "{}", String::from_utf8_lossy(payload));
        }
        assert!(!usage.has_usage());
        assert_eq!(usage.usage(), Usage::default());
    }

    #[test]
    fn stream_feed_accepts_any_key_order() {
        let mut usage = AnthropicStreamUsage::new();
        assert!(usage.feed(br#"{ "usage": {"output_tokens": 5}, "type": "message_delta" }"#));
        assert_eq!(usage.usage().output_tokens, 5);
    }

    #[test]
    fn anthropic_non_stream_response() {
        let body = br#"{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant","model":"claude-opus-4-5-20251101","content":[{"type":"text","text":"Hi! My name is Claude."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":2095,"cache_creation_input_tokens":2051,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":2051},"output_tokens":503,"service_tier":"standard"}}"#;
        assert_eq!(
            Usage::from_anthropic_response(body),
            Some(Usage {
                input_tokens: 2095,
                output_tokens: 503,
                cache_creation_tokens: 2051,
                cache_creation_5m_tokens: 0,
                cache_creation_1h_tokens: 2051,
                cache_read_tokens: 0,
            })
        );
        assert_eq!(Usage::from_anthropic_response(br#"{"type":"message","content":[]}"#), None);
        assert_eq!(Usage::from_anthropic_response(b"<html>"), None);
    }

    #[test]
    fn openai_chat_non_stream() {
        let body = br#"{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"The image shows a wooden boardwalk.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}"#;
        assert_eq!(
            Usage::from_openai_chat(body),
            Some(Usage { input_tokens: 93, output_tokens: 46, cache_read_tokens: 1024, ..Usage::default() })
        );
    }

    #[test]
    fn openai_chat_stream_takes_the_usage_chunk() {
        let stream = concat!(
            r#"data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#,
            "\n\n",
            r#"data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"usage":null}"#,
            "\n\n",
            r#"data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
            "\n\n",
            r#"data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0}}}"#,
            "\n\n",
            "data: [DONE]\n\n",
        );
        let mut buffer = SseLineBuffer::default();
        let mut found = Vec::new();
        for chunk in stream.as_bytes().chunks(17) {
            buffer.push(chunk, |event| found.extend(Usage::from_openai_chat(event.data)));
        }
        assert_eq!(found, vec![Usage { input_tokens: 9, output_tokens: 12, ..Usage::default() }]);
    }

    const RESPONSES_COMPLETED: &str = r#"{"type":"response.completed","sequence_number":42,"response":{"id":"resp_67ccd3a9da748190baa7f1570fe91ac604becb25c45c1d41","object":"response","created_at":1741476777,"status":"completed","model":"gpt-5.1-codex","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Done.","annotations":[]}]}],"usage":{"input_tokens":5120,"input_tokens_details":{"cached_tokens":4096},"output_tokens":310,"output_tokens_details":{"reasoning_tokens":256},"total_tokens":5430}}}"#;

    #[test]
    fn openai_responses_events() {
        let want = Usage { input_tokens: 1024, output_tokens: 310, cache_read_tokens: 4096, ..Usage::default() };
        assert_eq!(Usage::from_openai_responses_event(RESPONSES_COMPLETED.as_bytes()), Some(want));
        let incomplete = RESPONSES_COMPLETED.replace("response.completed", "response.incomplete");
        assert_eq!(Usage::from_openai_responses_event(incomplete.as_bytes()), Some(want));
        assert_eq!(
            Usage::from_openai_responses_event(
                br#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","status":"in_progress","usage":null}}"#
            ),
            None
        );
        assert_eq!(
            Usage::from_openai_responses_event(
                br#"{"type":"response.output_text.delta","item_id":"msg_1","delta":"response.completed"}"#
            ),
            None
        );
    }

    #[test]
    fn openai_responses_stream_through_the_line_buffer() {
        let stream = format!(
            "event: response.created\r\ndata: {}\r\n\r\nevent: response.output_text.delta\r\ndata: {}\r\n\r\nevent: response.completed\r\ndata: {}\r\n\r\n",
            r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","status":"in_progress"}}"#,
            r#"{"type":"response.output_text.delta","sequence_number":1,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Done."}"#,
            RESPONSES_COMPLETED,
        );
        let mut buffer = SseLineBuffer::default();
        let mut last = None;
        let mut names = Vec::new();
        for chunk in stream.as_bytes().chunks(50) {
            buffer.push(chunk, |event| {
                names.push(event.event.map(str::to_owned));
                if let Some(usage) = Usage::from_openai_responses_event(event.data) {
                    last = Some(usage);
                }
            });
        }
        assert_eq!(
            names,
            ["response.created", "response.output_text.delta", "response.completed"].map(|n| Some(n.to_owned()))
        );
        assert_eq!(last.map(|u| u.cache_read_tokens), Some(4096));
    }

    #[test]
    fn openai_responses_non_stream() {
        let body = br#"{"id":"resp_1","object":"response","status":"completed","output":[],"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123}}"#;
        assert_eq!(
            Usage::from_openai_responses(body),
            Some(Usage { input_tokens: 36, output_tokens: 87, ..Usage::default() })
        );
    }

    #[test]
    fn sse_fields_comments_and_multiline_data() {
        let mut buffer = SseLineBuffer::default();
        let got = events(
            &mut buffer,
            &[
                b": keep-alive comment\n\n",
                b"event: first\ndata: line one\ndata:line two\nid: 7\nretry: 100\n\n",
                b"data\n\n",
                b"event: lonely\n\n",
                b"data:  two spaces\n\n",
            ],
        );
        assert_eq!(
            got,
            vec![ev(Some("first"), "line one\nline two"), ev(None, ""), ev(None, " two spaces"),],
            "comments and data-less events are not dispatched; one space after the colon is optional"
        );
    }

    #[test]
    fn sse_line_split_mid_line_and_mid_crlf() {
        let mut buffer = SseLineBuffer::default();
        let got =
            events(&mut buffer, &[b"event: a\r", b"\ndata: {\"x\":", b"1}\r\n", b"\r", b"\n", b"da", b"ta: 2\n\n"]);
        assert_eq!(got, vec![ev(Some("a"), "{\"x\":1}"), ev(None, "2")]);
    }

    #[test]
    fn sse_finish_delivers_an_unterminated_last_event() {
        let mut buffer = SseLineBuffer::default();
        let got = events(&mut buffer, &[b"data: one\n\ndata: two"]);
        assert_eq!(got, vec![ev(None, "one"), ev(None, "two")]);
    }

    #[test]
    fn sse_overlong_lines_are_skipped_with_their_event() {
        let mut buffer = SseLineBuffer::new(16);
        let long = format!("data: {}\n", "x".repeat(40));
        let got = events(
            &mut buffer,
            &[
                b"data: ok\n\n",
                // Arrives whole: skipped without copying.
                long.as_bytes(),
                b"\n",
                // Arrives in pieces, the limit is crossed in the middle of a chunk.
                b"event: big\ndata: 0123",
                b"456789abcdef",
                b"ghij\ndata: tail\n\n",
                b"data: fine again\n\n",
            ],
        );
        assert_eq!(got, vec![ev(None, "ok"), ev(None, "fine again")]);
        assert_eq!(buffer.dropped_lines(), 2);
    }

    #[test]
    fn sse_event_data_is_capped_too() {
        let mut buffer = SseLineBuffer::new(16);
        let got = events(&mut buffer, &[b"data: 0123456789\ndata: 0123456789\n\ndata: ok\n\n"]);
        assert_eq!(got, vec![ev(None, "ok")]);
    }

    #[test]
    fn gemini_usage_counts_cached_tokens_once_and_thoughts_as_output() {
        let body = br#"{"candidates":[{"content":{"parts":[{"text":"hi \"usageMetadata\""}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1200,"candidatesTokenCount":80,"totalTokenCount":1330,"cachedContentTokenCount":1000,"thoughtsTokenCount":50},"modelVersion":"gemini-2.5-flash"}"#;
        let u = Usage::from_gemini(body).unwrap();
        assert_eq!((u.input_tokens, u.cache_read_tokens, u.output_tokens), (200, 1000, 130));
        assert_eq!((u.cache_creation_tokens, u.cache_creation_5m_tokens, u.cache_creation_1h_tokens), (0, 0, 0));

        let plain = br#"{"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":3}}"#;
        let u = Usage::from_gemini(plain).unwrap();
        assert_eq!((u.input_tokens, u.cache_read_tokens, u.output_tokens), (7, 0, 3));

        // A stream without alt=sse is one JSON array; its last usage is the total.
        let array = br#"[{"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":1}},{"candidates":[]},{"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":6}}]"#;
        assert_eq!(Usage::from_gemini(array).map(|u| u.output_tokens), Some(6));
        let single = br#"[{"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":1}}]"#;
        assert_eq!(Usage::from_gemini(single).map(|u| (u.input_tokens, u.output_tokens)), Some((2, 1)));

        assert_eq!(Usage::from_gemini(br#"{"candidates":[{"content":{"parts":[{"text":"x"}]}}]}"#), None);
        assert_eq!(Usage::from_gemini(br#"{"text":"mentions \"usageMetadata\" only"}"#), None);
        assert_eq!(Usage::from_gemini(b"not json \"usageMetadata\""), None);
    }

    #[test]
    fn type_prefilter() {
        let types = ["message_start", "message_delta"];
        assert!(may_have_type(br#"{"type":"message_start","message":{}}"#, &types));
        assert!(may_have_type(br#"  {"type":"message_delta"}"#, &types));
        assert!(!may_have_type(br#"{"type":"message_stop"}"#, &types));
        assert!(!may_have_type(br#"{"type":"message_start_x"}"#, &types));
        assert!(may_have_type(br#"{"index":0,"type":"message_delta"}"#, &types));
        assert!(!may_have_type(
            br#"{"index":0,"type":"content_block_delta","delta":{"text":"say \"message_delta\""}}"#,
            &types
        ));
    }
}
