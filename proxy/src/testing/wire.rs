//! The wire formats the fake upstream speaks: which route is which protocol, and the bytes of
//! each answer — Anthropic Messages, OpenAI Chat Completions, OpenAI Responses and Gemini
//! `generateContent` bodies, their SSE event sequences, their error bodies and in-stream
//! error events.
//!
//! Pure rendering: it turns a [`Script`] and the facts read from a request into a [`Reply`];
//! timing and faults are applied by the server, not here.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::script::Script;
use crate::usage::Usage;

/// The wire format of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Anthropic Messages (`/v1/messages`, `/v1/messages/count_tokens`).
    Anthropic,
    /// OpenAI Chat Completions (`/v1/chat/completions`).
    OpenAiChat,
    /// OpenAI Responses (`/v1/responses`).
    OpenAiResponses,
    /// Gemini (`/v1beta/models/{model}:generateContent`, `:streamGenerateContent`,
    /// `:countTokens`).
    Gemini,
}

impl Protocol {
    /// The usage the gateway should extract from this protocol's answer to a script that
    /// reports `scripted`. Anthropic carries every field; OpenAI and Gemini count cached
    /// tokens inside the prompt and have no cache writes, so only input, output and cache
    /// reads survive.
    pub fn reported_usage(self, scripted: Usage) -> Usage {
        match self {
            Protocol::Anthropic => scripted,
            Protocol::OpenAiChat | Protocol::OpenAiResponses | Protocol::Gemini => Usage {
                input_tokens: scripted.input_tokens,
                output_tokens: scripted.output_tokens,
                cache_read_tokens: scripted.cache_read_tokens,
                ..Usage::default()
            },
        }
    }
}

/// The routes the fake answers. Matched on the end of the path, so a base URL with a path
/// prefix (`http://host/claude/v1/messages`) reaches them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Messages,
    CountTokens,
    ChatCompletions,
    Responses,
    Models,
    /// Gemini `models/{model}:generateContent`.
    GenerateContent,
    /// Gemini `models/{model}:streamGenerateContent` (SSE with `?alt=sse`, else a JSON array).
    StreamGenerateContent,
    /// Gemini `models/{model}:countTokens`.
    GeminiCountTokens,
    /// Code Assist `v1internal:loadCodeAssist` (the project of a Google sign-in).
    LoadCodeAssist,
    /// Anything else: answered 404 without consuming a script.
    Unknown,
}

impl Endpoint {
    pub(super) fn of(method: &Method, path: &str) -> Endpoint {
        let path = path.strip_suffix('/').unwrap_or(path);
        // Code Assist (`…/v1internal:{action}`): the Gemini actions in an envelope.
        if *method == Method::POST
            && let Some((_, action)) = path.rsplit_once("/v1internal:")
        {
            return match action {
                "generateContent" => Endpoint::GenerateContent,
                "streamGenerateContent" => Endpoint::StreamGenerateContent,
                "countTokens" => Endpoint::GeminiCountTokens,
                "loadCodeAssist" => Endpoint::LoadCodeAssist,
                _ => Endpoint::Unknown,
            };
        }
        if *method == Method::POST && gemini_model(path).is_some() {
            if path.ends_with(":generateContent") {
                return Endpoint::GenerateContent;
            }
            if path.ends_with(":streamGenerateContent") {
                return Endpoint::StreamGenerateContent;
            }
            if path.ends_with(":countTokens") {
                return Endpoint::GeminiCountTokens;
            }
        }
        if *method == Method::POST {
            if path.ends_with("/v1/messages/count_tokens") {
                return Endpoint::CountTokens;
            }
            if path.ends_with("/v1/messages") {
                return Endpoint::Messages;
            }
            if path.ends_with("/v1/chat/completions") {
                return Endpoint::ChatCompletions;
            }
            // The ChatGPT backend's Codex endpoint speaks the Responses API.
            if path.ends_with("/v1/responses") || path.ends_with("/backend-api/codex/responses") {
                return Endpoint::Responses;
            }
        } else if *method == Method::GET && path.ends_with("/v1/models") {
            return Endpoint::Models;
        }
        Endpoint::Unknown
    }

    /// The protocol of the answer. Routes both providers share (`/v1/models`, unknown paths)
    /// answer in Anthropic's shape when the request carries `anthropic-version`.
    pub(super) fn protocol(self, headers: &HeaderMap) -> Protocol {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => Protocol::Anthropic,
            Endpoint::ChatCompletions => Protocol::OpenAiChat,
            Endpoint::Responses => Protocol::OpenAiResponses,
            Endpoint::GenerateContent
            | Endpoint::StreamGenerateContent
            | Endpoint::GeminiCountTokens
            | Endpoint::LoadCodeAssist => Protocol::Gemini,
            Endpoint::Models | Endpoint::Unknown if headers.contains_key("anthropic-version") => Protocol::Anthropic,
            Endpoint::Models | Endpoint::Unknown => Protocol::OpenAiChat,
        }
    }
}

/// The model of a Gemini path, `…/models/{model}:{action}`.
fn gemini_model(path: &str) -> Option<&str> {
    let (_, target) = path.rsplit_once("/models/")?;
    let (model, _) = target.split_once(':')?;
    (!model.is_empty() && !model.contains('/')).then_some(model)
}

