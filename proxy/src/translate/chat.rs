//! OpenAI Chat Completions ⇄ Anthropic Messages: requests, whole responses and streams, in
//! both directions. This module owns the Chat Completions wire types and the mapping rules;
//! it does not decide when to translate, pick accounts or record usage (the relay does).
//!
//! # Requests, Chat → Messages ([`request_to_messages`])
//!
//! - `system` and `developer` messages become Anthropic `system` text blocks, in order,
//!   wherever they stand (Messages has one system prompt).
//! - User parts: `text` → text block; `image_url` with a `data:<mime>;base64,…` URL → base64
//!   image, with an `http(s)` URL → URL image (`detail` is a hint and dropped). Other parts
//!   (`input_audio`, `file`, …) are refused naming `messages[i].content[j].type`.
//! - Assistant `tool_calls` → `tool_use` blocks; `arguments` must be a JSON object (`""`
//!   counts as `{}`), else refused naming `messages[i].tool_calls[j].function.arguments`.
//!   An assistant `refusal` is kept as text; `reasoning_content` is dropped (Anthropic only
//!   takes back thinking it signed itself).
//! - `tool` messages → `tool_result` blocks in a user message. Consecutive messages of the
//!   same Anthropic role merge (tool results followed by a user turn become one user
//!   message), because Messages requires alternating roles. Empty texts are dropped, since
//!   Messages rejects empty text blocks. A participant `name` is dropped.
//! - `tools` (function only; other types refused) → `{name, description, input_schema}`,
//!   `input_schema` defaulting to an empty object schema. `strict` is dropped: the schema
//!   still reaches the model, only OpenAI's constrained decoding is lost.
//! - `tool_choice`: `auto`→auto, `none`→none, `required`→any, `{function:{name}}`→tool;
//!   `parallel_tool_calls: false` → `disable_parallel_tool_use: true`. Without tools both
//!   are dropped (Messages refuses a choice among no tools).
//! - `max_completion_tokens`, else `max_tokens`, else [`DEFAULT_MAX_TOKENS`] (Messages
//!   requires the field). `temperature` and `top_p` pass unchanged (the upstream judges the
//!   range), `stop` → `stop_sequences`, `user` → `metadata.user_id`, `stream` is kept.
//! - Refused, because dropping them would silently change the answer: `n > 1`,
//!   `logprobs: true`, `top_logprobs > 0`, `response_format` other than `text`, `modalities`
//!   other than text, a non-empty `logit_bias`, legacy `functions`/`function_call` and the
//!   `function` role, and any field this module does not know (OpenAI itself rejects
//!   unknown fields).
//! - Ignored as hints ([`IGNORED_CHAT_FIELDS`]): `stream_options` (the relay reads
//!   `include_usage` itself), `store`, `metadata`, `service_tier`, `seed`,
//!   `prompt_cache_key`, `prompt_cache_retention`, `safety_identifier`, `reasoning_effort`,
//!   `verbosity`, `frequency_penalty`, `presence_penalty`, `prediction`. A field set to
//!   `null` counts as absent.
//!
//! # Requests, Messages → Chat ([`request_from_messages`])
//!
//! - `system` → one leading `system` message. User text and images → user content parts
//!   (base64 images as data URLs); `tool_result` blocks → `tool` messages placed before the
//!   rest of that user turn; assistant text → content, `tool_use` → `tool_calls`.
//! - Dropped: thinking blocks (OpenAI cannot take reasoning back), the `thinking` option and
//!   `top_k` (sampling hints), `cache_control` (OpenAI caches on its own), `is_error` (the
//!   result text carries the failure) and `service_tier`. Refused: server tools, documents,
//!   images inside tool results and unknown top-level fields.
//! - `max_tokens` → `max_completion_tokens`; `stop_sequences` → `stop`;
//!   `metadata.user_id` → `user`; `stream: true` adds `stream_options.include_usage` so the
//!   final usage arrives.
//!
//! # Responses and streams
//!
//! - Stop reasons: `end_turn`/`stop_sequence` ⇄ `stop`, `max_tokens` ⇄ `length`, `tool_use`
//!   ⇄ `tool_calls` (and `function_call`), `refusal` ⇄ `content_filter`.
//! - Usage: `prompt_tokens` = input + cache read + cache creation, `cached_tokens` = cache
//!   read; back again `input_tokens` = prompt − cached, `cache_read_input_tokens` = cached.
//! - Thinking → `reasoning_content`; `reasoning_content` is not turned back into thinking
//!   (an unsigned thinking block would be refused when the client sends it back).
//! - Ids: `msg_X` ⇄ `chatcmpl-X`; tool call ids are kept.
//! - A whole Chat message holds its text before its tool calls, so text that followed a tool
//!   use in a Messages answer comes first; streams keep the block order.
//!
//! # Streams
//!
//! - Messages → Chat ([`ChatFromMessages`]): a first chunk with `role: assistant` and empty
//!   content; text and thinking deltas as `content` / `reasoning_content`; each `tool_use`
//!   block as Chat tool call `k` (counted from 0), its id and name first, then its argument
//!   fragments; `message_delta` as the `finish_reason` chunk; `message_stop` as the usage
//!   chunk (`choices: []`, only if asked for) and `[DONE]`. An `error` event becomes an
//!   OpenAI error object and ends the output; `ping` is dropped.
//! - Chat → Messages ([`MessagesFromChat`]): `message_start` (input 0, not yet known) on the
//!   first chunk; content in a text block and each tool call in its own `tool_use` block,
//!   the open block closed before another opens (and at the finish reason); on `[DONE]`,
//!   `message_delta` with the stop reason and the usage chunk's figures, then
//!   `message_stop`. An error object becomes an `error` event and ends the output.
//! - Either way, `finish(clean = true)` completes a stream whose stop or finish reason arrived
//!   but whose last event did not; `finish(clean = false)` writes nothing.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::anthropic::{
    Content, ContentBlock, Delta, ErrorBody, ImageSource, Message, MessageDeltaBody, MessagesRequest, MessagesResponse,
    Metadata, Role, StreamEvent, System, Tool, ToolChoice, ToolResultContent, Usage, is_false,
};
use super::{StreamConverter, Unmappable, unix_now, write_event};

/// `max_tokens` for a Chat request that names no limit: Messages requires one, and 4096 is
/// what every current Claude model can produce.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Top-level Chat request fields dropped as hints; any other unmodelled field is refused.
pub const IGNORED_CHAT_FIELDS: &[&str] = &[
    "store",
    "metadata",
    "service_tier",
    "seed",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "reasoning_effort",
    "verbosity",
    "frequency_penalty",
    "presence_penalty",
    "prediction",
];

/// Top-level Messages request fields dropped as hints; any other unmodelled field is refused.
pub const IGNORED_MESSAGES_FIELDS: &[&str] = &["service_tier"];

// ---------------------------------------------------------------------------------------
// Chat Completions wire types
// ---------------------------------------------------------------------------------------