/// What the fake read from a request that shapes the answer.
#[derive(Debug, Clone)]
pub(super) struct Exchange {
    /// Arrival number of the request, used to make ids unique.
    pub(super) seq: u64,
    /// The requested `model`, echoed back.
    pub(super) model: String,
    /// The request had `"stream": true`.
    pub(super) stream: bool,
    /// The request had `"stream_options": {"include_usage": true}` (Chat Completions).
    pub(super) include_usage: bool,
    /// A Code Assist request: Gemini answers go back wrapped in `{"response": …}`.
    pub(super) code_assist: bool,
    /// The request forces a tool call (see [`forced_tool`]): its name and the arguments the
    /// generated answer passes.
    pub(super) tool_call: Option<(String, Value)>,
}

/// The tool a request forces, as a model would have to call it: `tool_choice` naming one
/// (Anthropic `{"type":"tool","name"}`, OpenAI `{"type":"function","function":{"name"}}`),
/// or `any` / `required` (the first tool). Arguments: every `required` property of its schema
/// set to `"fake"`. `None` once the last message is a tool result, as a model then answers in
/// text. Chat and Messages only; a Responses answer is always text.
fn forced_tool(body: &Value) -> Option<(String, Value)> {
    let choice = body.get("tool_choice")?;
    fn name_of(tool: &Value) -> Option<&str> {
        tool.get("name").or_else(|| tool.pointer("/function/name")).and_then(Value::as_str)
    }
    let tools = body.get("tools")?.as_array()?;
    let wanted = match choice {
        Value::String(s) if s == "required" || s == "any" => name_of(tools.first()?)?,
        Value::Object(_) if choice.get("type").and_then(Value::as_str) == Some("any") => name_of(tools.first()?)?,
        Value::Object(_) => choice.get("name").or_else(|| choice.pointer("/function/name")).and_then(Value::as_str)?,
        _ => return None,
    };
    let last = body.get("messages").and_then(Value::as_array).and_then(|m| m.last());
    let answered_tool = last.is_some_and(|m| {
        m.get("role").and_then(Value::as_str) == Some("tool")
            || m.get("content").and_then(Value::as_array).is_some_and(|blocks| {
                blocks.iter().any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            })
    });
    if answered_tool {
        return None;
    }
    let tool = tools.iter().find(|t| name_of(t) == Some(wanted))?;
    let schema = tool.get("input_schema").or_else(|| tool.pointer("/function/parameters"));
    let args: serde_json::Map<String, Value> = schema
        .and_then(|s| s.get("required"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|key| (key.to_owned(), Value::String("fake".into())))
        .collect();
    Some((wanted.to_owned(), Value::Object(args)))
}

/// Model echoed when the request names none.
const FALLBACK_MODEL: &str = "fake-model";

impl Exchange {
    /// Reads a request body; `seq` is left 0 for the caller to set.
    pub(super) fn read(body: Option<&Value>) -> Exchange {
        let field = |name: &str| body.and_then(|body| body.get(name));
        Exchange {
            seq: 0,
            model: field("model").and_then(Value::as_str).unwrap_or(FALLBACK_MODEL).to_owned(),
            stream: field("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: field("stream_options")
                .and_then(|options| options.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            tool_call: body.and_then(forced_tool),
            code_assist: false,
        }
    }

    /// Gemini names the model in the path and streams only when the path says so: the
    /// model comes from there, and a stream is SSE when the query has `alt=sse`.
    pub(super) fn with_target(mut self, endpoint: Endpoint, uri: &http::Uri) -> Exchange {
        match endpoint {
            Endpoint::GenerateContent | Endpoint::StreamGenerateContent | Endpoint::GeminiCountTokens => {
                if let Some(model) = gemini_model(uri.path()) {
                    model.clone_into(&mut self.model);
                }
                // Code Assist names the model in the envelope (read already).
                self.code_assist = uri.path().contains("/v1internal:");
                self.stream = endpoint == Endpoint::StreamGenerateContent
                    && uri.query().is_some_and(|q| q.split('&').any(|pair| pair == "alt=sse"));
                self.include_usage = false;
                self.tool_call = None;
                self
            }
            _ => self,
        }
    }
}

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";

/// A rendered answer, before timing and faults.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) content_type: &'static str,
    pub(super) body: ReplyBody,
}

#[derive(Debug)]
pub(super) enum ReplyBody {
    /// A non-streaming body, sent with a `content-length`.
    Whole(Bytes),
    /// SSE events, sent chunked, one chunk per event.
    Events(Vec<Bytes>),
}

/// Renders the answer `script` gives to a request on `endpoint`.
pub(super) fn render(endpoint: Endpoint, protocol: Protocol, script: &Script, exchange: &Exchange) -> Reply {
    let status = script.status;
    if let Some(body) = &script.body {
        return Reply { status, content_type: JSON, body: ReplyBody::Whole(body.clone()) };
    }
    if let Some(events) = &script.events {
        return Reply { status, content_type: EVENT_STREAM, body: ReplyBody::Events(events.clone()) };
    }
    if !status.is_success() || endpoint == Endpoint::Unknown {
        return Reply { status, content_type: JSON, body: ReplyBody::Whole(error_body(protocol, script).into()) };
    }
    let whole = |object: Obj| Reply { status, content_type: JSON, body: ReplyBody::Whole(object.into()) };
    let events = |events: Vec<Bytes>| Reply { status, content_type: EVENT_STREAM, body: ReplyBody::Events(events) };
    match endpoint {
        Endpoint::Messages if exchange.stream => events(anthropic_stream(script, exchange)),
        Endpoint::Messages => whole(anthropic_message(script, exchange)),
        Endpoint::CountTokens => whole(Obj::new().with("input_tokens", script.usage.input_tokens)),
        Endpoint::ChatCompletions if exchange.stream => events(chat_stream(script, exchange)),
        Endpoint::ChatCompletions => whole(chat_completion(script, exchange)),
        Endpoint::Responses if exchange.stream => events(responses_stream(script, exchange)),
        Endpoint::Responses => whole(responses_object(script, exchange, &script.text)),
        Endpoint::GenerateContent => whole(code_assist(exchange, gemini_response(script, exchange))),
        Endpoint::StreamGenerateContent if exchange.stream => {
            events(gemini_chunks(script, exchange).into_iter().map(|c| gemini_sse(code_assist(exchange, c))).collect())
        }
        Endpoint::StreamGenerateContent => {
            let chunks: Vec<String> =
                gemini_chunks(script, exchange).into_iter().map(|c| code_assist(exchange, c).finish()).collect();
            Reply { status, content_type: JSON, body: ReplyBody::Whole(format!("[{}]", chunks.join(",")).into()) }
        }
        Endpoint::GeminiCountTokens => whole(Obj::new().with("totalTokens", gemini_prompt_tokens(&script.usage))),
        Endpoint::LoadCodeAssist => whole(
            Obj::new()
                .with("cloudaicompanionProject", CODE_ASSIST_PROJECT)
                .with_obj("currentTier", Obj::new().with("id", "free-tier")),
        ),
        Endpoint::Models | Endpoint::Unknown => whole(models(protocol)),
    }
}

/// The Google Cloud project the fake's Code Assist reports for every sign-in.
pub const CODE_ASSIST_PROJECT: &str = "fake-project-4242";

/// A Gemini answer as Code Assist sends it: inside `{"response": …}`.
fn code_assist(exchange: &Exchange, answer: Obj) -> Obj {
    if exchange.code_assist { Obj::new().with_obj("response", answer) } else { answer }
}

/// The header carrying the upstream request id in each protocol.
pub(super) fn request_id_header(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Anthropic => "request-id",
        Protocol::OpenAiChat | Protocol::OpenAiResponses | Protocol::Gemini => "x-request-id",
    }
}

/// A JSON object written with its keys in insertion order. `serde_json::Value` sorts keys,
/// but providers send `type` first, and the gateway's extractors take a fast path on that.
#[derive(Debug, Clone)]
struct Obj {
    json: String,
}

impl Obj {
    fn new() -> Obj {
        Obj { json: String::from("{") }
    }

    fn key(&mut self, key: &str) {
        if self.json.len() > 1 {
            self.json.push(',');
        }
        self.json.push_str(&json_text(&key));
        self.json.push(':');
    }

    /// Adds a field whose value is any serializable leaf (string, number, null, …).
    fn with(mut self, key: &str, value: impl Serialize) -> Obj {
        self.key(key);
        self.json.push_str(&json_text(&value));
        self
    }

    /// Adds a nested object.
    fn with_obj(mut self, key: &str, value: Obj) -> Obj {
        self.key(key);
        self.json.push_str(&value.finish());
        self
    }

    /// Adds an array of objects.
    fn with_objs(mut self, key: &str, values: impl IntoIterator<Item = Obj>) -> Obj {
        self.key(key);
        self.json.push('[');
        for (position, value) in values.into_iter().enumerate() {
            if position > 0 {
                self.json.push(',');
            }
            self.json.push_str(&value.finish());
        }
        self.json.push(']');
        self
    }

    fn finish(mut self) -> String {
        self.json.push('}');
        self.json
    }
}

impl From<Obj> for Bytes {
    fn from(object: Obj) -> Bytes {
        Bytes::from(object.finish())
    }
}

/// A leaf as JSON text; only maps with non-string keys fail to serialize, and no leaf is one.
fn json_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| String::from("null"))
}

/// `{"type":"error","error":{"type":…,"message":…}}` (Anthropic) or
/// `{"error":{"message":…,"type":…,"param":null,"code":…}}` (OpenAI).
fn error_object(protocol: Protocol, kind: &str, message: &str, code: Option<&str>) -> Obj {
    match protocol {
        Protocol::Anthropic => {
            Obj::new().with("type", "error").with_obj("error", Obj::new().with("type", kind).with("message", message))
        }
        Protocol::OpenAiChat | Protocol::OpenAiResponses => Obj::new().with_obj(
            "error",
            Obj::new().with("message", message).with("type", kind).with("param", ()).with("code", code),
        ),
        Protocol::Gemini => gemini_error(500, kind, message),
    }
}

/// `{"error":{"code":…,"message":…,"status":…}}` (Google).
fn gemini_error(code: u16, status: &str, message: &str) -> Obj {
    Obj::new().with_obj("error", Obj::new().with("code", code).with("message", message).with("status", status))
}

/// Google's `error.status` for an HTTP status.
fn gemini_error_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        500..=599 => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

/// The provider's error body for the script's status.
fn error_body(protocol: Protocol, script: &Script) -> Obj {
    let status = script.status;
    let message = script.error_message.clone().unwrap_or_else(|| {
        format!("{} (fake upstream {})", status.canonical_reason().unwrap_or("Upstream error"), status.as_u16())
    });
    let (default_kind, code) = match protocol {
        Protocol::Anthropic => (anthropic_error_type(status), None),
        Protocol::OpenAiChat | Protocol::OpenAiResponses => openai_error_type(status),
        Protocol::Gemini => {
            let kind = script.error_type.as_deref().unwrap_or(gemini_error_status(status));
            return gemini_error(status.as_u16(), kind, &message);
        }
    };
    error_object(protocol, script.error_type.as_deref().unwrap_or(default_kind), &message, code)
}