/// A Chat Completions request. Fields not modelled land in `extra`, where they are refused
/// unless [`IGNORED_CHAT_FIELDS`] names them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "is_false")]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ChatTool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ChatToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modalities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<Map<String, Value>>,
    /// Every other top-level field, judged by `refuse_extra_fields`.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default, deserialize_with = "null_default")]
    pub include_usage: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseFormat {
    /// `text`, `json_object` or `json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    System {
        content: ChatContent,
    },
    Developer {
        content: ChatContent,
    },
    User {
        content: ChatContent,
    },
    Assistant {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<ChatContent>,
        #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ChatToolCall>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refusal: Option<String>,
        /// Legacy single function call; refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        function_call: Option<Value>,
        /// A reference to earlier audio output; refused.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audio: Option<Value>,
    },
    Tool {
        tool_call_id: String,
        content: ChatContent,
    },
    /// The legacy `function` role; refused.
    Function {},
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    Refusal {
        refusal: String,
    },
    /// `input_audio`, `file` and any later part type.
    #[serde(other)]
    Unsupported,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatToolCall {
    pub id: String,
    /// Always `function` for calls this module accepts.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments as a JSON text (not a JSON value).
    #[serde(default, deserialize_with = "null_default")]
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatTool {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `"auto"`, `"none"`, `"required"` or `{"type":"function","function":{"name":…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatToolChoice {
    Mode(String),
    Named(NamedToolChoice),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionName>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionName {
    pub name: String,
}

/// A `chat.completion` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub model: String,
    #[serde(default, deserialize_with = "null_default")]
    pub choices: Vec<ChatChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ChatUsage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    #[serde(default)]
    pub index: u32,
    pub message: ChatResponseMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Always `null` here; present because clients index it.
    #[serde(default)]
    pub logprobs: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponseMessage {
    #[serde(default = "assistant_role")]
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ChatToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default)]
    pub refusal: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUsage {
    #[serde(default, deserialize_with = "null_default")]
    pub prompt_tokens: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub completion_tokens: u64,
    #[serde(default, deserialize_with = "null_default")]
    pub total_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    #[serde(default, deserialize_with = "null_default")]
    pub cached_tokens: u64,
}

/// One `chat.completion.chunk`, or an error object sent in its place mid-stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub object: String,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub model: String,
    /// Empty on the final usage chunk.
    #[serde(default, deserialize_with = "null_default")]
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<ChatUsage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ChatError>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default, deserialize_with = "null_default")]
    pub delta: ChunkDelta,
    /// Serialised as `null` until the last content chunk.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Which tool call of the message this fragment belongs to (0, 1, …).
    #[serde(default)]
    pub index: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDelta>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// OpenAI's error object (`{"error":{…}}` in bodies and mid-stream).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatError {
    #[serde(default, deserialize_with = "null_default")]
    pub message: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub param: Option<Value>,
    #[serde(default)]
    pub code: Option<Value>,
}

#[derive(Serialize)]
struct ChatErrorEnvelope {
    error: ChatError,
}

/// A Messages request plus the top-level fields it does not model.
#[derive(Deserialize)]
struct MessagesRequestIn {
    #[serde(flatten)]
    request: MessagesRequest,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Reads `null` as the type's default: SDKs write `null` for unset fields.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn function_kind() -> String {
    "function".to_owned()
}

fn assistant_role() -> String {
    "assistant".to_owned()
}

/// Serialises a wire value; plain structs and `Value`s with string keys cannot fail.
fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Refuses the first non-null field that is neither modelled nor a known hint.
fn refuse_extra_fields(extra: &Map<String, Value>, ignored: &[&str], target: &str) -> Result<(), Unmappable> {
    match extra.iter().find(|(key, value)| !value.is_null() && !ignored.contains(&key.as_str())) {
        Some((key, _)) => Err(Unmappable::new(key.clone(), format!("has no {target} equivalent"))),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Shared mappings: ids, stop reasons, usage, tool arguments
// ---------------------------------------------------------------------------------------

/// `msg_X` → `chatcmpl-X`.
fn chat_id(message_id: &str) -> String {
    format!("chatcmpl-{}", message_id.strip_prefix("msg_").unwrap_or(message_id))
}

/// `chatcmpl-X` → `msg_X`.
fn message_id(chat_id: &str) -> String {
    format!("msg_{}", chat_id.strip_prefix("chatcmpl-").unwrap_or(chat_id))
}

/// A fresh id suffix for a stream that has not told us its own yet.
fn fresh_suffix() -> String {
    format!("{:x}", time::OffsetDateTime::now_utc().unix_timestamp_nanos())
}

/// Anthropic `stop_reason` → Chat `finish_reason`.
fn finish_reason_from_stop(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Chat `finish_reason` → Anthropic `stop_reason`.
fn stop_reason_from_finish(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Chat counts cached and cache-written tokens inside `prompt_tokens`; Anthropic apart.
fn usage_to_chat(usage: &Usage) -> ChatUsage {
    let cache_read = usage.cache_read_input_tokens.unwrap_or(0);
    let prompt =
        usage.input_tokens.saturating_add(cache_read).saturating_add(usage.cache_creation_input_tokens.unwrap_or(0));
    ChatUsage {
        prompt_tokens: prompt,
        completion_tokens: usage.output_tokens,
        total_tokens: prompt.saturating_add(usage.output_tokens),
        prompt_tokens_details: Some(PromptTokensDetails { cached_tokens: cache_read }),
    }
}

/// The reverse of [`usage_to_chat`]; cache writes are not reported by Chat and stay in input.
fn usage_from_chat(usage: &ChatUsage) -> Usage {
    let cached = usage.prompt_tokens_details.as_ref().map_or(0, |details| details.cached_tokens);
    Usage {
        input_tokens: usage.prompt_tokens.saturating_sub(cached),
        output_tokens: usage.completion_tokens,
        cache_creation_input_tokens: None,
        cache_read_input_tokens: Some(cached),
    }
}

/// Tool call arguments as the JSON object `tool_use.input` must be; `""` means no arguments.
fn parse_arguments(arguments: &str) -> Option<Value> {
    if arguments.trim().is_empty() {
        return Some(Value::Object(Map::new()));
    }
    serde_json::from_str::<Value>(arguments).ok().filter(Value::is_object)
}

fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

fn text_block(text: String) -> ContentBlock {
    ContentBlock::Text { text, cache_control: None }
}

// ---------------------------------------------------------------------------------------
// Requests: Chat → Messages
// ---------------------------------------------------------------------------------------

/// Chat request JSON → Anthropic Messages request JSON (stream flag kept).
pub fn request_to_messages(body: &[u8]) -> Result<Vec<u8>, Unmappable> {
    let chat: ChatRequest = serde_json::from_slice(body)
        .map_err(|e| Unmappable::new("body", format!("not a Chat Completions request: {e}")))?;
    Ok(to_json(&messages_request(chat)?))
}

fn messages_request(chat: ChatRequest) -> Result<MessagesRequest, Unmappable> {
    refuse_unsupported_options(&chat)?;
    let (system, messages) = convert_chat_messages(&chat.messages)?;
    let tools =
        chat.tools.iter().enumerate().map(|(i, tool)| tool_to_anthropic(i, tool)).collect::<Result<Vec<_>, _>>()?;
    let tool_choice = tool_choice_to_anthropic(chat.tool_choice.as_ref(), chat.parallel_tool_calls)?;
    Ok(MessagesRequest {
        model: chat.model,
        messages,
        system: (!system.is_empty()).then_some(System::Blocks(system)),
        max_tokens: chat.max_completion_tokens.or(chat.max_tokens).unwrap_or(DEFAULT_MAX_TOKENS),
        temperature: chat.temperature,
        top_p: chat.top_p,
        top_k: None,
        stop_sequences: match chat.stop {
            Some(Stop::One(stop)) => vec![stop],
            Some(Stop::Many(stops)) => stops,
            None => Vec::new(),
        },
        stream: chat.stream,
        tool_choice: if tools.is_empty() { None } else { tool_choice },
        tools,
        metadata: chat.user.map(|user| Metadata { user_id: Some(user) }),
        thinking: None,
    })
}

/// Refuses options whose loss would change what the client gets back.
fn refuse_unsupported_options(chat: &ChatRequest) -> Result<(), Unmappable> {
    if chat.n.is_some_and(|n| n > 1) {
        return Err(Unmappable::new("n", "Anthropic models return one choice per request"));
    }
    if chat.logprobs == Some(true) {
        return Err(Unmappable::new("logprobs", "Anthropic models do not return log probabilities"));
    }
    if chat.top_logprobs.is_some_and(|n| n > 0) {
        return Err(Unmappable::new("top_logprobs", "Anthropic models do not return log probabilities"));
    }
    if let Some(format) = chat.response_format.as_ref().filter(|format| format.kind != "text") {
        let message = format!("{} output cannot be enforced on an Anthropic model", format.kind);
        return Err(Unmappable::new("response_format.type", message));
    }
    if chat.modalities.as_ref().is_some_and(|modalities| modalities.iter().any(|m| m != "text")) {
        return Err(Unmappable::new("modalities", "Anthropic models answer in text only"));
    }
    if chat.logit_bias.as_ref().is_some_and(|bias| !bias.is_empty()) {
        return Err(Unmappable::new("logit_bias", "Anthropic models take no token biases"));
    }
    refuse_extra_fields(&chat.extra, IGNORED_CHAT_FIELDS, "Anthropic Messages")
}

/// Chat messages → (system blocks, alternating Messages turns).
fn convert_chat_messages(messages: &[ChatMessage]) -> Result<(Vec<ContentBlock>, Vec<Message>), Unmappable> {
    let mut system = Vec::new();
    let mut turns = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        match message {
            ChatMessage::System { content } | ChatMessage::Developer { content } => {
                system.extend(system_blocks(i, content)?);
            }
            ChatMessage::User { content } => push_turn(&mut turns, Role::User, user_blocks(i, content)?),
            ChatMessage::Assistant { content, tool_calls, refusal, function_call, audio } => {
                if function_call.as_ref().is_some_and(|call| !call.is_null()) {
                    let field = format!("messages[{i}].function_call");
                    return Err(Unmappable::new(field, "legacy function calls: use tool_calls"));
                }
                if audio.as_ref().is_some_and(|audio| !audio.is_null()) {
                    let field = format!("messages[{i}].audio");
                    return Err(Unmappable::new(field, "Anthropic models cannot refer to audio output"));
                }
                let blocks = assistant_blocks(i, content.as_ref(), refusal.as_deref(), tool_calls)?;
                push_turn(&mut turns, Role::Assistant, blocks);
            }
            ChatMessage::Tool { tool_call_id, content } => {
                let result = ContentBlock::ToolResult {
                    tool_use_id: tool_call_id.clone(),
                    content: tool_result_content(i, content)?,
                    is_error: false,
                };
                push_turn(&mut turns, Role::User, vec![result]);
            }
            ChatMessage::Function {} => {
                return Err(Unmappable::new(
                    format!("messages[{i}].role"),
                    "legacy function messages: use tool messages",
                ));
            }
        }
    }
    Ok((system, turns))
}

/// Appends blocks as a turn, merging into the previous turn of the same role: Messages
/// requires user and assistant turns to alternate.
fn push_turn(turns: &mut Vec<Message>, role: Role, blocks: Vec<ContentBlock>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(Message { role: last_role, content: Content::Blocks(last) }) = turns.last_mut()
        && *last_role == role
    {
        last.extend(blocks);
        return;
    }
    turns.push(Message { role, content: Content::Blocks(blocks) });
}

fn part_type_error(i: usize, j: usize, message: &str) -> Unmappable {
    Unmappable::new(format!("messages[{i}].content[{j}].type"), message)
}

/// Non-empty text blocks of a message's content; `allow_refusal` admits assistant refusals.
fn text_blocks(
    i: usize,
    content: &ChatContent,
    allow_refusal: bool,
    what: &str,
) -> Result<Vec<ContentBlock>, Unmappable> {
    let parts = match content {
        ChatContent::Text(text) => return Ok(non_empty_text(text).into_iter().collect()),
        ChatContent::Parts(parts) => parts,
    };
    let mut blocks = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let text = match part {
            ContentPart::Text { text } => text,
            ContentPart::Refusal { refusal } if allow_refusal => refusal,
            _ => return Err(part_type_error(i, j, what)),
        };
        blocks.extend(non_empty_text(text));
    }
    Ok(blocks)
}

fn non_empty_text(text: &str) -> Option<ContentBlock> {
    (!text.is_empty()).then(|| text_block(text.to_owned()))
}

fn system_blocks(i: usize, content: &ChatContent) -> Result<Vec<ContentBlock>, Unmappable> {
    text_blocks(i, content, false, "system and developer messages may only hold text")
}

fn user_blocks(i: usize, content: &ChatContent) -> Result<Vec<ContentBlock>, Unmappable> {
    let parts = match content {
        ChatContent::Text(text) => return Ok(non_empty_text(text).into_iter().collect()),
        ChatContent::Parts(parts) => parts,
    };
    let mut blocks = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        match part {
            ContentPart::Text { text } => blocks.extend(non_empty_text(text)),
            ContentPart::ImageUrl { image_url } => {
                blocks.push(ContentBlock::Image { source: image_source(i, j, &image_url.url)? });
            }
            ContentPart::Refusal { .. } | ContentPart::Unsupported => {
                return Err(part_type_error(i, j, "only text and image_url parts can be sent to an Anthropic model"));
            }
        }
    }
    Ok(blocks)
}

/// A data URL becomes a base64 source, an http(s) URL a URL source.
fn image_source(i: usize, j: usize, url: &str) -> Result<ImageSource, Unmappable> {
    let field = || format!("messages[{i}].content[{j}].image_url.url");
    if let Some(rest) = url.strip_prefix("data:") {
        let Some((media_type, data)) =
            rest.split_once(',').and_then(|(meta, data)| Some((meta.strip_suffix(";base64")?, data)))
        else {
            return Err(Unmappable::new(field(), "data URLs must be base64 encoded"));
        };
        return Ok(ImageSource::Base64 { media_type: media_type.to_owned(), data: data.to_owned() });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageSource::Url { url: url.to_owned() });
    }
    Err(Unmappable::new(field(), "images must be data: or http(s) URLs"))
}

/// An assistant message: its text (and any refusal) first, then its tool calls.
fn assistant_blocks(
    i: usize,
    content: Option<&ChatContent>,
    refusal: Option<&str>,
    tool_calls: &[ChatToolCall],
) -> Result<Vec<ContentBlock>, Unmappable> {
    let mut blocks = match content {
        Some(content) => text_blocks(i, content, true, "assistant messages may only hold text and refusals")?,
        None => Vec::new(),
    };
    blocks.extend(refusal.and_then(non_empty_text));
    for (j, call) in tool_calls.iter().enumerate() {
        blocks.push(tool_use_block(i, j, call)?);
    }
    Ok(blocks)
}

fn tool_use_block(i: usize, j: usize, call: &ChatToolCall) -> Result<ContentBlock, Unmappable> {
    if call.kind != "function" {
        return Err(Unmappable::new(
            format!("messages[{i}].tool_calls[{j}].type"),
            "only function tool calls are supported",
        ));
    }
    let input = parse_arguments(&call.function.arguments).ok_or_else(|| {
        Unmappable::new(format!("messages[{i}].tool_calls[{j}].function.arguments"), "arguments must be a JSON object")
    })?;
    Ok(ContentBlock::ToolUse { id: call.id.clone(), name: call.function.name.clone(), input })
}

/// A tool message's content; empty content is sent as no content.
fn tool_result_content(i: usize, content: &ChatContent) -> Result<Option<ToolResultContent>, Unmappable> {
    match content {
        ChatContent::Text(text) if text.is_empty() => Ok(None),
        ChatContent::Text(text) => Ok(Some(ToolResultContent::Text(text.clone()))),
        ChatContent::Parts(_) => {
            let blocks = text_blocks(i, content, false, "tool messages may only hold text")?;
            Ok((!blocks.is_empty()).then_some(ToolResultContent::Blocks(blocks)))
        }
    }
}

fn tool_to_anthropic(i: usize, tool: &ChatTool) -> Result<Tool, Unmappable> {
    if tool.kind != "function" {
        return Err(Unmappable::new(
            format!("tools[{i}].type"),
            format!("{} tools have no Anthropic equivalent", tool.kind),
        ));
    }
    let Some(function) = &tool.function else {
        return Err(Unmappable::new(format!("tools[{i}].function"), "a function tool needs its function"));
    };
    Ok(Tool {
        kind: None,
        name: function.name.clone(),
        description: function.description.clone(),
        input_schema: Some(function.parameters.clone().unwrap_or_else(empty_object_schema)),
    })
}

fn tool_choice_to_anthropic(
    choice: Option<&ChatToolChoice>,
    parallel_tool_calls: Option<bool>,
) -> Result<Option<ToolChoice>, Unmappable> {
    let disable_parallel_tool_use = (parallel_tool_calls == Some(false)).then_some(true);
    let choice = match choice {
        None => disable_parallel_tool_use.map(|_| ToolChoice::Auto { disable_parallel_tool_use }),
        Some(ChatToolChoice::Mode(mode)) => Some(match mode.as_str() {
            "auto" => ToolChoice::Auto { disable_parallel_tool_use },
            "required" => ToolChoice::Any { disable_parallel_tool_use },
            "none" => ToolChoice::None,
            other => return Err(Unmappable::new("tool_choice", format!("unknown tool_choice {other:?}"))),
        }),
        Some(ChatToolChoice::Named(named)) => match (&*named.kind, &named.function) {
            ("function", Some(function)) => {
                Some(ToolChoice::Tool { name: function.name.clone(), disable_parallel_tool_use })
            }
            ("function", None) => return Err(Unmappable::new("tool_choice.function", "names no function")),
            (other, _) => {
                return Err(Unmappable::new(
                    "tool_choice.type",
                    format!("{other} tool choices have no Anthropic equivalent"),
                ));
            }
        },
    };
    Ok(choice)
}

// ---------------------------------------------------------------------------------------
// Requests: Messages → Chat
// ---------------------------------------------------------------------------------------

/// Anthropic Messages request JSON → Chat request JSON (for OpenAI upstreams). When stream is
/// true, sets `stream_options.include_usage` so the final usage arrives.
pub fn request_from_messages(body: &[u8]) -> Result<Vec<u8>, Unmappable> {
    let incoming: MessagesRequestIn =
        serde_json::from_slice(body).map_err(|e| Unmappable::new("body", format!("not a Messages request: {e}")))?;
    refuse_extra_fields(&incoming.extra, IGNORED_MESSAGES_FIELDS, "Chat Completions")?;
    Ok(to_json(&chat_request(incoming.request)?))
}

fn chat_request(request: MessagesRequest) -> Result<ChatRequest, Unmappable> {
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        messages.extend(system_message(system)?);
    }
    for (i, message) in request.messages.iter().enumerate() {
        match message.role {
            Role::User => user_messages(i, &message.content, &mut messages)?,
            Role::Assistant => messages.extend(assistant_message(i, &message.content)?),
        }
    }
    let tools =
        request.tools.iter().enumerate().map(|(i, tool)| tool_to_chat(i, tool)).collect::<Result<Vec<_>, _>>()?;
    let has_tools = !tools.is_empty();
    let (tool_choice, parallel_tool_calls) = match &request.tool_choice {
        Some(choice) if has_tools => tool_choice_to_chat(choice),
        _ => (None, None),
    };
    Ok(ChatRequest {
        model: request.model,
        messages,
        max_completion_tokens: Some(request.max_tokens),
        temperature: request.temperature,
        top_p: request.top_p,
        stop: (!request.stop_sequences.is_empty()).then_some(Stop::Many(request.stop_sequences)),
        stream: request.stream,
        stream_options: request.stream.then_some(StreamOptions { include_usage: true }),
        tools,
        tool_choice,
        parallel_tool_calls,
        user: request.metadata.and_then(|metadata| metadata.user_id),
        ..ChatRequest::default()
    })
}

/// Parts as Chat content: none → absent, one text → a plain string, otherwise parts.
fn chat_content(parts: Vec<ContentPart>) -> Option<ChatContent> {
    if parts.len() > 1 {
        return Some(ChatContent::Parts(parts));
    }
    match parts.into_iter().next()? {
        ContentPart::Text { text } => Some(ChatContent::Text(text)),
        part => Some(ChatContent::Parts(vec![part])),
    }
}

fn system_message(system: &System) -> Result<Option<ChatMessage>, Unmappable> {
    let parts = match system {
        System::Text(text) => {
            return Ok((!text.is_empty()).then(|| ChatMessage::System { content: ChatContent::Text(text.clone()) }));
        }
        System::Blocks(blocks) => blocks,
    };
    let mut texts = Vec::new();
    for (j, block) in parts.iter().enumerate() {
        let ContentBlock::Text { text, .. } = block else {
            return Err(Unmappable::new(format!("system[{j}].type"), "system blocks may only hold text"));
        };
        texts.push(ContentPart::Text { text: text.clone() });
    }
    Ok(chat_content(texts).map(|content| ChatMessage::System { content }))
}

/// One user turn → its tool results as `tool` messages, then the rest as one user message.
fn user_messages(i: usize, content: &Content, out: &mut Vec<ChatMessage>) -> Result<(), Unmappable> {
    let blocks = match content {
        Content::Text(text) => {
            out.push(ChatMessage::User { content: ChatContent::Text(text.clone()) });
            return Ok(());
        }
        Content::Blocks(blocks) => blocks,
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        match block {
            ContentBlock::Text { text, .. } => parts.push(ContentPart::Text { text: text.clone() }),
            ContentBlock::Image { source } => parts.push(ContentPart::ImageUrl { image_url: image_url(source) }),
            ContentBlock::ToolResult { tool_use_id, content, .. } => out.push(ChatMessage::Tool {
                tool_call_id: tool_use_id.clone(),
                content: tool_message_content(i, j, content.as_ref())?,
            }),
            _ => {
                return Err(part_type_error(
                    i,
                    j,
                    "user turns sent to a Chat model may hold text, images and tool results",
                ));
            }
        }
    }
    out.extend(chat_content(parts).map(|content| ChatMessage::User { content }));
    Ok(())
}

fn image_url(source: &ImageSource) -> ImageUrl {
    let url = match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url } => url.clone(),
    };
    ImageUrl { url, detail: None }
}

fn tool_message_content(i: usize, j: usize, content: Option<&ToolResultContent>) -> Result<ChatContent, Unmappable> {
    let blocks = match content {
        None => return Ok(ChatContent::Text(String::new())),
        Some(ToolResultContent::Text(text)) => return Ok(ChatContent::Text(text.clone())),
        Some(ToolResultContent::Blocks(blocks)) => blocks,
    };
    let mut parts = Vec::new();
    for (k, block) in blocks.iter().enumerate() {
        let ContentBlock::Text { text, .. } = block else {
            let field = format!("messages[{i}].content[{j}].content[{k}].type");
            return Err(Unmappable::new(field, "Chat tool messages may only hold text"));
        };
        parts.push(ContentPart::Text { text: text.clone() });
    }
    Ok(ChatContent::Parts(parts))
}

/// One assistant turn; a turn left with nothing Chat can carry (only thinking) is dropped.
fn assistant_message(i: usize, content: &Content) -> Result<Option<ChatMessage>, Unmappable> {
    let blocks = match content {
        Content::Text(text) => vec![text_block(text.clone())],
        Content::Blocks(blocks) => blocks.clone(),
    };
    let mut parts = Vec::new();
    let mut tool_calls = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        match block {
            ContentBlock::Text { text, .. } => parts.push(ContentPart::Text { text }),
            ContentBlock::ToolUse { id, name, input } => tool_calls.push(ChatToolCall {
                id,
                kind: function_kind(),
                function: FunctionCall { name, arguments: input.to_string() },
            }),
            ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } => {}
            _ => {
                return Err(part_type_error(i, j, "assistant turns sent to a Chat model may hold text and tool calls"));
            }
        }
    }
    let content = chat_content(parts);
    if content.is_none() && tool_calls.is_empty() {
        return Ok(None);
    }
    Ok(Some(ChatMessage::Assistant { content, tool_calls, refusal: None, function_call: None, audio: None }))
}

fn tool_to_chat(i: usize, tool: &Tool) -> Result<ChatTool, Unmappable> {
    if let Some(kind) = tool.kind.as_deref().filter(|kind| *kind != "custom") {
        return Err(Unmappable::new(format!("tools[{i}].type"), format!("server tool {kind} has no Chat equivalent")));
    }
    Ok(ChatTool {
        kind: function_kind(),
        function: Some(FunctionDef {
            name: tool.name.clone(),
            description: tool.description.clone(),
            parameters: Some(tool.input_schema.clone().unwrap_or_else(empty_object_schema)),
            strict: None,
        }),
    })
}

/// Anthropic tool choice → (`tool_choice`, `parallel_tool_calls`).
fn tool_choice_to_chat(choice: &ToolChoice) -> (Option<ChatToolChoice>, Option<bool>) {
    let mode = |mode: &str| Some(ChatToolChoice::Mode(mode.to_owned()));
    let (choice, disable) = match choice {
        ToolChoice::Auto { disable_parallel_tool_use } => (mode("auto"), *disable_parallel_tool_use),
        ToolChoice::Any { disable_parallel_tool_use } => (mode("required"), *disable_parallel_tool_use),
        ToolChoice::None => (mode("none"), None),
        ToolChoice::Tool { name, disable_parallel_tool_use } => {
            let named = NamedToolChoice { kind: function_kind(), function: Some(FunctionName { name: name.clone() }) };
            (Some(ChatToolChoice::Named(named)), *disable_parallel_tool_use)
        }
    };
    (choice, (disable == Some(true)).then_some(false))
}

// ---------------------------------------------------------------------------------------
// Whole responses
// ---------------------------------------------------------------------------------------

/// Anthropic Messages response JSON → `chat.completion` JSON with `model` set to `model`.
pub fn messages_response_to_chat(body: &[u8], model: &str) -> Result<Vec<u8>, String> {
    let response: MessagesResponse =
        serde_json::from_slice(body).map_err(|e| format!("unreadable Messages response: {e}"))?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in response.content {
        match block {
            ContentBlock::Text { text: part, .. } => text.push_str(&part),
            ContentBlock::Thinking { thinking, .. } => reasoning.push_str(&thinking),
            ContentBlock::ToolUse { id, name, input } => tool_calls.push(ChatToolCall {
                id,
                kind: function_kind(),
                function: FunctionCall { name, arguments: input.to_string() },
            }),
            _ => {}
        }
    }
    // OpenAI sends `content: null` when the answer is only tool calls.
    let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text);
    let completion = ChatCompletion {
        id: chat_id(&response.id),
        object: "chat.completion".to_owned(),
        created: unix_now(),
        model: model.to_owned(),
        choices: vec![ChatChoice {
            index: 0,
            message: ChatResponseMessage {
                role: assistant_role(),
                content,
                tool_calls,
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                refusal: None,
            },
            finish_reason: Some(finish_reason_from_stop(response.stop_reason.as_deref()).to_owned()),
            logprobs: None,
        }],
        usage: Some(usage_to_chat(&response.usage)),
    };
    Ok(to_json(&completion))
}

/// `chat.completion` JSON → Anthropic Messages response JSON with `model` set to `model`.
pub fn chat_response_to_messages(body: &[u8], model: &str) -> Result<Vec<u8>, String> {
    let completion: ChatCompletion =
        serde_json::from_slice(body).map_err(|e| format!("unreadable chat completion: {e}"))?;
    let choice = completion.choices.into_iter().next().ok_or("chat completion has no choices")?;
    let message = choice.message;
    let refused = message.refusal.as_deref().is_some_and(|refusal| !refusal.is_empty());
    let mut content: Vec<ContentBlock> = [message.content, message.refusal]
        .into_iter()
        .flatten()
        .filter(|text| !text.is_empty())
        .map(text_block)
        .collect();
    for call in message.tool_calls {
        let input = parse_arguments(&call.function.arguments)
            .ok_or_else(|| format!("tool call {} has arguments that are not a JSON object", call.id))?;
        content.push(ContentBlock::ToolUse { id: call.id, name: call.function.name, input });
    }
    let stop_reason = if refused { "refusal" } else { stop_reason_from_finish(choice.finish_reason.as_deref()) };
    let response = MessagesResponse {
        id: message_id(&completion.id),
        kind: "message".to_owned(),
        role: Role::Assistant,
        model: model.to_owned(),
        content,
        stop_reason: Some(stop_reason.to_owned()),
        stop_sequence: None,
        usage: completion.usage.as_ref().map(usage_from_chat).unwrap_or_default(),
    };
    Ok(to_json(&response))
}

// ---------------------------------------------------------------------------------------
// Streams: Messages events → Chat chunks
// ---------------------------------------------------------------------------------------

/// Anthropic Messages stream → `chat.completion.chunk` stream.
pub struct ChatFromMessages {
    /// `chatcmpl-…`, taken from `message_start` unless a chunk went out before it.
    id: String,
    created: i64,
    model: String,
    /// The client asked for the final usage chunk (`choices: []`).
    include_usage: bool,
    /// The first chunk (`role: assistant`) has been written.
    started: bool,
    /// The Anthropic block index of each tool call, in Chat tool call order (0, 1, …).
    tool_blocks: Vec<usize>,
    /// Usage so far: input from `message_start`, output (cumulative) from `message_delta`.
    usage: Usage,
    /// Set by `message_delta`; lets `finish(clean)` end a stream that lost `message_stop`.
    finish_reason: Option<&'static str>,
    /// `[DONE]` or an error has been written; later events are ignored.
    done: bool,
}

impl ChatFromMessages {
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self {
            id: format!("chatcmpl-{}", fresh_suffix()),
            created: unix_now(),
            model: model.to_owned(),
            include_usage,
            started: false,
            tool_blocks: Vec::new(),
            usage: Usage::default(),
            finish_reason: None,
            done: false,
        }
    }

    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<ChatUsage>) -> ChatChunk {
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".to_owned(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
            error: None,
        }
    }

    /// Writes one chunk for choice 0, after the role chunk if that has not gone out yet.
    fn write_delta(&mut self, delta: ChunkDelta, finish_reason: Option<&str>, out: &mut Vec<u8>) {
        self.start(out);
        let choice = ChunkChoice { index: 0, delta, finish_reason: finish_reason.map(str::to_owned) };
        write_event(out, None, &self.chunk(vec![choice], None));
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let delta = ChunkDelta { role: Some(assistant_role()), content: Some(String::new()), ..ChunkDelta::default() };
        let choice = ChunkChoice { index: 0, delta, finish_reason: None };
        write_event(out, None, &self.chunk(vec![choice], None));
    }

    /// Later usage figures replace earlier ones; zero or absent figures are "not reported".
    fn merge_usage(&mut self, usage: &Usage) {
        if usage.input_tokens > 0 {
            self.usage.input_tokens = usage.input_tokens;
        }
        if usage.output_tokens > 0 {
            self.usage.output_tokens = usage.output_tokens;
        }
        if usage.cache_read_input_tokens.is_some() {
            self.usage.cache_read_input_tokens = usage.cache_read_input_tokens;
        }
        if usage.cache_creation_input_tokens.is_some() {
            self.usage.cache_creation_input_tokens = usage.cache_creation_input_tokens;
        }
    }

    fn text(&mut self, text: String, out: &mut Vec<u8>) {
        if !text.is_empty() {
            self.write_delta(ChunkDelta { content: Some(text), ..ChunkDelta::default() }, None, out);
        }
    }

    fn reasoning(&mut self, thinking: String, out: &mut Vec<u8>) {
        if !thinking.is_empty() {
            self.write_delta(ChunkDelta { reasoning_content: Some(thinking), ..ChunkDelta::default() }, None, out);
        }
    }

    fn tool_call(&mut self, call: ToolCallDelta, out: &mut Vec<u8>) {
        self.write_delta(ChunkDelta { tool_calls: vec![call], ..ChunkDelta::default() }, None, out);
    }

    fn block_start(&mut self, index: usize, block: ContentBlock, out: &mut Vec<u8>) {
        match block {
            ContentBlock::Text { text, .. } => self.text(text, out),
            ContentBlock::Thinking { thinking, .. } => self.reasoning(thinking, out),
            ContentBlock::ToolUse { id, name, input } => {
                let tool_index = self.tool_blocks.len();
                self.tool_blocks.push(index);
                // The input streams as deltas; a complete input in the start event is sent whole.
                let arguments = match input {
                    Value::Object(map) if map.is_empty() => String::new(),
                    input => input.to_string(),
                };
                let call = ToolCallDelta {
                    index: tool_index,
                    id: Some(id),
                    kind: Some(function_kind()),
                    function: Some(FunctionDelta { name: Some(name), arguments: Some(arguments) }),
                };
                self.tool_call(call, out);
            }
            _ => {}
        }
    }

    fn block_delta(&mut self, index: usize, delta: Delta, out: &mut Vec<u8>) {
        match delta {
            Delta::TextDelta { text } => self.text(text, out),
            Delta::ThinkingDelta { thinking } => self.reasoning(thinking, out),
            Delta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                let Some(tool_index) = self.tool_blocks.iter().position(|block| *block == index) else {
                    return;
                };
                let function = FunctionDelta { name: None, arguments: Some(partial_json) };
                self.tool_call(
                    ToolCallDelta { index: tool_index, function: Some(function), ..ToolCallDelta::default() },
                    out,
                );
            }
            _ => {}
        }
    }

    /// The usage chunk if asked for, then `[DONE]`.
    fn complete(&mut self, out: &mut Vec<u8>) {
        if self.include_usage {
            write_event(out, None, &self.chunk(Vec::new(), Some(usage_to_chat(&self.usage))));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.done = true;
    }

    fn fail(&mut self, error: ErrorBody, out: &mut Vec<u8>) {
        let error = ChatError { message: error.message, kind: Some(error.kind), param: None, code: None };
        write_event(out, None, &ChatErrorEnvelope { error });
        self.done = true;
    }
}

impl StreamConverter for ChatFromMessages {
    fn event(&mut self, _name: Option<&str>, data: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        // Event types this module does not know carry no content so far; they are skipped.
        let Ok(event) = serde_json::from_slice::<StreamEvent>(data) else {
            return;
        };
        match event {
            StreamEvent::MessageStart { message } => {
                if !self.started {
                    self.id = chat_id(&message.id);
                }
                self.merge_usage(&message.usage);
                self.start(out);
            }
            StreamEvent::ContentBlockStart { index, content_block } => self.block_start(index, content_block, out),
            StreamEvent::ContentBlockDelta { index, delta } => self.block_delta(index, delta, out),
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping => {}
            StreamEvent::MessageDelta { delta, usage } => {
                self.merge_usage(&usage);
                let finish_reason = finish_reason_from_stop(delta.stop_reason.as_deref());
                self.finish_reason = Some(finish_reason);
                self.write_delta(ChunkDelta::default(), Some(finish_reason), out);
            }
            StreamEvent::MessageStop => self.complete(out),
            StreamEvent::Error { error } => self.fail(error, out),
        }
    }

    fn finish(&mut self, clean: bool, out: &mut Vec<u8>) {
        if clean && !self.done && self.finish_reason.is_some() {
            self.complete(out);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Streams: Chat chunks → Messages events
// ---------------------------------------------------------------------------------------

/// The open Anthropic block, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Text(usize),
    Tool(usize),
}

/// One Chat tool call being streamed as a `tool_use` block.
struct StreamedTool {
    /// The call's `index` in Chat deltas.
    chat_index: usize,
    id: Option<String>,
    name: Option<String>,
    /// Its Anthropic block index, once the block has started (which needs the name).
    block: Option<usize>,
    /// Arguments that arrived before the block could start.
    pending: String,
}

/// `chat.completion.chunk` stream → Anthropic Messages event stream.
pub struct MessagesFromChat {
    model: String,
    /// `msg_…`, from the first chunk's id.
    id: String,
    /// `message_start` has been written.
    started: bool,
    /// The next Anthropic content block index.
    next_block: usize,
    /// The block currently open, if any.
    open: Option<OpenBlock>,
    tools: Vec<StreamedTool>,
    finish_reason: Option<String>,
    /// The usage chunk (`choices: []`) that follows the finish reason.
    usage: Option<ChatUsage>,
    /// `message_stop` or an error has been written; later chunks are ignored.
    done: bool,
}

impl MessagesFromChat {
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            id: String::new(),
            started: false,
            next_block: 0,
            open: None,
            tools: Vec::new(),
            finish_reason: None,
            usage: None,
            done: false,
        }
    }

    fn start(&mut self, chat_id: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = if chat_id.is_empty() { format!("msg_{}", fresh_suffix()) } else { message_id(chat_id) };
        let message = MessagesResponse {
            id: self.id.clone(),
            kind: "message".to_owned(),
            role: Role::Assistant,
            model: self.model.clone(),
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: Usage::default(),
        };
        StreamEvent::MessageStart { message }.write(out);
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if let Some(OpenBlock::Text(index) | OpenBlock::Tool(index)) = self.open.take() {
            StreamEvent::ContentBlockStop { index }.write(out);
        }
    }

    /// Closes the open block and starts a new one, returning its index.
    fn open_block(&mut self, block: ContentBlock, out: &mut Vec<u8>) -> usize {
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some(match block {
            ContentBlock::Text { .. } => OpenBlock::Text(index),
            _ => OpenBlock::Tool(index),
        });
        StreamEvent::ContentBlockStart { index, content_block: block }.write(out);
        index
    }

    fn text(&mut self, text: String, out: &mut Vec<u8>) {
        let index = match self.open {
            Some(OpenBlock::Text(index)) => index,
            _ => self.open_block(text_block(String::new()), out),
        };
        StreamEvent::ContentBlockDelta { index, delta: Delta::TextDelta { text } }.write(out);
    }

    /// The state of the tool call a fragment belongs to, created on first sight. A new id at
    /// a known index is a new call: some OpenAI-compatible servers number every call 0.
    fn tool_position(&mut self, chat_index: usize, id: Option<&str>) -> usize {
        let known = self.tools.iter().rposition(|tool| tool.chat_index == chat_index);
        let same_call = |tool: &StreamedTool| match (tool.id.as_deref(), id) {
            (Some(known), Some(id)) => known == id || id.is_empty(),
            _ => true,
        };
        if let Some(position) = known.filter(|&position| same_call(&self.tools[position])) {
            return position;
        }
        self.tools.push(StreamedTool { chat_index, id: None, name: None, block: None, pending: String::new() });
        self.tools.len() - 1
    }

    /// Records a tool call fragment; the block starts once the name is known, and arguments
    /// that came earlier are sent then.
    fn tool_call(&mut self, call: ToolCallDelta, out: &mut Vec<u8>) {
        let position = self.tool_position(call.index, call.id.as_deref());
        let tool = &mut self.tools[position];
        if tool.id.is_none() {
            tool.id = call.id.filter(|id| !id.is_empty());
        }
        if let Some(function) = call.function {
            if tool.name.is_none() {
                tool.name = function.name.filter(|name| !name.is_empty());
            }
            tool.pending.push_str(function.arguments.as_deref().unwrap_or_default());
        }
        if tool.block.is_none() {
            let Some(name) = tool.name.clone() else { return };
            let id = tool.id.clone().unwrap_or_else(|| format!("call_{}_{}", self.id, tool.chat_index));
            let block = ContentBlock::ToolUse { id, name, input: Value::Object(Map::new()) };
            let index = self.open_block(block, out);
            self.tools[position].block = Some(index);
        }
        let tool = &mut self.tools[position];
        // A call whose block already closed still gets its fragment at its own index:
        // clients assemble blocks by index, and dropping arguments would corrupt the call.
        if let Some(index) = tool.block
            && !tool.pending.is_empty()
        {
            let partial_json = std::mem::take(&mut tool.pending);
            StreamEvent::ContentBlockDelta { index, delta: Delta::InputJsonDelta { partial_json } }.write(out);
        }
    }

    fn chunk(&mut self, chunk: ChatChunk, out: &mut Vec<u8>) {
        self.start(&chunk.id, out);
        // Only choice 0 exists: requests translated here never ask for more.
        if let Some(choice) = chunk.choices.into_iter().find(|choice| choice.index == 0) {
            for text in [choice.delta.content, choice.delta.refusal].into_iter().flatten() {
                if !text.is_empty() {
                    self.text(text, out);
                }
            }
            for call in choice.delta.tool_calls {
                self.tool_call(call, out);
            }
            if let Some(finish_reason) = choice.finish_reason {
                self.finish_reason = Some(finish_reason);
                self.close_block(out);
            }
        }
        // The last usage seen wins: some servers repeat a running total on every chunk.
        if chunk.usage.is_some() {
            self.usage = chunk.usage;
        }
    }

    fn message_delta(&mut self, out: &mut Vec<u8>) {
        let stop_reason = stop_reason_from_finish(self.finish_reason.as_deref());
        let delta = MessageDeltaBody { stop_reason: Some(stop_reason.to_owned()), stop_sequence: None };
        let usage = self.usage.as_ref().map(usage_from_chat).unwrap_or_default();
        StreamEvent::MessageDelta { delta, usage }.write(out);
    }

    /// Closes what is open, then `message_delta` with the final usage and `message_stop`.
    fn complete(&mut self, out: &mut Vec<u8>) {
        self.start("", out);
        self.close_block(out);
        self.message_delta(out);
        StreamEvent::MessageStop.write(out);
        self.done = true;
    }

    fn fail(&mut self, error: ChatError, out: &mut Vec<u8>) {
        let kind = error.kind.filter(|kind| !kind.is_empty()).unwrap_or_else(|| "api_error".to_owned());
        StreamEvent::Error { error: ErrorBody { kind, message: error.message } }.write(out);
        self.done = true;
    }
}

impl StreamConverter for MessagesFromChat {
    fn event(&mut self, _name: Option<&str>, data: &[u8], out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if data.trim_ascii() == b"[DONE]" {
            self.complete(out);
            return;
        }
        // A payload that is not a chunk carries nothing a client could use; it is skipped.
        let Ok(chunk) = serde_json::from_slice::<ChatChunk>(data) else {
            return;
        };
        match chunk.error {
            Some(error) => self.fail(error, out),
            None => self.chunk(chunk, out),
        }
    }

    fn finish(&mut self, clean: bool, out: &mut Vec<u8>) {
        if clean && !self.done && self.finish_reason.is_some() {
            self.complete(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn bytes(value: &impl Serialize) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    fn parse(body: &[u8]) -> Value {
        serde_json::from_slice(body).unwrap()
    }

    fn chat_to_messages(request: &Value) -> Value {
        parse(&request_to_messages(&bytes(request)).unwrap())
    }

    fn chat_to_messages_error(request: &Value) -> Unmappable {
        request_to_messages(&bytes(request)).unwrap_err()
    }

    fn messages_to_chat(request: &Value) -> Value {
        parse(&request_from_messages(&bytes(request)).unwrap())
    }

    fn messages_to_chat_error(request: &Value) -> Unmappable {
        request_from_messages(&bytes(request)).unwrap_err()
    }

    /// A minimal Chat request with `extra` merged in.
    fn chat_request(messages: Value, extra: Value) -> Value {
        let mut request = json!({"model": "claude-sonnet-4-5", "messages": messages});
        request.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        request
    }

    fn messages_request(messages: Value, extra: Value) -> Value {
        let mut request = json!({"model": "gpt-4.1", "max_tokens": 512, "messages": messages});
        request.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        request
    }

    /// Splits an SSE stream into (event name, data) pairs.
    fn sse(out: &[u8]) -> Vec<(Option<String>, String)> {
        let text = std::str::from_utf8(out).unwrap();
        text.split("\n\n")
            .filter(|event| !event.is_empty())
            .map(|event| {
                let mut name = None;
                let mut data = String::new();
                for line in event.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data = value.to_owned();
                    } else {
                        panic!("unexpected SSE line {line:?}");
                    }
                }
                (name, data)
            })
            .collect()
    }

    fn feed_anthropic(converter: &mut ChatFromMessages, events: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        for event in events {
            converter.event(event["type"].as_str(), &bytes(event), &mut out);
        }
        out
    }

    fn feed_chat(converter: &mut MessagesFromChat, chunks: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks {
            converter.event(None, chunk.as_bytes(), &mut out);
        }
        out
    }

    /// The chat chunks of a stream (without `[DONE]`), asserting nothing has an event name.
    fn chat_chunks(out: &[u8]) -> (Vec<Value>, bool) {
        let events = sse(out);
        assert!(events.iter().all(|(name, _)| name.is_none()), "chat chunks carry no event names");
        let done = events.last().is_some_and(|(_, data)| data == "[DONE]");
        let chunks =
            events.iter().filter(|(_, data)| data != "[DONE]").map(|(_, data)| parse(data.as_bytes())).collect();
        (chunks, done)
    }

    /// Anthropic events of a stream, asserting each event name repeats the payload's type.
    fn anthropic_events(out: &[u8]) -> Vec<Value> {
        sse(out)
            .into_iter()
            .map(|(name, data)| {
                let value = parse(data.as_bytes());
                assert_eq!(name.as_deref(), value["type"].as_str(), "event name and type agree");
                value
            })
            .collect()
    }

    /// What an Anthropic client would assemble from a stream.
    #[derive(Debug, Default)]
    struct Assembled {
        id: String,
        model: String,
        blocks: Vec<ContentBlock>,
        stop_reason: Option<String>,
        usage: Usage,
        stopped: bool,
    }

    /// Assembles an Anthropic stream, asserting its shape: `message_start` first, blocks
    /// opened in index order one at a time and closed, `message_stop` last.
    fn assemble(out: &[u8]) -> Assembled {
        let mut assembled = Assembled::default();
        let mut arguments: Vec<String> = Vec::new();
        let mut open: Option<usize> = None;
        let events = anthropic_events(out);
        for (position, value) in events.iter().enumerate() {
            let event: StreamEvent = serde_json::from_value(value.clone()).unwrap();
            assert!(!assembled.stopped, "nothing after message_stop");
            match event {
                StreamEvent::MessageStart { message } => {
                    assert_eq!(position, 0, "message_start comes first");
                    assembled.id = message.id;
                    assembled.model = message.model;
                }
                StreamEvent::ContentBlockStart { index, content_block } => {
                    assert_eq!(open, None, "one block open at a time");
                    assert_eq!(index, assembled.blocks.len(), "blocks open in index order");
                    open = Some(index);
                    assembled.blocks.push(content_block);
                    arguments.push(String::new());
                }
                StreamEvent::ContentBlockDelta { index, delta } => {
                    assert_eq!(open, Some(index), "deltas go to the open block");
                    match (&mut assembled.blocks[index], delta) {
                        (ContentBlock::Text { text, .. }, Delta::TextDelta { text: more }) => text.push_str(&more),
                        (ContentBlock::ToolUse { .. }, Delta::InputJsonDelta { partial_json }) => {
                            arguments[index].push_str(&partial_json);
                        }
                        (block, delta) => panic!("{delta:?} does not fit {block:?}"),
                    }
                }
                StreamEvent::ContentBlockStop { index } => {
                    assert_eq!(open, Some(index), "the open block closes");
                    open = None;
                }
                StreamEvent::MessageDelta { delta, usage } => {
                    assert_eq!(open, None, "blocks close before message_delta");
                    assembled.stop_reason = delta.stop_reason;
                    assembled.usage = usage;
                }
                StreamEvent::MessageStop => assembled.stopped = true,
                other => panic!("unexpected event {other:?}"),
            }
        }
        for (block, arguments) in assembled.blocks.iter_mut().zip(arguments) {
            if let ContentBlock::ToolUse { input, .. } = block {
                *input = parse_arguments(&arguments).unwrap();
            }
        }
        assembled
    }

    // ---- Requests: Chat → Messages ------------------------------------------------------

    #[test]
    fn chat_request_with_system_images_tool_round_and_options_maps_to_messages() {
        let request = json!({
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this picture, and the weather in Paris?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": "Let me check.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18°C, cloudy"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
                {"role": "user", "content": "Thanks. Summarise.", "name": "alice"}
            ],
            "tools": [
                {"type": "function", "function": {
                    "name": "get_weather", "description": "Current weather", "strict": true,
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
                }},
                {"type": "function", "function": {"name": "get_time"}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": false,
            "max_completion_tokens": 1024,
            "max_tokens": 99,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "user-42",
            "n": 1,
            "logprobs": false,
            "response_format": {"type": "text"},
            "functions": null
        });
        let expected = json!({
            "model": "claude-sonnet-4-5",
            "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Use metric units."}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in this picture, and the weather in Paris?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18°C, cloudy"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "14:05"}]},
                    {"type": "text", "text": "Thanks. Summarise."}
                ]}
            ],
            "tools": [
                {"name": "get_weather", "description": "Current weather",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
                {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
            ],
            "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
            "max_tokens": 1024,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop_sequences": ["END"],
            "stream": true,
            "metadata": {"user_id": "user-42"}
        });
        assert_eq!(chat_to_messages(&request), expected);
    }

    #[test]
    fn consecutive_same_role_messages_merge_and_empty_texts_drop() {
        let request = chat_request(
            json!([
                {"role": "user", "content": "first"},
                {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": ""}]},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_a", "content": ""},
                {"role": "tool", "tool_call_id": "call_b", "content": "b"},
                {"role": "user", "content": "go on"},
                {"role": "system", "content": "late system note"},
                {"role": "user", "content": "still the same turn"}
            ]),
            json!({}),
        );
        let out = chat_to_messages(&request);
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "call_a", "name": "f", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_a"},
                    {"type": "tool_result", "tool_use_id": "call_b", "content": "b"},
                    {"type": "text", "text": "go on"},
                    {"type": "text", "text": "still the same turn"}
                ]}
            ])
        );
        assert_eq!(out["system"], json!([{"type": "text", "text": "late system note"}]));
    }

    #[test]
    fn max_tokens_prefers_max_completion_tokens_then_max_tokens_then_the_default() {
        let user = json!([{"role": "user", "content": "hi"}]);
        let both = chat_request(user.clone(), json!({"max_completion_tokens": 300, "max_tokens": 200}));
        assert_eq!(chat_to_messages(&both)["max_tokens"], 300);
        let legacy = chat_request(user.clone(), json!({"max_tokens": 200}));
        assert_eq!(chat_to_messages(&legacy)["max_tokens"], 200);
        let neither = chat_to_messages(&chat_request(user, json!({})));
        assert_eq!(neither["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(neither.get("stream"), None, "stream false is left out");
    }

    #[test]
    fn tool_choice_maps_each_mode_and_parallel_calls() {
        let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
        let cases = [
            (json!({"tool_choice": "auto"}), json!({"type": "auto"})),
            (json!({"tool_choice": "none"}), json!({"type": "none"})),
            (json!({"tool_choice": "required"}), json!({"type": "any"})),
            (
                json!({"tool_choice": "required", "parallel_tool_calls": false}),
                json!({"type": "any", "disable_parallel_tool_use": true}),
            ),
            (json!({"parallel_tool_calls": false}), json!({"type": "auto", "disable_parallel_tool_use": true})),
            (
                json!({"tool_choice": {"type": "function", "function": {"name": "f"}}}),
                json!({"type": "tool", "name": "f"}),
            ),
            (json!({"parallel_tool_calls": true}), Value::Null),
            (json!({}), Value::Null),
        ];
        for (options, expected) in cases {
            let mut extra = options.clone();
            extra["tools"] = tools.clone();
            let out = chat_to_messages(&chat_request(json!([{"role": "user", "content": "hi"}]), extra));
            assert_eq!(out.get("tool_choice").cloned().unwrap_or(Value::Null), expected, "{options}");
        }
        let no_tools = chat_request(json!([{"role": "user", "content": "hi"}]), json!({"tool_choice": "required"}));
        assert_eq!(chat_to_messages(&no_tools).get("tool_choice"), None, "a choice among no tools is dropped");
    }

    #[test]
    fn hints_and_null_fields_are_ignored() {
        let request = chat_request(
            json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "tool_calls": null}]),
            json!({
                "stream_options": {"include_usage": true}, "store": true, "metadata": {"tag": "x"},
                "service_tier": "auto", "seed": 7, "prompt_cache_key": "k", "safety_identifier": "s",
                "reasoning_effort": "high", "verbosity": "low", "frequency_penalty": 0.5,
                "presence_penalty": 0.1, "prediction": {"type": "content", "content": "x"},
                "tools": null, "stop": null, "stream": null, "audio": null, "web_search_options": null
            }),
        );
        let out = chat_to_messages(&request);
        assert_eq!(out["messages"][1], json!({"role": "assistant", "content": [{"type": "text", "text": "yo"}]}));
        assert_eq!(out.get("tools"), None);
        assert_eq!(out.get("stop_sequences"), None);
    }

    #[test]
    fn chat_requests_anthropic_cannot_honour_are_refused_naming_the_field() {
        let user = |content: Value| json!([{"role": "user", "content": content}]);
        let hi = user(json!("hi"));
        let cases = [
            (chat_request(hi.clone(), json!({"n": 2})), "n"),
            (chat_request(hi.clone(), json!({"logprobs": true})), "logprobs"),
            (chat_request(hi.clone(), json!({"top_logprobs": 3})), "top_logprobs"),
            (
                chat_request(
                    hi.clone(),
                    json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}}),
                ),
                "response_format.type",
            ),
            (chat_request(hi.clone(), json!({"response_format": {"type": "json_object"}})), "response_format.type"),
            (chat_request(hi.clone(), json!({"modalities": ["text", "audio"]})), "modalities"),
            (chat_request(hi.clone(), json!({"logit_bias": {"50256": -100}})), "logit_bias"),
            (chat_request(hi.clone(), json!({"functions": [{"name": "f"}]})), "functions"),
            (chat_request(hi.clone(), json!({"audio": {"voice": "alloy", "format": "mp3"}})), "audio"),
            (chat_request(hi.clone(), json!({"web_search_options": {}})), "web_search_options"),
            (
                chat_request(
                    hi.clone(),
                    json!({"tool_choice": "sometimes", "tools": [{"type": "function", "function": {"name": "f"}}]}),
                ),
                "tool_choice",
            ),
            (
                chat_request(hi.clone(), json!({"tool_choice": {"type": "allowed_tools", "allowed_tools": {}}})),
                "tool_choice.type",
            ),
            (
                chat_request(hi.clone(), json!({"tools": [{"type": "custom", "custom": {"name": "grammar"}}]})),
                "tools[0].type",
            ),
            (chat_request(hi.clone(), json!({"tools": [{"type": "function"}]})), "tools[0].function"),
            (
                chat_request(
                    user(
                        json!([{"type": "text", "text": "listen"}, {"type": "input_audio", "input_audio": {"data": "AAA=", "format": "wav"}}]),
                    ),
                    json!({}),
                ),
                "messages[0].content[1].type",
            ),
            (
                chat_request(user(json!([{"type": "file", "file": {"file_id": "file-1"}}])), json!({})),
                "messages[0].content[0].type",
            ),
            (
                chat_request(
                    user(json!([{"type": "image_url", "image_url": {"url": "ftp://example.com/a.png"}}])),
                    json!({}),
                ),
                "messages[0].content[0].image_url.url",
            ),
            (
                chat_request(
                    user(json!([{"type": "image_url", "image_url": {"url": "data:image/svg+xml,<svg/>"}}])),
                    json!({}),
                ),
                "messages[0].content[0].image_url.url",
            ),
            (
                chat_request(
                    json!([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}]}]),
                    json!({}),
                ),
                "messages[0].content[0].type",
            ),
            (
                chat_request(
                    json!([{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"city\": \"Par"}}
                    ]}]),
                    json!({}),
                ),
                "messages[1].tool_calls[0].function.arguments",
            ),
            (
                chat_request(
                    json!([{"role": "assistant", "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}
                    ]}]),
                    json!({}),
                ),
                "messages[0].tool_calls[0].function.arguments",
            ),
            (
                chat_request(
                    json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "function": {"name": "f"}}]}]),
                    json!({}),
                ),
                "messages[0].tool_calls[0].type",
            ),
            (
                chat_request(
                    json!([{"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}]),
                    json!({}),
                ),
                "messages[0].function_call",
            ),
            (chat_request(json!([{"role": "assistant", "audio": {"id": "audio_1"}}]), json!({})), "messages[0].audio"),
            (
                chat_request(
                    json!([{"role": "tool", "tool_call_id": "c", "content": [{"type": "image_url", "image_url": {"url": "https://e.com/a.png"}}]}]),
                    json!({}),
                ),
                "messages[0].content[0].type",
            ),
            (chat_request(json!([{"role": "function", "name": "f", "content": "x"}]), json!({})), "messages[0].role"),
        ];
        for (request, field) in cases {
            assert_eq!(chat_to_messages_error(&request).field, field, "{request}");
        }
        assert_eq!(request_to_messages(b"{\"messages\": 5}").unwrap_err().field, "body");
    }

    // ---- Requests: Messages → Chat ------------------------------------------------------

    #[test]
    fn messages_request_with_tools_thinking_and_images_maps_to_chat() {
        let request = json!({
            "model": "gpt-4.1",
            "system": [
                {"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Be brief."}
            ],
            "messages": [
                {"role": "user", "content": "List the files"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "I should run ls.", "signature": "EqQBCkYIAx"},
                    {"type": "text", "text": "Running ls."},
                    {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.txt\nb.txt", "is_error": true},
                    {"type": "text", "text": "Now look at this"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}}
                ]}
            ],
            "tools": [{"name": "Bash", "description": "Run a command",
                       "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "max_tokens": 2048,
            "temperature": 0.5,
            "top_k": 40,
            "stop_sequences": ["</done>"],
            "stream": true,
            "metadata": {"user_id": "u-1"},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "service_tier": "auto"
        });
        let expected = json!({
            "model": "gpt-4.1",
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "You are a coding agent."}, {"type": "text", "text": "Be brief."}]},
                {"role": "user", "content": "List the files"},
                {"role": "assistant", "content": "Running ls.", "tool_calls": [
                    {"id": "toolu_01", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_01", "content": "a.txt\nb.txt"},
                {"role": "user", "content": [
                    {"type": "text", "text": "Now look at this"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}
                ]}
            ],
            "tools": [{"type": "function", "function": {"name": "Bash", "description": "Run a command",
                       "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "max_completion_tokens": 2048,
            "temperature": 0.5,
            "stop": ["</done>"],
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "u-1"
        });
        assert_eq!(messages_to_chat(&request), expected);
    }

    #[test]
    fn messages_tool_choice_maps_each_type() {
        let tools = json!([{"name": "f", "input_schema": {"type": "object"}}]);
        let cases = [
            (json!({"type": "auto"}), json!("auto"), Value::Null),
            (json!({"type": "auto", "disable_parallel_tool_use": true}), json!("auto"), json!(false)),
            (json!({"type": "any"}), json!("required"), Value::Null),
            (json!({"type": "none"}), json!("none"), Value::Null),
            (json!({"type": "tool", "name": "f"}), json!({"type": "function", "function": {"name": "f"}}), Value::Null),
        ];
        let hi = json!([{"role": "user", "content": "hi"}]);
        for (choice, expected, parallel) in cases {
            let out = messages_to_chat(&messages_request(hi.clone(), json!({"tools": tools, "tool_choice": choice})));
            assert_eq!(out["tool_choice"], expected);
            assert_eq!(out.get("parallel_tool_calls").cloned().unwrap_or(Value::Null), parallel);
        }
        let plain = messages_to_chat(&messages_request(hi, json!({"tool_choice": {"type": "any"}})));
        assert_eq!(plain.get("tool_choice"), None, "OpenAI refuses a tool choice without tools");
        assert_eq!(plain.get("stream_options"), None, "usage is only asked for when streaming");
    }

    #[test]
    fn messages_requests_chat_cannot_honour_are_refused_naming_the_field() {
        let cases = [
            (
                messages_request(
                    json!([{"role": "user", "content": "hi"}]),
                    json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
                ),
                "tools[0].type",
            ),
            (
                messages_request(
                    json!([{"role": "user", "content": [{"type": "document", "source": {"type": "text", "data": "x"}}]}]),
                    json!({}),
                ),
                "messages[0].content[0].type",
            ),
            (
                messages_request(
                    json!([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
                        {"type": "text", "text": "screenshot:"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
                    ]}]}]),
                    json!({}),
                ),
                "messages[0].content[0].content[1].type",
            ),
            (
                messages_request(
                    json!([{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]),
                    json!({}),
                ),
                "messages[0].content[0].type",
            ),
            (
                messages_request(
                    json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}]),
                    json!({}),
                ),
                "messages[1].content[0].type",
            ),
            (
                messages_request(
                    json!([{"role": "user", "content": "hi"}]),
                    json!({"system": [{"type": "image", "source": {"type": "url", "url": "https://e.com/a.png"}}]}),
                ),
                "system[0].type",
            ),
            (
                messages_request(
                    json!([{"role": "user", "content": "hi"}]),
                    json!({"mcp_servers": [{"type": "url", "url": "https://mcp"}]}),
                ),
                "mcp_servers",
            ),
        ];
        for (request, field) in cases {
            assert_eq!(messages_to_chat_error(&request).field, field, "{request}");
        }
        assert_eq!(request_from_messages(b"[]").unwrap_err().field, "body");
    }

    // ---- Whole responses ----------------------------------------------------------------

    fn anthropic_response(content: Value, stop_reason: &str, usage: Value) -> Value {
        json!({
            "id": "msg_01ABC", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": content, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage
        })
    }

    fn openai_response(message: Value, finish_reason: &str, usage: Value) -> Value {
        json!({
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion", "created": 1_741_570_283,
            "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_fc9f1d7035", "service_tier": "default",
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason}],
            "usage": usage
        })
    }

    #[test]
    fn messages_response_with_thinking_text_and_tool_use_maps_to_chat() {
        let response = anthropic_response(
            json!([
                {"type": "thinking", "thinking": "User wants the weather.", "signature": "sig"},
                {"type": "text", "text": "Checking "},
                {"type": "text", "text": "now."},
                {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Paris"}}
            ]),
            "tool_use",
            json!({"input_tokens": 100, "output_tokens": 30, "cache_read_input_tokens": 900, "cache_creation_input_tokens": 50}),
        );
        let mut out = parse(&messages_response_to_chat(&bytes(&response), "gpt-4o").unwrap());
        assert!(out["created"].as_i64().unwrap() > 1_700_000_000);
        out.as_object_mut().unwrap().remove("created");
        assert_eq!(
            out,
            json!({
                "id": "chatcmpl-01ABC", "object": "chat.completion", "model": "gpt-4o",
                "choices": [{"index": 0, "message": {
                    "role": "assistant", "content": "Checking now.", "refusal": null,
                    "reasoning_content": "User wants the weather.",
                    "tool_calls": [{"id": "toolu_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
                }, "finish_reason": "tool_calls", "logprobs": null}],
                "usage": {"prompt_tokens": 1050, "completion_tokens": 30, "total_tokens": 1080, "prompt_tokens_details": {"cached_tokens": 900}}
            })
        );
        let tools_only = anthropic_response(
            json!([{"type": "tool_use", "id": "toolu_9", "name": "f", "input": {}}]),
            "tool_use",
            json!({"input_tokens": 1, "output_tokens": 1}),
        );
        let out = parse(&messages_response_to_chat(&bytes(&tools_only), "gpt-4o").unwrap());
        assert_eq!(out["choices"][0]["message"]["content"], Value::Null, "tool-only answers have null content");
        assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    }

    #[test]
    fn chat_response_with_tool_calls_and_cached_tokens_maps_to_messages() {
        let response = openai_response(
            json!({"role": "assistant", "content": null, "refusal": null, "annotations": [], "tool_calls": [
                {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_def", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]}),
            "tool_calls",
            json!({"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
                   "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
                   "completion_tokens_details": {"reasoning_tokens": 0}}),
        );
        let out = parse(&chat_response_to_messages(&bytes(&response), "claude-sonnet-4-5").unwrap());
        assert_eq!(
            out,
            json!({
                "id": "msg_B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [
                    {"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_def", "name": "get_time", "input": {}}
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 93, "output_tokens": 46, "cache_read_input_tokens": 1024}
            })
        );
    }

    #[test]
    fn chat_response_refusal_becomes_text_with_refusal_stop_reason() {
        let response = openai_response(
            json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
            "stop",
            json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}),
        );
        let out = parse(&chat_response_to_messages(&bytes(&response), "m").unwrap());
        assert_eq!(out["content"], json!([{"type": "text", "text": "I can't help with that."}]));
        assert_eq!(out["stop_reason"], "refusal");
        assert_eq!(out["usage"], json!({"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 0}));
    }

    #[test]
    fn every_stop_reason_maps_both_ways() {
        let to_chat = [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
        ];
        for (stop_reason, finish_reason) in to_chat {
            let response = anthropic_response(json!([{"type": "text", "text": "x"}]), stop_reason, json!({}));
            let out = parse(&messages_response_to_chat(&bytes(&response), "m").unwrap());
            assert_eq!(out["choices"][0]["finish_reason"], finish_reason, "{stop_reason}");
        }
        let to_messages = [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("tool_calls", "tool_use"),
            ("function_call", "tool_use"),
            ("content_filter", "refusal"),
        ];
        for (finish_reason, stop_reason) in to_messages {
            let response = openai_response(json!({"role": "assistant", "content": "x"}), finish_reason, json!({}));
            let out = parse(&chat_response_to_messages(&bytes(&response), "m").unwrap());
            assert_eq!(out["stop_reason"], stop_reason, "{finish_reason}");
        }
    }

    #[test]
    fn unreadable_responses_are_errors() {
        assert!(messages_response_to_chat(b"<html>bad gateway</html>", "m").is_err());
        assert!(chat_response_to_messages(b"{\"id\":\"x\"", "m").is_err());
        let empty = json!({"id": "chatcmpl-1", "object": "chat.completion", "choices": []});
        assert_eq!(chat_response_to_messages(&bytes(&empty), "m").unwrap_err(), "chat completion has no choices");
        let truncated = openai_response(
            json!({"role": "assistant", "tool_calls": [{"id": "call_x", "type": "function", "function": {"name": "f", "arguments": "{\"a\":"}}]}),
            "length",
            json!({}),
        );
        assert!(chat_response_to_messages(&bytes(&truncated), "m").unwrap_err().contains("call_x"));
    }

    // ---- Streams: Messages → Chat -------------------------------------------------------

    fn message_start(usage: Value) -> Value {
        json!({"type": "message_start", "message": {
            "id": "msg_01XY", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage
        }})
    }

    fn block_start(index: usize, block: Value) -> Value {
        json!({"type": "content_block_start", "index": index, "content_block": block})
    }

    fn block_delta(index: usize, delta: Value) -> Value {
        json!({"type": "content_block_delta", "index": index, "delta": delta})
    }

    fn block_stop(index: usize) -> Value {
        json!({"type": "content_block_stop", "index": index})
    }

    fn message_delta(stop_reason: &str, usage: Value) -> Value {
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": usage})
    }

    fn tool_round_events() -> Vec<Value> {
        vec![
            message_start(
                json!({"input_tokens": 25, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100, "output_tokens": 1}),
            ),
            block_start(0, json!({"type": "text", "text": ""})),
            json!({"type": "ping"}),
            block_delta(0, json!({"type": "text_delta", "text": "Hello"})),
            block_delta(0, json!({"type": "text_delta", "text": " there"})),
            block_stop(0),
            block_start(1, json!({"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}})),
            block_delta(1, json!({"type": "input_json_delta", "partial_json": ""})),
            block_delta(1, json!({"type": "input_json_delta", "partial_json": "{\"city\": "})),
            block_delta(1, json!({"type": "input_json_delta", "partial_json": "\"Paris\"}"})),
            block_stop(1),
            block_start(2, json!({"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}})),
            block_delta(2, json!({"type": "input_json_delta", "partial_json": "{}"})),
            block_stop(2),
            message_delta("tool_use", json!({"output_tokens": 42})),
            json!({"type": "message_stop"}),
        ]
    }

    #[test]
    fn messages_stream_with_text_and_tool_calls_becomes_chat_chunks() {
        let mut converter = ChatFromMessages::new("gpt-4o", true);
        let mut out = feed_anthropic(&mut converter, &tool_round_events());
        converter.finish(true, &mut out);
        let (chunks, done) = chat_chunks(&out);
        assert!(done, "the stream ends with [DONE]");
        assert!(out.ends_with(b"data: [DONE]\n\n"));
        let created = &chunks[0]["created"];
        for chunk in &chunks {
            assert_eq!(chunk["id"], "chatcmpl-01XY");
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["model"], "gpt-4o");
            assert_eq!(&chunk["created"], created);
        }
        let choice = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "finish_reason": finish}]);
        let call = |index: usize, function: Value| json!({"tool_calls": [{"index": index, "function": function}]});
        let expected = vec![
            choice(json!({"role": "assistant", "content": ""}), Value::Null),
            choice(json!({"content": "Hello"}), Value::Null),
            choice(json!({"content": " there"}), Value::Null),
            choice(
                json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null,
            ),
            choice(call(0, json!({"arguments": "{\"city\": "})), Value::Null),
            choice(call(0, json!({"arguments": "\"Paris\"}"})), Value::Null),
            choice(
                json!({"tool_calls": [{"index": 1, "id": "toolu_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}]}),
                Value::Null,
            ),
            choice(call(1, json!({"arguments": "{}"})), Value::Null),
            choice(json!({}), json!("tool_calls")),
            json!([]),
        ];
        assert_eq!(chunks.iter().map(|chunk| chunk["choices"].clone()).collect::<Vec<_>>(), expected);
        assert!(
            chunks[..chunks.len() - 1].iter().all(|chunk| chunk.get("usage").is_none()),
            "no usage: null on content chunks"
        );
        assert_eq!(
            chunks[chunks.len() - 1]["usage"],
            json!({"prompt_tokens": 125, "completion_tokens": 42, "total_tokens": 167, "prompt_tokens_details": {"cached_tokens": 100}})
        );
    }

    #[test]
    fn messages_stream_without_include_usage_has_no_usage_chunk_and_thinking_becomes_reasoning() {
        let events = vec![
            message_start(json!({"input_tokens": 5, "output_tokens": 1})),
            block_start(0, json!({"type": "thinking", "thinking": ""})),
            block_delta(0, json!({"type": "thinking_delta", "thinking": "Let me think."})),
            block_delta(0, json!({"type": "signature_delta", "signature": "EqQB"})),
            block_stop(0),
            block_start(1, json!({"type": "text", "text": ""})),
            block_delta(1, json!({"type": "text_delta", "text": "42"})),
            block_stop(1),
            message_delta("max_tokens", json!({"output_tokens": 9})),
            json!({"type": "message_stop"}),
        ];
        let mut converter = ChatFromMessages::new("gpt-4o", false);
        let out = feed_anthropic(&mut converter, &events);
        let (chunks, done) = chat_chunks(&out);
        assert!(done);
        let deltas: Vec<Value> = chunks.iter().map(|chunk| chunk["choices"][0]["delta"].clone()).collect();
        assert_eq!(
            deltas,
            vec![
                json!({"role": "assistant", "content": ""}),
                json!({"reasoning_content": "Let me think."}),
                json!({"content": "42"}),
                json!({})
            ]
        );
        assert_eq!(chunks[3]["choices"][0]["finish_reason"], "length");
        assert!(chunks.iter().all(|chunk| chunk.get("usage").is_none()));
    }

    #[test]
    fn messages_stream_error_becomes_an_openai_error_and_ends_the_stream() {
        let events = vec![
            message_start(json!({"input_tokens": 5, "output_tokens": 1})),
            block_start(0, json!({"type": "text", "text": ""})),
            block_delta(0, json!({"type": "text_delta", "text": "partial"})),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
            block_delta(0, json!({"type": "text_delta", "text": "ignored"})),
            json!({"type": "message_stop"}),
        ];
        let mut converter = ChatFromMessages::new("gpt-4o", true);
        let mut out = feed_anthropic(&mut converter, &events);
        converter.finish(true, &mut out);
        let events = sse(&out);
        assert_eq!(events.len(), 3, "role chunk, text chunk, error: {events:?}");
        assert_eq!(
            parse(events[2].1.as_bytes()),
            json!({"error": {"message": "Overloaded", "type": "overloaded_error", "param": null, "code": null}})
        );
    }

    #[test]
    fn messages_stream_finish_claims_success_only_when_clean_after_a_stop_reason() {
        let mut cut = ChatFromMessages::new("gpt-4o", true);
        let mut out = feed_anthropic(&mut cut, &tool_round_events()[..5]);
        let before = out.len();
        cut.finish(false, &mut out);
        assert_eq!(out.len(), before, "an unclean end writes nothing");

        let mut unfinished = ChatFromMessages::new("gpt-4o", true);
        let mut out = feed_anthropic(&mut unfinished, &tool_round_events()[..5]);
        let before = out.len();
        unfinished.finish(true, &mut out);
        assert_eq!(out.len(), before, "no stop reason, no success");

        let events = tool_round_events();
        let mut lost_stop = ChatFromMessages::new("gpt-4o", true);
        let mut out = feed_anthropic(&mut lost_stop, &events[..events.len() - 1]);
        lost_stop.finish(true, &mut out);
        let (chunks, done) = chat_chunks(&out);
        assert!(done, "a stop reason and a clean end complete the stream");
        assert_eq!(chunks[chunks.len() - 1]["usage"]["completion_tokens"], 42);
    }

    // ---- Streams: Chat → Messages -------------------------------------------------------

    fn openai_chunk(delta: Value, finish_reason: Value) -> String {
        json!({
            "id": "chatcmpl-AB1", "object": "chat.completion.chunk", "created": 1_741_570_283,
            "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_1", "usage": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]
        })
        .to_string()
    }

    fn openai_usage_chunk(usage: Value) -> String {
        json!({"id": "chatcmpl-AB1", "object": "chat.completion.chunk", "created": 1_741_570_283,
               "model": "gpt-4o-2024-08-06", "choices": [], "usage": usage})
        .to_string()
    }

    fn openai_tool_round() -> Vec<String> {
        let call = |value: Value| openai_chunk(json!({"tool_calls": [value]}), Value::Null);
        vec![
            openai_chunk(json!({"role": "assistant", "content": "", "refusal": null}), Value::Null),
            openai_chunk(json!({"content": "Let me"}), Value::Null),
            openai_chunk(json!({"content": " check."}), Value::Null),
            call(
                json!({"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}),
            ),
            call(json!({"index": 0, "function": {"arguments": "{\"city\":"}})),
            call(json!({"index": 0, "function": {"arguments": "\"Paris\"}"}})),
            call(
                json!({"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}),
            ),
            openai_chunk(json!({}), json!("tool_calls")),
            openai_usage_chunk(json!({"prompt_tokens": 120, "completion_tokens": 33, "total_tokens": 153,
                                      "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0}})),
            "[DONE]".to_owned(),
        ]
    }

    #[test]
    fn chat_stream_with_text_and_parallel_tool_calls_becomes_messages_events() {
        let mut converter = MessagesFromChat::new("claude-sonnet-4-5");
        let mut out = feed_chat(&mut converter, &openai_tool_round());
        converter.finish(true, &mut out);
        let events = anthropic_events(&out);
        let text = |index: usize, text: &str| block_delta(index, json!({"type": "text_delta", "text": text}));
        let args =
            |index: usize, json: &str| block_delta(index, json!({"type": "input_json_delta", "partial_json": json}));
        let expected = vec![
            json!({"type": "message_start", "message": {
                "id": "msg_AB1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0}
            }}),
            block_start(0, json!({"type": "text", "text": ""})),
            text(0, "Let me"),
            text(0, " check."),
            block_stop(0),
            block_start(1, json!({"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {}})),
            args(1, "{\"city\":"),
            args(1, "\"Paris\"}"),
            block_stop(1),
            block_start(2, json!({"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}})),
            args(2, "{}"),
            block_stop(2),
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
                   "usage": {"input_tokens": 56, "output_tokens": 33, "cache_read_input_tokens": 64}}),
            json!({"type": "message_stop"}),
        ];
        assert_eq!(events, expected);
    }

    #[test]
    fn chat_stream_arguments_before_the_name_wait_for_the_block() {
        let call = |value: Value| openai_chunk(json!({"tool_calls": [value]}), Value::Null);
        let chunks = vec![
            call(json!({"index": 0, "id": "call_z", "function": {"arguments": "{\"a\""}})),
            call(json!({"index": 0, "function": {"name": "f", "arguments": ":1}"}})),
            openai_chunk(json!({}), json!("tool_calls")),
            "[DONE]".to_owned(),
        ];
        let mut converter = MessagesFromChat::new("claude-sonnet-4-5");
        let assembled = assemble(&feed_chat(&mut converter, &chunks));
        assert_eq!(
            assembled.blocks,
            vec![ContentBlock::ToolUse { id: "call_z".into(), name: "f".into(), input: json!({"a": 1}) }]
        );
        assert_eq!(assembled.stop_reason.as_deref(), Some("tool_use"));
        assert!(assembled.stopped);
    }

    #[test]
    fn chat_stream_calls_that_all_say_index_zero_stay_apart_by_id() {
        let call = |value: Value| openai_chunk(json!({"tool_calls": [value]}), Value::Null);
        let chunks = vec![
            call(
                json!({"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}),
            ),
            call(json!({"index": 0, "id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}})),
            openai_chunk(json!({}), json!("tool_calls")),
            "[DONE]".to_owned(),
        ];
        let mut converter = MessagesFromChat::new("claude-sonnet-4-5");
        let assembled = assemble(&feed_chat(&mut converter, &chunks));
        assert_eq!(
            assembled.blocks,
            vec![
                ContentBlock::ToolUse { id: "call_1".into(), name: "f".into(), input: json!({"a": 1}) },
                ContentBlock::ToolUse { id: "call_2".into(), name: "g".into(), input: json!({}) },
            ]
        );
    }

    #[test]
    fn chat_stream_error_chunk_becomes_an_anthropic_error_event() {
        let chunks = vec![
            openai_chunk(json!({"role": "assistant", "content": "Hi"}), Value::Null),
            json!({"error": {"message": "The server had an error", "type": "server_error", "param": null, "code": null}}).to_string(),
            openai_chunk(json!({"content": "ignored"}), Value::Null),
            "[DONE]".to_owned(),
        ];
        let mut converter = MessagesFromChat::new("claude-sonnet-4-5");
        let mut out = feed_chat(&mut converter, &chunks);
        converter.finish(true, &mut out);
        let events = anthropic_events(&out);
        assert_eq!(events.len(), 4, "start, text block start, delta, error: {events:?}");
        assert_eq!(
            events[3],
            json!({"type": "error", "error": {"type": "server_error", "message": "The server had an error"}})
        );
    }

    #[test]
    fn chat_stream_finish_completes_only_when_clean_after_a_finish_reason() {
        let round = openai_tool_round();
        let mut without_done = MessagesFromChat::new("claude-sonnet-4-5");
        let mut out = feed_chat(&mut without_done, &round[..round.len() - 1]);
        without_done.finish(true, &mut out);
        let assembled = assemble(&out);
        assert!(assembled.stopped, "finish reason seen and a clean end: message_stop");
        assert_eq!(assembled.usage.output_tokens, 33);

        let mut cut = MessagesFromChat::new("claude-sonnet-4-5");
        let mut out = feed_chat(&mut cut, &round[..4]);
        let before = out.len();
        cut.finish(true, &mut out);
        cut.finish(false, &mut out);
        assert_eq!(out.len(), before, "no finish reason: nothing that claims success");
        assert!(!String::from_utf8(out).unwrap().contains("message_stop"));

        let mut no_usage = MessagesFromChat::new("claude-sonnet-4-5");
        let chunks = [openai_chunk(json!({"content": "done"}), json!("stop")), "[DONE]".to_owned()];
        let assembled = assemble(&feed_chat(&mut no_usage, &chunks));
        assert_eq!(assembled.stop_reason.as_deref(), Some("end_turn"));
        assert_eq!(assembled.blocks, vec![text_block("done".into())]);
    }

    // ---- Property tests -----------------------------------------------------------------

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 .,!?'\"\\\\é✓\n]{1,12}"
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            text().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
        ]
    }

    /// A tool input: an object of scalars and small arrays.
    fn object() -> impl Strategy<Value = Value> {
        let array = prop::collection::vec(leaf(), 0..3).prop_map(Value::Array);
        prop::collection::btree_map("[a-z_]{1,8}", prop_oneof![3 => leaf(), 1 => array], 0..4)
            .prop_map(|map| Value::Object(map.into_iter().collect()))
    }

    fn image() -> impl Strategy<Value = ImageSource> {
        prop_oneof![
            ("image/(png|jpeg|webp)", "[A-Za-z0-9+/]{4,16}={0,2}")
                .prop_map(|(media_type, data)| ImageSource::Base64 { media_type, data }),
            "https://example\\.com/[a-z]{1,8}\\.png".prop_map(|url| ImageSource::Url { url }),
        ]
    }

    fn tool_result_content() -> impl Strategy<Value = Option<ToolResultContent>> {
        prop_oneof![
            Just(None),
            text().prop_map(|text| Some(ToolResultContent::Text(text))),
            prop::collection::vec(text(), 1..3)
                .prop_map(|texts| Some(ToolResultContent::Blocks(texts.into_iter().map(text_block).collect()))),
        ]
    }

    /// One user turn and the assistant's answer; tool calls are answered in the next user turn.
    #[derive(Debug, Clone)]
    struct TurnSpec {
        user_texts: Vec<String>,
        image: Option<ImageSource>,
        assistant_texts: Vec<String>,
        calls: Vec<(String, Value, Option<ToolResultContent>)>,
    }

    fn turn() -> impl Strategy<Value = TurnSpec> {
        (
            prop::collection::vec(text(), 0..3),
            prop::option::of(image()),
            prop::collection::vec(text(), 0..3),
            prop::collection::vec(("[a-z_]{1,10}", object(), tool_result_content()), 0..3),
        )
            .prop_map(|(user_texts, image, assistant_texts, calls)| TurnSpec {
                user_texts,
                image,
                assistant_texts,
                calls,
            })
    }

    /// A single text block as plain text, to exercise both content shapes.
    fn content(blocks: Vec<ContentBlock>) -> Content {
        match blocks.as_slice() {
            [ContentBlock::Text { text, .. }] => Content::Text(text.clone()),
            _ => Content::Blocks(blocks),
        }
    }

    fn user_turn(
        pending: &mut Vec<(String, Option<ToolResultContent>)>,
        texts: Vec<String>,
        image: Option<ImageSource>,
    ) -> Message {
        let mut blocks: Vec<ContentBlock> = pending
            .drain(..)
            .map(|(tool_use_id, content)| ContentBlock::ToolResult { tool_use_id, content, is_error: false })
            .collect();
        blocks.extend(texts.into_iter().map(text_block));
        blocks.extend(image.map(|source| ContentBlock::Image { source }));
        if blocks.is_empty() {
            blocks.push(text_block("hi".into()));
        }
        Message { role: Role::User, content: content(blocks) }
    }

    fn conversation(turns: Vec<TurnSpec>, closing: String) -> Vec<Message> {
        let mut messages = Vec::new();
        let mut pending = Vec::new();
        let mut next_id = 0;
        for turn in turns {
            messages.push(user_turn(&mut pending, turn.user_texts, turn.image));
            let mut blocks: Vec<ContentBlock> = turn.assistant_texts.into_iter().map(text_block).collect();
            for (name, input, result) in turn.calls {
                let id = format!("toolu_{next_id}");
                next_id += 1;
                blocks.push(ContentBlock::ToolUse { id: id.clone(), name, input });
                pending.push((id, result));
            }
            if blocks.is_empty() {
                blocks.push(text_block("ok".into()));
            }
            messages.push(Message { role: Role::Assistant, content: content(blocks) });
        }
        messages.push(user_turn(&mut pending, vec![closing], None));
        messages
    }

    fn tool() -> impl Strategy<Value = Tool> {
        ("[a-zA-Z_]{1,12}", prop::option::of(text()), any::<bool>()).prop_map(|(name, description, schema)| Tool {
            kind: None,
            input_schema: schema.then(|| json!({"type": "object", "properties": {name.clone(): {"type": "string"}}})),
            name,
            description,
        })
    }

    fn tool_choice() -> impl Strategy<Value = ToolChoice> {
        let disable = || prop::option::of(any::<bool>());
        prop_oneof![
            disable().prop_map(|disable_parallel_tool_use| ToolChoice::Auto { disable_parallel_tool_use }),
            disable().prop_map(|disable_parallel_tool_use| ToolChoice::Any { disable_parallel_tool_use }),
            ("[a-z]{1,8}", disable())
                .prop_map(|(name, disable_parallel_tool_use)| ToolChoice::Tool { name, disable_parallel_tool_use }),
            Just(ToolChoice::None),
        ]
    }

    /// Sampling values that survive a decimal round trip exactly.
    fn unit_fraction() -> impl Strategy<Value = Option<f64>> {
        prop::option::of((0u8..=4).prop_map(|k| f64::from(k) / 4.0))
    }

    fn system() -> impl Strategy<Value = System> {
        prop_oneof![
            text().prop_map(System::Text),
            prop::collection::vec(text(), 1..3)
                .prop_map(|texts| System::Blocks(texts.into_iter().map(text_block).collect())),
        ]
    }

    fn anthropic_request() -> impl Strategy<Value = MessagesRequest> {
        (
            (prop::collection::vec(turn(), 0..4), text(), prop::option::of(system())),
            (prop::collection::vec(tool(), 0..3), prop::option::of(tool_choice())),
            (1u64..200_000, unit_fraction(), unit_fraction(), prop::collection::vec(text(), 0..3)),
            (any::<bool>(), prop::option::of("[a-z0-9-]{1,12}")),
        )
            .prop_map(
                |(
                    (turns, closing, system),
                    (tools, tool_choice),
                    (max_tokens, temperature, top_p, stop_sequences),
                    (stream, user),
                )| {
                    MessagesRequest {
                        model: "claude-sonnet-4-5".into(),
                        messages: conversation(turns, closing),
                        system,
                        max_tokens,
                        temperature,
                        top_p,
                        top_k: None,
                        stop_sequences,
                        stream,
                        tools,
                        tool_choice,
                        metadata: user.map(|user_id| Metadata { user_id: Some(user_id) }),
                        thinking: None,
                    }
                },
            )
    }

    /// What a Messages → Chat → Messages trip may change without changing meaning.
    fn normalized(mut request: MessagesRequest) -> MessagesRequest {
        for message in &mut request.messages {
            if let Content::Text(text) = &message.content {
                message.content = Content::Blocks(vec![text_block(text.clone())]);
            }
        }
        if let Some(System::Text(text)) = &request.system {
            request.system = Some(System::Blocks(vec![text_block(text.clone())]));
        }
        for tool in &mut request.tools {
            tool.input_schema.get_or_insert_with(empty_object_schema);
        }
        let disable = |flag: Option<bool>| flag.filter(|flag| *flag);
        request.tool_choice = match request.tool_choice {
            _ if request.tools.is_empty() => None,
            Some(ToolChoice::Auto { disable_parallel_tool_use }) => {
                Some(ToolChoice::Auto { disable_parallel_tool_use: disable(disable_parallel_tool_use) })
            }
            Some(ToolChoice::Any { disable_parallel_tool_use }) => {
                Some(ToolChoice::Any { disable_parallel_tool_use: disable(disable_parallel_tool_use) })
            }
            Some(ToolChoice::Tool { name, disable_parallel_tool_use }) => {
                Some(ToolChoice::Tool { name, disable_parallel_tool_use: disable(disable_parallel_tool_use) })
            }
            other => other,
        };
        request
    }

    fn usage() -> impl Strategy<Value = Usage> {
        (0u64..1_000_000, 1u64..100_000, prop::option::of(0u64..1_000_000), prop::option::of(0u64..1_000_000)).prop_map(
            |(input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens)| Usage {
                input_tokens,
                output_tokens,
                cache_creation_input_tokens,
                cache_read_input_tokens,
            },
        )
    }

    /// The usage an Anthropic client sees after a trip through Chat: cache writes count as input.
    fn usage_after_chat(usage: &Usage) -> (u64, u64, u64) {
        (
            usage.input_tokens + usage.cache_creation_input_tokens.unwrap_or(0),
            usage.output_tokens,
            usage.cache_read_input_tokens.unwrap_or(0),
        )
    }

    fn usage_seen(usage: &Usage) -> (u64, u64, u64) {
        (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens.unwrap_or(0))
    }

    fn stop_reason() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["end_turn", "stop_sequence", "max_tokens", "tool_use", "refusal"])
    }

    /// `stop_sequence` has no Chat counterpart of its own and comes back as `end_turn`.
    fn stop_reason_after_chat(stop_reason: &str) -> &str {
        if stop_reason == "stop_sequence" { "end_turn" } else { stop_reason }
    }

    fn response_block() -> impl Strategy<Value = ContentBlock> {
        prop_oneof![
            2 => text().prop_map(text_block),
            1 => ("[a-z_]{1,8}", object()).prop_map(|(name, input)| ContentBlock::ToolUse { id: String::new(), name, input }),
            1 => text().prop_map(|thinking| ContentBlock::Thinking { thinking, signature: "sig".into() }),
        ]
    }

    /// Gives tool uses distinct ids.
    fn with_ids(blocks: Vec<ContentBlock>) -> Vec<ContentBlock> {
        blocks
            .into_iter()
            .enumerate()
            .map(|(i, block)| match block {
                ContentBlock::ToolUse { name, input, .. } => {
                    ContentBlock::ToolUse { id: format!("toolu_{i}"), name, input }
                }
                other => other,
            })
            .collect()
    }

    /// A Messages answer as it looks after Chat: thinking gone, adjacent texts joined.
    fn merged_without_thinking(blocks: &[ContentBlock]) -> Vec<ContentBlock> {
        let mut merged: Vec<ContentBlock> = Vec::new();
        for block in blocks {
            match (merged.last_mut(), block) {
                (_, ContentBlock::Thinking { .. }) => {}
                (Some(ContentBlock::Text { text, .. }), ContentBlock::Text { text: more, .. }) => text.push_str(more),
                (_, block) => merged.push(block.clone()),
            }
        }
        merged
    }

    /// A Messages answer as it looks after a whole Chat message: its text joined in front
    /// (a Chat message holds one content string before its tool calls), thinking gone.
    fn text_then_tools(blocks: &[ContentBlock]) -> Vec<ContentBlock> {
        let text: String = blocks
            .iter()
            .filter_map(|block| match block {
                ContentBlock::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let tools = blocks.iter().filter(|block| matches!(block, ContentBlock::ToolUse { .. })).cloned();
        non_empty_text(&text).into_iter().chain(tools).collect()
    }

    /// Anthropic stream events for an answer, with text and arguments cut into `piece`-char deltas.
    fn stream_events(blocks: &[ContentBlock], piece: usize, stop_reason: &str, usage: &Usage) -> Vec<Value> {
        let pieces = |text: &str| -> Vec<String> {
            text.chars().collect::<Vec<_>>().chunks(piece).map(|chunk| chunk.iter().collect()).collect()
        };
        let start_usage = Usage { output_tokens: 1, ..usage.clone() };
        let mut events = vec![message_start(serde_json::to_value(start_usage).unwrap()), json!({"type": "ping"})];
        for (index, block) in blocks.iter().enumerate() {
            let (start, deltas) = match block {
                ContentBlock::Text { text, .. } => (
                    json!({"type": "text", "text": ""}),
                    pieces(text)
                        .into_iter()
                        .map(|text| json!({"type": "text_delta", "text": text}))
                        .collect::<Vec<_>>(),
                ),
                ContentBlock::Thinking { thinking, .. } => (
                    json!({"type": "thinking", "thinking": ""}),
                    pieces(thinking)
                        .into_iter()
                        .map(|thinking| json!({"type": "thinking_delta", "thinking": thinking}))
                        .collect(),
                ),
                ContentBlock::ToolUse { id, name, input } => (
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    pieces(&input.to_string())
                        .into_iter()
                        .map(|partial_json| json!({"type": "input_json_delta", "partial_json": partial_json}))
                        .collect(),
                ),
                other => panic!("not generated: {other:?}"),
            };
            events.push(block_start(index, start));
            events.extend(deltas.into_iter().map(|delta| block_delta(index, delta)));
            events.push(block_stop(index));
        }
        events.push(message_delta(stop_reason, json!({"output_tokens": usage.output_tokens})));
        events.push(json!({"type": "message_stop"}));
        events
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn messages_requests_survive_a_trip_through_chat(request in anthropic_request()) {
            let chat = request_from_messages(&bytes(&request)).unwrap();
            let chat_value = parse(&chat);
            prop_assert_eq!(chat_value.get("stream_options").is_some(), request.stream);
            let back: MessagesRequest = serde_json::from_slice(&request_to_messages(&chat).unwrap()).unwrap();
            prop_assert_eq!(back, normalized(request));
        }

        #[test]
        fn messages_responses_survive_a_trip_through_chat(
            blocks in prop::collection::vec(response_block(), 0..5),
            stop_reason in stop_reason(),
            usage in usage(),
        ) {
            let response = MessagesResponse {
                id: "msg_01Round".into(),
                kind: "message".into(),
                role: Role::Assistant,
                model: "claude-sonnet-4-5".into(),
                content: with_ids(blocks),
                stop_reason: Some(stop_reason.into()),
                stop_sequence: None,
                usage,
            };
            let chat = messages_response_to_chat(&bytes(&response), "gpt-4o").unwrap();
            let back: MessagesResponse =
                serde_json::from_slice(&chat_response_to_messages(&chat, "claude-sonnet-4-5").unwrap()).unwrap();
            prop_assert_eq!(&back.id, &response.id);
            prop_assert_eq!(&back.content, &text_then_tools(&response.content));
            prop_assert_eq!(back.stop_reason.as_deref(), Some(stop_reason_after_chat(stop_reason)));
            prop_assert_eq!(usage_seen(&back.usage), usage_after_chat(&response.usage));
        }

        #[test]
        fn messages_streams_survive_a_trip_through_chat_chunks(
            blocks in prop::collection::vec(response_block(), 0..5),
            piece in 1usize..8,
            stop_reason in stop_reason(),
            usage in usage(),
        ) {
            let blocks = with_ids(blocks);
            let mut to_chat = ChatFromMessages::new("gpt-4o", true);
            let mut chat = feed_anthropic(&mut to_chat, &stream_events(&blocks, piece, stop_reason, &usage));
            to_chat.finish(true, &mut chat);
            let mut to_messages = MessagesFromChat::new("claude-sonnet-4-5");
            let mut out = Vec::new();
            for (name, data) in sse(&chat) {
                to_messages.event(name.as_deref(), data.as_bytes(), &mut out);
            }
            to_messages.finish(true, &mut out);
            let assembled = assemble(&out);
            prop_assert!(assembled.stopped);
            prop_assert_eq!(assembled.id, "msg_01XY");
            prop_assert_eq!(assembled.model, "claude-sonnet-4-5");
            prop_assert_eq!(assembled.blocks, merged_without_thinking(&blocks));
            prop_assert_eq!(assembled.stop_reason.as_deref(), Some(stop_reason_after_chat(stop_reason)));
            prop_assert_eq!(usage_seen(&assembled.usage), usage_after_chat(&usage));
        }
    }
}