/// Anthropic's `error.type` for an HTTP status.
fn anthropic_error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// OpenAI's `error.type` and `error.code` for an HTTP status.
fn openai_error_type(status: StatusCode) -> (&'static str, Option<&'static str>) {
    match status.as_u16() {
        401 => ("invalid_request_error", Some("invalid_api_key")),
        403 => ("invalid_request_error", Some("unsupported_country_region_territory")),
        404 => ("invalid_request_error", Some("model_not_found")),
        429 => ("requests", Some("rate_limit_exceeded")),
        500..=599 => ("server_error", None),
        _ => ("invalid_request_error", None),
    }
}

const OPENAI_SERVER_ERROR: &str = "The server had an error while processing your request.";

/// The provider's in-stream error event, sent by `error_event_after`; `position` is the
/// event's `sequence_number` in a Responses stream.
pub(super) fn stream_error_event(protocol: Protocol, script: &Script, exchange: &Exchange, position: usize) -> Bytes {
    match protocol {
        Protocol::Anthropic => {
            let kind = script.error_type.as_deref().unwrap_or("overloaded_error");
            let message = script.error_message.as_deref().unwrap_or("Overloaded");
            sse(Some("error"), error_object(protocol, kind, message, None))
        }
        Protocol::OpenAiChat => {
            let kind = script.error_type.as_deref().unwrap_or("server_error");
            let message = script.error_message.as_deref().unwrap_or(OPENAI_SERVER_ERROR);
            sse(None, error_object(protocol, kind, message, None))
        }
        Protocol::Gemini => {
            let kind = script.error_type.as_deref().unwrap_or("UNAVAILABLE");
            let message = script.error_message.as_deref().unwrap_or("The model is overloaded. Please try again later.");
            gemini_sse(gemini_error(503, kind, message))
        }
        Protocol::OpenAiResponses => {
            let code = script.error_type.as_deref().unwrap_or("server_error");
            let message = script.error_message.as_deref().unwrap_or(OPENAI_SERVER_ERROR);
            let response = response_head(exchange, "failed")
                .with_obj("error", Obj::new().with("code", code).with("message", message))
                .with_objs("output", [])
                .with("usage", ());
            sse(
                Some("response.failed"),
                Obj::new()
                    .with("type", "response.failed")
                    .with("sequence_number", position)
                    .with_obj("response", response),
            )
        }
    }
}

fn anthropic_usage(usage: &Usage, output_tokens: u64) -> Obj {
    Obj::new()
        .with("input_tokens", usage.input_tokens)
        .with("cache_creation_input_tokens", usage.cache_creation_tokens)
        .with("cache_read_input_tokens", usage.cache_read_tokens)
        .with_obj(
            "cache_creation",
            Obj::new()
                .with("ephemeral_5m_input_tokens", usage.cache_creation_5m_tokens)
                .with("ephemeral_1h_input_tokens", usage.cache_creation_1h_tokens),
        )
        .with("output_tokens", output_tokens)
        .with("service_tier", "standard")
}

fn message_id(exchange: &Exchange) -> String {
    format!("msg_fake{:06}", exchange.seq)
}

fn text_block(text: &str) -> Obj {
    Obj::new().with("type", "text").with("text", text)
}

/// The Anthropic message object up to its content.
fn anthropic_message_head(exchange: &Exchange) -> Obj {
    Obj::new()
        .with("id", message_id(exchange))
        .with("type", "message")
        .with("role", "assistant")
        .with("model", &exchange.model)
}

fn tool_call_id(exchange: &Exchange, prefix: &str) -> String {
    format!("{prefix}_fake{:06}", exchange.seq)
}

/// The stop reason and content of a generated Anthropic answer.
fn anthropic_content(script: &Script, exchange: &Exchange) -> (&'static str, Obj) {
    match &exchange.tool_call {
        Some((name, args)) => (
            "tool_use",
            Obj::new()
                .with("type", "tool_use")
                .with("id", tool_call_id(exchange, "toolu"))
                .with("name", name)
                .with("input", args),
        ),
        None => ("end_turn", text_block(&script.text)),
    }
}

fn anthropic_message(script: &Script, exchange: &Exchange) -> Obj {
    let (stop_reason, block) = anthropic_content(script, exchange);
    anthropic_message_head(exchange)
        .with_objs("content", [block])
        .with("stop_reason", stop_reason)
        .with("stop_sequence", ())
        .with_obj("usage", anthropic_usage(&script.usage, script.usage.output_tokens))
}

/// `message_start`, `content_block_start`, a `content_block_delta` per text piece,
/// `content_block_stop`, `message_delta`, `message_stop`.
fn anthropic_stream(script: &Script, exchange: &Exchange) -> Vec<Bytes> {
    let pieces = split_text(&script.text, script.deltas);
    let mut events = Vec::with_capacity(pieces.len() + 5);
    let event = |name: &str| Obj::new().with("type", name);
    let message = anthropic_message_head(exchange)
        .with_objs("content", [])
        .with("stop_reason", ())
        .with("stop_sequence", ())
        .with_obj("usage", anthropic_usage(&script.usage, 1));
    events.push(sse(Some("message_start"), event("message_start").with_obj("message", message)));
    let delta = |delta: Obj| {
        sse(Some("content_block_delta"), event("content_block_delta").with("index", 0).with_obj("delta", delta))
    };
    let stop_reason = if let Some((name, args)) = &exchange.tool_call {
        let block = Obj::new()
            .with("type", "tool_use")
            .with("id", tool_call_id(exchange, "toolu"))
            .with("name", name)
            .with_obj("input", Obj::new());
        events.push(sse(
            Some("content_block_start"),
            event("content_block_start").with("index", 0).with_obj("content_block", block),
        ));
        let json = args.to_string();
        for piece in split_text(&json, 2) {
            events.push(delta(Obj::new().with("type", "input_json_delta").with("partial_json", piece)));
        }
        "tool_use"
    } else {
        events.push(sse(
            Some("content_block_start"),
            event("content_block_start").with("index", 0).with_obj("content_block", text_block("")),
        ));
        for piece in pieces {
            events.push(delta(Obj::new().with("type", "text_delta").with("text", piece)));
        }
        "end_turn"
    };
    events.push(sse(Some("content_block_stop"), event("content_block_stop").with("index", 0)));
    events.push(sse(
        Some("message_delta"),
        event("message_delta")
            .with_obj("delta", Obj::new().with("stop_reason", stop_reason).with("stop_sequence", ()))
            .with_obj("usage", Obj::new().with("output_tokens", script.usage.output_tokens)),
    ));
    events.push(sse(Some("message_stop"), event("message_stop")));
    events
}

/// OpenAI's prompt count includes cached tokens.
fn openai_prompt_tokens(usage: &Usage) -> u64 {
    usage.input_tokens.saturating_add(usage.cache_read_tokens)
}

fn chat_usage(usage: &Usage) -> Obj {
    let prompt = openai_prompt_tokens(usage);
    Obj::new()
        .with("prompt_tokens", prompt)
        .with("completion_tokens", usage.output_tokens)
        .with("total_tokens", prompt.saturating_add(usage.output_tokens))
        .with_obj(
            "prompt_tokens_details",
            Obj::new().with("cached_tokens", usage.cache_read_tokens).with("audio_tokens", 0),
        )
        .with_obj("completion_tokens_details", Obj::new().with("reasoning_tokens", 0).with("audio_tokens", 0))
}

fn chat_id(exchange: &Exchange) -> String {
    format!("chatcmpl-fake{:06}", exchange.seq)
}

/// A chat completion or chunk up to its `choices`.
fn chat_head(exchange: &Exchange, object: &str, created: u64) -> Obj {
    Obj::new()
        .with("id", chat_id(exchange))
        .with("object", object)
        .with("created", created)
        .with("model", &exchange.model)
}

/// An OpenAI tool call; `arguments` is the JSON text of the arguments (or a piece of it).
fn chat_tool_call(exchange: &Exchange, name: Option<&str>, arguments: &str) -> Obj {
    let call = Obj::new().with("index", 0);
    let function = Obj::new();
    let (call, function) = match name {
        Some(name) => {
            (call.with("id", tool_call_id(exchange, "call")).with("type", "function"), function.with("name", name))
        }
        None => (call, function),
    };
    call.with_obj("function", function.with("arguments", arguments))
}

fn chat_completion(script: &Script, exchange: &Exchange) -> Obj {
    let message = Obj::new().with("role", "assistant");
    let (message, finish_reason) = match &exchange.tool_call {
        Some((name, args)) => (
            message
                .with("content", ())
                .with_objs("tool_calls", [chat_tool_call(exchange, Some(name), &args.to_string())]),
            "tool_calls",
        ),
        None => (message.with("content", &script.text), "stop"),
    };
    let message = message.with("refusal", ());
    let choice = Obj::new()
        .with("index", 0)
        .with_obj("message", message)
        .with("logprobs", ())
        .with("finish_reason", finish_reason);
    chat_head(exchange, "chat.completion", unix_now())
        .with_objs("choices", [choice])
        .with_obj("usage", chat_usage(&script.usage))
        .with("system_fingerprint", "fp_fake")
}

/// A role chunk, a chunk per text piece, a `finish_reason` chunk, the usage chunk (empty
/// `choices`) only when the request set `stream_options.include_usage`, then `[DONE]`.
fn chat_stream(script: &Script, exchange: &Exchange) -> Vec<Bytes> {
    let pieces = split_text(&script.text, script.deltas);
    let created = unix_now();
    let chunk = |choices: Vec<Obj>, usage: Option<Obj>| {
        let chunk = chat_head(exchange, "chat.completion.chunk", created)
            .with("system_fingerprint", "fp_fake")
            .with_objs("choices", choices);
        // With include_usage every chunk carries `usage`, null until the last one.
        let chunk = match usage {
            Some(usage) => chunk.with_obj("usage", usage),
            None if exchange.include_usage => chunk.with("usage", ()),
            None => chunk,
        };
        sse(None, chunk)
    };
    let choice = |delta: Obj, finish_reason: Option<&str>| {
        vec![
            Obj::new()
                .with("index", 0)
                .with_obj("delta", delta)
                .with("logprobs", ())
                .with("finish_reason", finish_reason),
        ]
    };
    let mut events = Vec::with_capacity(pieces.len() + 4);
    let role = Obj::new().with("role", "assistant").with("content", "").with("refusal", ());
    events.push(chunk(choice(role, None), None));
    let finish_reason = if let Some((name, args)) = &exchange.tool_call {
        let calls = |call: Obj| Obj::new().with_objs("tool_calls", [call]);
        events.push(chunk(choice(calls(chat_tool_call(exchange, Some(name), "")), None), None));
        for piece in split_text(&args.to_string(), 2) {
            events.push(chunk(choice(calls(chat_tool_call(exchange, None, piece)), None), None));
        }
        "tool_calls"
    } else {
        for piece in pieces {
            events.push(chunk(choice(Obj::new().with("content", piece), None), None));
        }
        "stop"
    };
    events.push(chunk(choice(Obj::new(), Some(finish_reason)), None));
    if exchange.include_usage {
        events.push(chunk(Vec::new(), Some(chat_usage(&script.usage))));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

fn response_id(exchange: &Exchange) -> String {
    format!("resp_fake{:06}", exchange.seq)
}

/// A `response` object up to its output.
fn response_head(exchange: &Exchange, status: &str) -> Obj {
    Obj::new()
        .with("id", response_id(exchange))
        .with("object", "response")
        .with("created_at", unix_now())
        .with("status", status)
        .with("model", &exchange.model)
}

fn responses_usage(usage: &Usage) -> Obj {
    let input = openai_prompt_tokens(usage);
    Obj::new()
        .with("input_tokens", input)
        .with_obj("input_tokens_details", Obj::new().with("cached_tokens", usage.cache_read_tokens))
        .with("output_tokens", usage.output_tokens)
        .with_obj("output_tokens_details", Obj::new().with("reasoning_tokens", 0))
        .with("total_tokens", input.saturating_add(usage.output_tokens))
}

fn output_text_part(text: &str) -> Obj {
    Obj::new().with("type", "output_text").with("text", text).with_objs("annotations", [])
}

fn output_message(exchange: &Exchange, status: &str, content: Option<&str>) -> Obj {
    Obj::new()
        .with("type", "message")
        .with("id", message_id(exchange))
        .with("status", status)
        .with("role", "assistant")
        .with_objs("content", content.map(output_text_part))
}

/// The `response` object: completed with the full text and usage.
fn responses_object(script: &Script, exchange: &Exchange, text: &str) -> Obj {
    response_head(exchange, "completed")
        .with_objs("output", [output_message(exchange, "completed", Some(text))])
        .with_obj("usage", responses_usage(&script.usage))
}

/// `response.created`, `response.in_progress`, `response.output_item.added`,
/// `response.content_part.added`, a `response.output_text.delta` per text piece,
/// `response.output_text.done`, `response.content_part.done`, `response.output_item.done`,
/// `response.completed` (with usage).
fn responses_stream(script: &Script, exchange: &Exchange) -> Vec<Bytes> {
    let pieces = split_text(&script.text, script.deltas);
    let streamed: String = pieces.concat();
    let item_id = message_id(exchange);
    let in_progress = || response_head(exchange, "in_progress").with_objs("output", []).with("usage", ());
    let in_part = |event: Obj| event.with("item_id", &item_id).with("output_index", 0).with("content_index", 0);
    let mut events = Vec::with_capacity(pieces.len() + 8);
    // `type` and `sequence_number` lead every event, as OpenAI sends them.
    let mut push = |name: &str, fill: &dyn Fn(Obj) -> Obj| {
        let event = Obj::new().with("type", name).with("sequence_number", events.len());
        events.push(sse(Some(name), fill(event)));
    };
    push("response.created", &|e| e.with_obj("response", in_progress()));
    push("response.in_progress", &|e| e.with_obj("response", in_progress()));
    push("response.output_item.added", &|e| {
        e.with("output_index", 0).with_obj("item", output_message(exchange, "in_progress", None))
    });
    push("response.content_part.added", &|e| in_part(e).with_obj("part", output_text_part("")));
    for piece in &pieces {
        push("response.output_text.delta", &|e| in_part(e).with("delta", piece));
    }
    push("response.output_text.done", &|e| in_part(e).with("text", &streamed));
    push("response.content_part.done", &|e| in_part(e).with_obj("part", output_text_part(&streamed)));
    push("response.output_item.done", &|e| {
        e.with("output_index", 0).with_obj("item", output_message(exchange, "completed", Some(&streamed)))
    });
    push("response.completed", &|e| e.with_obj("response", responses_object(script, exchange, &streamed)));
    events
}

/// Gemini's prompt count includes cached tokens.
fn gemini_prompt_tokens(usage: &Usage) -> u64 {
    usage.input_tokens.saturating_add(usage.cache_read_tokens)
}

/// `usageMetadata` with `output` candidate tokens so far.
fn gemini_usage(usage: &Usage, output: u64) -> Obj {
    let prompt = gemini_prompt_tokens(usage);
    let metadata = Obj::new().with("promptTokenCount", prompt).with("candidatesTokenCount", output);
    let metadata = metadata.with("totalTokenCount", prompt.saturating_add(output));
    let metadata = if usage.cache_read_tokens > 0 {
        metadata.with("cachedContentTokenCount", usage.cache_read_tokens)
    } else {
        metadata
    };
    metadata.with_objs("promptTokensDetails", [Obj::new().with("modality", "TEXT").with("tokenCount", prompt)])
}

/// One Gemini answer or stream chunk: a candidate with `text`, its `finishReason` when
/// `finished`, and usage with `output` candidate tokens so far.
fn gemini_chunk(script: &Script, exchange: &Exchange, text: &str, finished: bool, output: u64) -> Obj {
    let content = Obj::new().with_objs("parts", [Obj::new().with("text", text)]).with("role", "model");
    let candidate = Obj::new().with_obj("content", content);
    let candidate = if finished { candidate.with("finishReason", "STOP") } else { candidate };
    Obj::new()
        .with_objs("candidates", [candidate.with("index", 0)])
        .with_obj("usageMetadata", gemini_usage(&script.usage, output))
        .with("modelVersion", &exchange.model)
        .with("responseId", format!("fake{:06}", exchange.seq))
}

fn gemini_response(script: &Script, exchange: &Exchange) -> Obj {
    gemini_chunk(script, exchange, &script.text, true, script.usage.output_tokens)
}

/// A chunk per text piece (at least one), each with the usage so far: the output count
/// grows and the last chunk, which carries `finishReason`, has the full usage.
fn gemini_chunks(script: &Script, exchange: &Exchange) -> Vec<Obj> {
    let mut pieces = split_text(&script.text, script.deltas);
    if pieces.is_empty() {
        pieces.push("");
    }
    let total = script.usage.output_tokens;
    let count = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| {
            let last = i + 1 == count;
            let output = if last { total } else { total.min(u64::try_from(i + 1).unwrap_or(u64::MAX)) };
            gemini_chunk(script, exchange, piece, last, output)
        })
        .collect()
}

/// One Gemini SSE event, with the CRLF line ends Google sends.
fn gemini_sse(data: Obj) -> Bytes {
    Bytes::from(format!("data: {}\r\n\r\n", data.finish()))
}

fn models(protocol: Protocol) -> Obj {
    match protocol {
        Protocol::Anthropic => {
            let ids = ["claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805", "claude-haiku-4-5-20251001"];
            let data = ids.iter().map(|id| {
                Obj::new()
                    .with("type", "model")
                    .with("id", id)
                    .with("display_name", id)
                    .with("created_at", "2025-08-05T00:00:00Z")
            });
            Obj::new()
                .with_objs("data", data)
                .with("has_more", false)
                .with("first_id", ids.first())
                .with("last_id", ids.last())
        }
        Protocol::OpenAiChat | Protocol::OpenAiResponses => {
            let data = ["gpt-5", "gpt-5-codex", "gpt-4o-mini"].into_iter().map(|id| {
                Obj::new()
                    .with("id", id)
                    .with("object", "model")
                    .with("created", 1_754_006_400)
                    .with("owned_by", "openai")
            });
            Obj::new().with("object", "list").with_objs("data", data)
        }
        Protocol::Gemini => {
            let models = ["gemini-2.5-pro", "gemini-2.5-flash"].into_iter().map(|id| {
                Obj::new()
                    .with("name", format!("models/{id}"))
                    .with("displayName", id)
                    .with("supportedGenerationMethods", ["generateContent", "countTokens"])
            });
            Obj::new().with_objs("models", models)
        }
    }
}

/// One SSE event: `event: <name>\n` when named, then `data: <json>\n\n`.
fn sse(name: Option<&str>, data: Obj) -> Bytes {
    let data = data.finish();
    let event = match name {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    };
    Bytes::from(event)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

/// Splits `text` into exactly `parts` pieces of near-equal character count (some empty when
/// the text is shorter than `parts`); their concatenation is `text` unless `parts` is 0.
fn split_text(text: &str, parts: usize) -> Vec<&str> {
    if parts == 0 {
        return Vec::new();
    }
    let bounds: Vec<usize> = text.char_indices().map(|(at, _)| at).chain(std::iter::once(text.len())).collect();
    let chars = bounds.len() - 1;
    (0..parts).map(|part| &text[bounds[part * chars / parts]..bounds[(part + 1) * chars / parts]]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forced_tool_is_called_until_its_result_comes_back() {
        let tools = serde_json::json!([{"name": "f", "input_schema": {"required": ["city"]}}, {"name": "g"}]);
        let mut body = serde_json::json!({"tools": tools, "tool_choice": {"type": "tool", "name": "f"},
            "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(forced_tool(&body), Some(("f".into(), serde_json::json!({"city": "fake"}))));
        body["tool_choice"] = serde_json::json!("auto");
        assert_eq!(forced_tool(&body), None, "auto leaves the choice to the model: text");
        let chat = serde_json::json!({"tools": [{"type": "function", "function": {"name": "w"}}], "tool_choice": "required",
            "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(forced_tool(&chat), Some(("w".into(), serde_json::json!({}))));
        let mut answered = chat.clone();
        answered["messages"].as_array_mut().unwrap().push(serde_json::json!({"role": "tool", "content": "ok"}));
        assert_eq!(forced_tool(&answered), None);
    }

    #[test]
    fn split_text_covers_the_text_in_exactly_n_pieces() {
        assert_eq!(split_text("abcdefgh", 4), ["ab", "cd", "ef", "gh"]);
        assert_eq!(split_text("héllo wörld", 3).concat(), "héllo wörld");
        assert_eq!(split_text("ab", 4), ["", "a", "", "b"]);
        assert!(split_text("ab", 0).is_empty());
        assert_eq!(split_text("", 2), ["", ""]);
    }

    #[test]
    fn endpoints_match_on_the_path_suffix() {
        assert_eq!(Endpoint::of(&Method::POST, "/v1/messages"), Endpoint::Messages);
        assert_eq!(Endpoint::of(&Method::POST, "/claude/v1/messages/"), Endpoint::Messages);
        assert_eq!(Endpoint::of(&Method::POST, "/v1/messages/count_tokens"), Endpoint::CountTokens);
        assert_eq!(Endpoint::of(&Method::POST, "/v1/chat/completions"), Endpoint::ChatCompletions);
        assert_eq!(Endpoint::of(&Method::POST, "/v1/responses"), Endpoint::Responses);
        assert_eq!(Endpoint::of(&Method::GET, "/v1/models"), Endpoint::Models);
        assert_eq!(Endpoint::of(&Method::GET, "/v1/messages"), Endpoint::Unknown);
        assert_eq!(Endpoint::of(&Method::HEAD, "/"), Endpoint::Unknown);
        let gemini = |path: &str| Endpoint::of(&Method::POST, path);
        assert_eq!(gemini("/v1beta/models/gemini-2.5-flash:generateContent"), Endpoint::GenerateContent);
        assert_eq!(gemini("/google/v1beta/models/g:streamGenerateContent"), Endpoint::StreamGenerateContent);
        assert_eq!(gemini("/v1beta/models/g:countTokens"), Endpoint::GeminiCountTokens);
        assert_eq!(gemini("/v1beta/models/g:embedContent"), Endpoint::Unknown);
        assert_eq!(Endpoint::of(&Method::GET, "/v1beta/models/g:generateContent"), Endpoint::Unknown);
    }

    #[test]
    fn gemini_answers_carry_cumulative_usage_and_the_path_model() {
        let uri: http::Uri = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse".parse().unwrap();
        let exchange = Exchange::read(None).with_target(Endpoint::StreamGenerateContent, &uri);
        assert!(exchange.stream);
        assert_eq!(exchange.model, "gemini-2.5-flash");
        let script = Script::ok().deltas(3);
        let reply = render(Endpoint::StreamGenerateContent, Protocol::Gemini, &script, &exchange);
        let ReplyBody::Events(events) = reply.body else { panic!("an SSE stream") };
        assert_eq!(events.len(), 3);
        let mut last = None;
        for event in &events {
            let text = std::str::from_utf8(event).unwrap();
            assert!(text.starts_with("data: {") && text.ends_with("}\r\n\r\n"), "{text}");
            last = crate::usage::Usage::from_gemini(text[6..].trim_end().as_bytes());
        }
        assert_eq!(last, Some(Protocol::Gemini.reported_usage(script.usage)));
        assert!(std::str::from_utf8(&events[2]).unwrap().contains("\"finishReason\":\"STOP\""));

        let plain: http::Uri = "/v1beta/models/m:streamGenerateContent".parse().unwrap();
        let exchange = Exchange::read(None).with_target(Endpoint::StreamGenerateContent, &plain);
        let reply = render(Endpoint::StreamGenerateContent, Protocol::Gemini, &script, &exchange);
        let ReplyBody::Whole(body) = reply.body else { panic!("one JSON array without alt=sse") };
        assert!(body.starts_with(b"[{") && body.ends_with(b"}]"));
        assert_eq!(crate::usage::Usage::from_gemini(&body), Some(Protocol::Gemini.reported_usage(script.usage)));

        let error = error_body(Protocol::Gemini, &Script::status(StatusCode::TOO_MANY_REQUESTS)).finish();
        let error: Value = serde_json::from_str(&error).unwrap();
        assert_eq!(
            (error["error"]["code"].as_u64(), error["error"]["status"].as_str()),
            (Some(429), Some("RESOURCE_EXHAUSTED"))
        );
    }

    #[test]
    fn objects_keep_key_order_and_escape() {
        let object = Obj::new()
            .with("type", "x")
            .with("a\"b", "line\nbreak")
            .with("none", ())
            .with_obj("nested", Obj::new())
            .with_objs("list", [Obj::new().with("n", 1), Obj::new()]);
        assert_eq!(object.finish(), r#"{"type":"x","a\"b":"line\nbreak","none":null,"nested":{},"list":[{"n":1},{}]}"#);
    }

    #[test]
    fn error_types_follow_the_status() {
        assert_eq!(anthropic_error_type(StatusCode::TOO_MANY_REQUESTS), "rate_limit_error");
        assert_eq!(anthropic_error_type(StatusCode::from_u16(529).unwrap()), "overloaded_error");
        assert_eq!(anthropic_error_type(StatusCode::UNAUTHORIZED), "authentication_error");
        assert_eq!(anthropic_error_type(StatusCode::BAD_GATEWAY), "api_error");
        assert_eq!(openai_error_type(StatusCode::TOO_MANY_REQUESTS), ("requests", Some("rate_limit_exceeded")));
    }
}
