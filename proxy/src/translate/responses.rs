//! OpenAI Responses clients (notably Codex CLI) served by Anthropic Messages accounts: the
//! Responses request becomes a Messages request, and the Messages response or stream becomes
//! a Responses `response` object or event stream. This module converts values only; it never
//! decides whether to translate, and it keeps no state between requests.
//!
//! # Request (Responses → Messages)
//!
//! - `instructions`, then every `system` / `developer` message item in order, become the
//!   Anthropic `system` text blocks. Their position in the conversation is lost: Anthropic
//!   has a single system prompt.
//! - `user` / `assistant` message items become messages: `input_text`, `output_text` and
//!   `refusal` parts become text, `input_image` with a `data:` URL becomes a base64 image and
//!   with an `http(s)` URL a URL image (user turns only). `input_file`, `file_id` images and
//!   every other part type are refused naming the part (`input[3].content[0].type`).
//! - `function_call` becomes an assistant `tool_use` (its `arguments` string parsed as a JSON
//!   object; invalid JSON is refused; an empty string means no arguments) and
//!   `function_call_output` a user `tool_result` (text or text/image parts).
//! - Consecutive content for the same role is merged into one message, because Anthropic
//!   requires user and assistant turns to alternate. Empty text is dropped (Anthropic rejects
//!   empty text blocks).
//! - `reasoning` items are dropped: they carry OpenAI reasoning state, encrypted for OpenAI's
//!   models only. `item_reference` (stored state the gateway does not keep) and every other
//!   item type are refused naming `input[i].type`.
//! - Tools: `function` → Anthropic tool {name, description, input_schema: parameters}
//!   (`strict` is not carried). `namespace` → its member function tools, flattened to
//!   `{namespace}__{name}` (the namespace description is not carried). A history
//!   `function_call` with a `namespace` uses the same flattened name.
//! - The hosted `web_search` tool (and its dated and `_preview` variants) is dropped: Codex
//!   always sends it, and an Anthropic account cannot run OpenAI's search. Every other hosted
//!   or non-function tool type (`file_search`, `code_interpreter`, `computer_use_preview`,
//!   `image_generation`, `mcp`, `local_shell`, `custom`, …) is refused naming `tools[i].type`.
//! - `tool_choice`: `auto` → auto, `none` → none, `required` → any, `{type:"function",name}`
//!   → tool; `parallel_tool_calls: false` → `disable_parallel_tool_use`. When no tool is left
//!   to offer, `auto` / `none` are omitted and a forced choice is refused.
//! - `max_output_tokens` → `max_tokens`, else [`DEFAULT_MAX_TOKENS`] (Anthropic requires
//!   it). `temperature` (Anthropic accepts at most 1; more is refused) and `top_p` pass.
//! - Ignored hints, with no Anthropic counterpart: `reasoning` (an effort level cannot be
//!   turned faithfully into a thinking budget, and Anthropic thinking needs its signed blocks
//!   back on later turns, which Responses clients cannot return), `store`, `include`,
//!   `prompt_cache_key`, `client_metadata`, `metadata`, `truncation`, `text.verbosity`,
//!   `user`, and any top-level field not modelled here.
//! - Refused: `previous_response_id` and `conversation` (the gateway keeps no response
//!   state), `background: true`, `prompt` (stored prompts live at OpenAI), and `text.format`
//!   other than `text` (no faithful structured-output mapping).
//!
//! # Response (Messages → Responses)
//!
//! - Each run of consecutive text blocks → one `message` item (`msg_…`, role assistant,
//!   one `output_text` part with `annotations: []`); each `tool_use` → a `function_call`
//!   item (`fc_…`, `call_id` = the tool_use id, `arguments` = the input as a JSON string).
//!   A tool name that [`Namespaces`] knows as flattened comes back as separate `name` and
//!   `namespace` fields — the layout Codex routes (`ResponseItem::FunctionCall` in
//!   `codex-rs/protocol/src/models.rs` carries an optional `namespace`; a flattened name
//!   fails with "unsupported call"). The namespaces come from the client's request
//!   ([`Namespaces::from_request`], passed to [`messages_response_to_responses_with`] or
//!   [`ResponsesFromMessages::with_namespaces`]); without them tool names pass unchanged.
//! - `thinking`, `redacted_thinking` and unknown blocks are skipped: thinking is never
//!   requested, and a Responses client could not return it.
//! - `status` is `completed`, or `incomplete` with `incomplete_details.reason`
//!   `max_output_tokens` (stop reasons `max_tokens`, `model_context_window_exceeded`) or
//!   `content_filter` (`refusal`); the last item of an incomplete response is `incomplete`.
//! - `usage.input_tokens` counts uncached, cache-read and cache-write input tokens;
//!   `input_tokens_details.cached_tokens` the cache reads; `reasoning_tokens` is 0.
//! - Ids: `resp_<anthropic id without msg_>`; item ids add the output index.
//!
//! # Stream
//!
//! `response.created`, `response.in_progress`, then per output item `output_item.added`,
//! (message) `content_part.added`, `output_text.delta`…, `output_text.done`,
//! `content_part.done`, `output_item.done`, or (function call) `function_call_arguments.delta`…,
//! `function_call_arguments.done`, `output_item.done`; an item closes when the next one
//! starts or the message ends, so consecutive text blocks share one item exactly as in the
//! whole response. `message_stop` writes `response.completed` (or `response.incomplete`)
//! carrying the same output and usage as [`messages_response_to_responses`]. An Anthropic
//! `error` event writes `response.failed` (`rate_limit_error` → code `rate_limit_exceeded`,
//! `overloaded_error` → `server_is_overloaded`, `api_error` → `server_error`, other types
//! kept) and nothing after it. Every event has an `event:` line and a `sequence_number`
//! counting from 0. `ping` writes nothing; so does `finish`, clean or not.

use std::collections::HashMap;

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::anthropic::{self as am, Content, ContentBlock, Role, ToolResultContent};
use super::{StreamConverter, Unmappable, unix_now, write_event};

/// `max_tokens` when the client sets no `max_output_tokens`: Anthropic requires a limit,
/// Responses does not.
pub const DEFAULT_MAX_TOKENS: u64 = 8192;

/// Joins a namespace and a member's name into the one flat tool name Anthropic sees.
const NAMESPACE_SEPARATOR: &str = "__";

/// Hosted tool types dropped rather than refused (see the module doc).
const DROPPED_TOOL_TYPES: &[&str] =
    &["web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"];

/// Stands in for the Anthropic message id in a stream that never sent `message_start`.
const UNKNOWN_ID: &str = "unknown";

/// Anthropic's upper bound for `temperature` (OpenAI allows up to 2).
const MAX_TEMPERATURE: f64 = 1.0;

// ---------------------------------------------------------------------------------------
// Request wire types
// ---------------------------------------------------------------------------------------

/// A Responses `POST /v1/responses` body, as far as translation reads it. Hint fields are
/// modelled so the module doc can say what happens to them; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResponsesRequest {
    pub model: String,
    #[serde(default)]
    pub input: Option<Input>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Vec<ResponsesTool>,
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stream: bool,
    /// `{effort, summary}`; ignored (see the module doc).
    #[serde(default)]
    pub reasoning: Option<Value>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub prompt_cache_key: Option<String>,
    /// Codex's session and turn identifiers; ignored.
    #[serde(default)]
    pub client_metadata: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub text: Option<TextConfig>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub conversation: Option<Value>,
    #[serde(default)]
    pub background: Option<bool>,
    #[serde(default)]
    pub prompt: Option<Value>,
    #[serde(default)]
    pub truncation: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

/// `input`: one user text, or a list of items.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Text(String),
    Items(Vec<InputItem>),
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(text) => Ok(Self::Text(text)),
            // Item by item, so a malformed item is reported with its index.
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| serde_json::from_value(item).map_err(|e| D::Error::custom(format!("input[{i}]: {e}"))))
                .collect::<Result<_, _>>()
                .map(Self::Items),
            _ => Err(D::Error::custom("input must be a string or an array of items")),
        }
    }
}

/// One `input` item. Unknown types are kept by name so the converter can refuse them
/// naming the field instead of failing the whole body.
#[derive(Debug, Clone, PartialEq)]
pub enum InputItem {
    Message(MessageItem),
    FunctionCall(FunctionCallItem),
    FunctionCallOutput(FunctionCallOutputItem),
    Reasoning(ReasoningItem),
    Other { kind: String },
}

impl<'de> Deserialize<'de> for InputItem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // An item without `type` is a message (the "easy input message" form).
        let (kind, value) = tagged(deserializer, "message")?;
        match kind.as_str() {
            "message" => parse(value).map(Self::Message),
            "function_call" => parse(value).map(Self::FunctionCall),
            "function_call_output" => parse(value).map(Self::FunctionCallOutput),
            "reasoning" => parse(value).map(Self::Reasoning),
            _ => Ok(Self::Other { kind }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    User,
    Assistant,
    System,
    Developer,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MessageItem {
    #[serde(default)]
    pub id: Option<String>,
    pub role: MessageRole,
    pub content: MessageContent,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// One content part of a message or of a function call's output.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    InputText(TextPart),
    OutputText(TextPart),
    Refusal(RefusalPart),
    InputImage(ImagePart),
    Other { kind: String },
}

impl<'de> Deserialize<'de> for ContentPart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (kind, value) = tagged(deserializer, "")?;
        match kind.as_str() {
            "input_text" => parse(value).map(Self::InputText),
            "output_text" => parse(value).map(Self::OutputText),
            "refusal" => parse(value).map(Self::Refusal),
            "input_image" => parse(value).map(Self::InputImage),
            _ => Ok(Self::Other { kind }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TextPart {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RefusalPart {
    pub refusal: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ImagePart {
    #[serde(default)]
    pub image_url: Option<String>,
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunctionCallItem {
    #[serde(default)]
    pub id: Option<String>,
    pub call_id: String,
    pub name: String,
    /// Set when the called tool is a member of a `namespace` tool.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The arguments as a JSON string, as the model produced them.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunctionCallOutputItem {
    pub call_id: String,
    pub output: FunctionOutput,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FunctionOutput {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// OpenAI reasoning state; dropped (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ReasoningItem {
    pub id: Option<String>,
    pub summary: Option<Vec<Value>>,
    pub encrypted_content: Option<String>,
}

/// One entry of `tools`. Hosted tools are kept by type name: the converter drops or refuses
/// them.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponsesTool {
    Function(FunctionTool),
    Namespace(NamespaceTool),
    Other { kind: String },
}

impl ResponsesTool {
    fn kind(&self) -> &str {
        match self {
            Self::Function(_) => "function",
            Self::Namespace(_) => "namespace",
            Self::Other { kind } => kind,
        }
    }
}

impl<'de> Deserialize<'de> for ResponsesTool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (kind, value) = tagged(deserializer, "")?;
        match kind.as_str() {
            "function" => parse(value).map(Self::Function),
            "namespace" => parse(value).map(Self::Namespace),
            _ => Ok(Self::Other { kind }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FunctionTool {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub strict: Option<bool>,
}

/// Codex's grouping of related function tools (`multi_agent_v1`, MCP servers).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NamespaceTool {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tools: Vec<ResponsesTool>,
}

/// `tool_choice`: a mode string or a named tool.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(String),
    Named(NamedToolChoice),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NamedToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TextConfig {
    #[serde(default)]
    pub format: Option<TextFormat>,
    #[serde(default)]
    pub verbosity: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TextFormat {
    #[serde(rename = "type")]
    pub kind: String,
}

/// Splits a tagged JSON object into its `type` (or `default_kind`) and the whole object.
fn tagged<'de, D: Deserializer<'de>>(deserializer: D, default_kind: &str) -> Result<(String, Value), D::Error> {
    let value = Value::deserialize(deserializer)?;
    let kind = value.get("type").and_then(Value::as_str).unwrap_or(default_kind).to_owned();
    Ok((kind, value))
}

fn parse<T: DeserializeOwned, E: serde::de::Error>(value: Value) -> Result<T, E> {
    serde_json::from_value(value).map_err(E::custom)
}

// ---------------------------------------------------------------------------------------
// Response wire types
// ---------------------------------------------------------------------------------------

/// A Responses `response` object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseObject {
    pub id: String,
    /// Always `"response"`.
    pub object: &'static str,
    pub created_at: i64,
    pub status: ResponseStatus,
    pub error: Option<ResponseError>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub model: String,
    pub output: Vec<OutputItem>,
    /// `null` until the response is over.
    pub usage: Option<ResponseUsage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseStatus {
    InProgress,
    Completed,
    Incomplete,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncompleteDetails {
    /// `max_output_tokens` or `content_filter`.
    pub reason: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    InProgress,
    Completed,
    Incomplete,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    Message(OutputMessage),
    FunctionCall(OutputFunctionCall),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputMessage {
    pub id: String,
    pub status: ItemStatus,
    /// Always `"assistant"`.
    pub role: &'static str,
    pub content: Vec<OutputText>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename = "output_text")]
pub struct OutputText {
    pub text: String,
    pub annotations: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputFunctionCall {
    pub id: String,
    pub status: ItemStatus,
    pub call_id: String,
    pub name: String,
    /// The namespace tool this function belongs to, when it is a member of one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The arguments object as a JSON string.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseUsage {
    pub input_tokens: u64,
    pub input_tokens_details: InputTokensDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputTokensDetails,
    pub total_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputTokensDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputTokensDetails {
    pub reasoning_tokens: u64,
}

impl ResponseUsage {
    /// Responses counts every input token in `input_tokens`; Anthropic splits off the cached
    /// and cache-written ones.
    fn from_anthropic(usage: &am::Usage) -> Self {
        let cached = usage.cache_read_input_tokens.unwrap_or(0);
        let input = usage.input_tokens + cached + usage.cache_creation_input_tokens.unwrap_or(0);
        Self {
            input_tokens: input,
            input_tokens_details: InputTokensDetails { cached_tokens: cached },
            output_tokens: usage.output_tokens,
            output_tokens_details: OutputTokensDetails { reasoning_tokens: 0 },
            total_tokens: input + usage.output_tokens,
        }
    }
}

/// One Responses stream event (the `data:` payload without its `sequence_number`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum ResponsesStreamEvent {
    #[serde(rename = "response.created")]
    Created { response: ResponseObject },
    #[serde(rename = "response.in_progress")]
    InProgress { response: ResponseObject },
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded { output_index: usize, item: OutputItem },
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded { item_id: String, output_index: usize, content_index: usize, part: OutputText },
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta { item_id: String, output_index: usize, content_index: usize, delta: String, logprobs: Vec<Value> },
    #[serde(rename = "response.output_text.done")]
    OutputTextDone { item_id: String, output_index: usize, content_index: usize, text: String, logprobs: Vec<Value> },
    #[serde(rename = "response.content_part.done")]
    ContentPartDone { item_id: String, output_index: usize, content_index: usize, part: OutputText },
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta { item_id: String, output_index: usize, delta: String },
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone { item_id: String, output_index: usize, arguments: String },
    #[serde(rename = "response.output_item.done")]
    OutputItemDone { output_index: usize, item: OutputItem },
    #[serde(rename = "response.completed")]
    Completed { response: ResponseObject },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: ResponseObject },
    #[serde(rename = "response.failed")]
    Failed { response: ResponseObject },
}

impl ResponsesStreamEvent {
    /// The SSE event name (the same as the payload's `type`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "response.created",
            Self::InProgress { .. } => "response.in_progress",
            Self::OutputItemAdded { .. } => "response.output_item.added",
            Self::ContentPartAdded { .. } => "response.content_part.added",
            Self::OutputTextDelta { .. } => "response.output_text.delta",
            Self::OutputTextDone { .. } => "response.output_text.done",
            Self::ContentPartDone { .. } => "response.content_part.done",
            Self::FunctionCallArgumentsDelta { .. } => "response.function_call_arguments.delta",
            Self::FunctionCallArgumentsDone { .. } => "response.function_call_arguments.done",
            Self::OutputItemDone { .. } => "response.output_item.done",
            Self::Completed { .. } => "response.completed",
            Self::Incomplete { .. } => "response.incomplete",
            Self::Failed { .. } => "response.failed",
        }
    }
}

/// A stream event as written: the event's fields plus its position in the stream.
#[derive(Serialize)]
struct Sequenced<'a> {
    #[serde(flatten)]
    event: &'a ResponsesStreamEvent,
    sequence_number: u64,
}

// ---------------------------------------------------------------------------------------
// Namespaces
// ---------------------------------------------------------------------------------------

/// The namespace members a request offered, by the flattened name Anthropic saw, so a
/// `tool_use` can be turned back into a `function_call` with separate `name` and `namespace`.
/// Built from the client's request with [`Namespaces::from_request`]; empty means every tool
/// name passes through unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// Flattened name → (namespace, member name).
    members: HashMap<String, (String, String)>,
}

impl Namespaces {
    /// The namespace tools of a Responses request body; empty when it has none or does not
    /// parse (such a body is refused by [`request_to_messages`] anyway).
    pub fn from_request(body: &[u8]) -> Self {
        serde_json::from_slice::<ResponsesRequest>(body)
            .map(|request| Self::from_tools(&request.tools))
            .unwrap_or_default()
    }

    fn from_tools(tools: &[ResponsesTool]) -> Self {
        let members = tools
            .iter()
            .filter_map(|tool| match tool {
                ResponsesTool::Namespace(namespace) => Some(namespace),
                _ => None,
            })
            .flat_map(|namespace| {
                namespace.tools.iter().filter_map(|member| match member {
                    ResponsesTool::Function(function) => Some((
                        flat_name(Some(&namespace.name), &function.name),
                        (namespace.name.clone(), function.name.clone()),
                    )),
                    _ => None,
                })
            })
            .collect();
        Self { members }
    }

    /// The Responses `(name, namespace)` for a tool name the Anthropic model called.
    fn resolve(&self, tool_name: &str) -> (String, Option<String>) {
        match self.members.get(tool_name) {
            Some((namespace, name)) => (name.clone(), Some(namespace.clone())),
            None => (tool_name.to_owned(), None),
        }
    }
}

/// The single tool name Anthropic sees for a (possibly namespaced) function.
fn flat_name(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(namespace) => format!("{namespace}{NAMESPACE_SEPARATOR}{name}"),
        None => name.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Request conversion
// ---------------------------------------------------------------------------------------

/// Responses request JSON -> Anthropic Messages request JSON (stream flag kept).
pub fn request_to_messages(body: &[u8]) -> Result<Vec<u8>, Unmappable> {
    let request: ResponsesRequest =
        serde_json::from_slice(body).map_err(|e| Unmappable::new("body", format!("not a Responses request: {e}")))?;
    let converted = convert_request(request)?;
    serde_json::to_vec(&converted).map_err(|e| Unmappable::new("body", e.to_string()))
}

fn convert_request(request: ResponsesRequest) -> Result<am::MessagesRequest, Unmappable> {
    refuse_unmappable_options(&request)?;
    let mut conversation = Conversation::default();
    conversation.system.extend(request.instructions.filter(|text| !text.is_empty()));
    match request.input {
        Some(Input::Text(text)) => conversation.push(Role::User, text_block(text).into_iter().collect()),
        Some(Input::Items(items)) => {
            for (index, item) in items.into_iter().enumerate() {
                convert_item(&mut conversation, index, item)?;
            }
        }
        None => {}
    }
    if conversation.messages.is_empty() {
        return Err(Unmappable::new("input", "Anthropic needs at least one user or assistant message"));
    }
    let tools = convert_tools(request.tools)?;
    let tool_choice = convert_tool_choice(request.tool_choice, request.parallel_tool_calls, !tools.is_empty())?;
    Ok(am::MessagesRequest {
        model: request.model,
        system: conversation.system_blocks(),
        messages: conversation.messages,
        max_tokens: request.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: None,
        stop_sequences: Vec::new(),
        stream: request.stream,
        tools,
        tool_choice,
        metadata: None,
        thinking: None,
    })
}

/// Options whose meaning an Anthropic account cannot honour.
fn refuse_unmappable_options(request: &ResponsesRequest) -> Result<(), Unmappable> {
    const NO_STATE: &str = "the gateway keeps no response state; send the whole conversation in `input`";
    if request.previous_response_id.is_some() {
        return Err(Unmappable::new("previous_response_id", NO_STATE));
    }
    if request.conversation.as_ref().is_some_and(|c| !c.is_null()) {
        return Err(Unmappable::new("conversation", NO_STATE));
    }
    if request.background == Some(true) {
        return Err(Unmappable::new("background", NO_STATE));
    }
    if request.prompt.as_ref().is_some_and(|p| !p.is_null()) {
        return Err(Unmappable::new("prompt", "stored prompts live at OpenAI"));
    }
    if let Some(format) = request.text.as_ref().and_then(|text| text.format.as_ref())
        && format.kind != "text"
    {
        return Err(Unmappable::new(
            "text.format.type",
            format!("`{}` output has no Anthropic Messages counterpart", format.kind),
        ));
    }
    if request.temperature.is_some_and(|t| t > MAX_TEMPERATURE) {
        return Err(Unmappable::new("temperature", "Anthropic accepts a temperature of at most 1"));
    }
    Ok(())
}

/// The Anthropic request being assembled: system texts and alternating messages.
#[derive(Default)]
struct Conversation {
    system: Vec<String>,
    messages: Vec<am::Message>,
}

impl Conversation {
    /// Appends blocks as `role`, merging into the previous message when it has the same role:
    /// Anthropic requires user and assistant turns to alternate.
    fn push(&mut self, role: Role, blocks: Vec<ContentBlock>) {
        if blocks.is_empty() {
            return;
        }
        if let Some(last) = self.messages.last_mut()
            && last.role == role
            && let Content::Blocks(existing) = &mut last.content
        {
            existing.extend(blocks);
            return;
        }
        self.messages.push(am::Message { role, content: Content::Blocks(blocks) });
    }

    fn system_blocks(&self) -> Option<am::System> {
        (!self.system.is_empty()).then(|| {
            am::System::Blocks(
                self.system.iter().map(|text| ContentBlock::Text { text: text.clone(), cache_control: None }).collect(),
            )
        })
    }
}

fn convert_item(conversation: &mut Conversation, index: usize, item: InputItem) -> Result<(), Unmappable> {
    let path = format!("input[{index}]");
    match item {
        InputItem::Message(message) => convert_message(conversation, &path, message)?,
        InputItem::FunctionCall(call) => conversation.push(Role::Assistant, vec![tool_use_block(&path, call)?]),
        InputItem::FunctionCallOutput(output) => conversation.push(Role::User, vec![tool_result_block(&path, output)?]),
        // Encrypted OpenAI reasoning state: nothing an Anthropic model can read.
        InputItem::Reasoning(_) => {}
        InputItem::Other { kind } => {
            return Err(Unmappable::new(
                format!("{path}.type"),
                format!("`{kind}` items cannot be sent to an Anthropic account"),
            ));
        }
    }
    Ok(())
}

fn convert_message(conversation: &mut Conversation, path: &str, message: MessageItem) -> Result<(), Unmappable> {
    match message.role {
        MessageRole::System | MessageRole::Developer => {
            // Images are refused here: Anthropic's system prompt holds text only.
            let blocks = content_blocks(path, message.content, Role::Assistant)?;
            conversation.system.extend(blocks.into_iter().filter_map(|block| match block {
                ContentBlock::Text { text, .. } => Some(text),
                _ => None,
            }));
        }
        MessageRole::User => conversation.push(Role::User, content_blocks(path, message.content, Role::User)?),
        MessageRole::Assistant => {
            conversation.push(Role::Assistant, content_blocks(path, message.content, Role::Assistant)?);
        }
    }
    Ok(())
}

fn content_blocks(path: &str, content: MessageContent, role: Role) -> Result<Vec<ContentBlock>, Unmappable> {
    match content {
        MessageContent::Text(text) => Ok(text_block(text).into_iter().collect()),
        MessageContent::Parts(parts) => parts_to_blocks(&format!("{path}.content"), parts, role),
    }
}

/// Converts parts found at `path` (`input[2].content`, `input[4].output`), dropping empty text.
fn parts_to_blocks(path: &str, parts: Vec<ContentPart>, role: Role) -> Result<Vec<ContentBlock>, Unmappable> {
    parts
        .into_iter()
        .enumerate()
        .filter_map(|(j, part)| part_block(&format!("{path}[{j}]"), part, role).transpose())
        .collect()
}

fn part_block(path: &str, part: ContentPart, role: Role) -> Result<Option<ContentBlock>, Unmappable> {
    match part {
        ContentPart::InputText(part) | ContentPart::OutputText(part) => Ok(text_block(part.text)),
        ContentPart::Refusal(part) => Ok(text_block(part.refusal)),
        ContentPart::InputImage(image) if role == Role::User => image_block(path, image).map(Some),
        ContentPart::InputImage(_) => {
            Err(Unmappable::new(format!("{path}.type"), "Anthropic accepts images only in user turns"))
        }
        ContentPart::Other { kind } => Err(Unmappable::new(
            format!("{path}.type"),
            format!("`{kind}` content cannot be sent to an Anthropic account"),
        )),
    }
}

/// A text block, or none for empty text (Anthropic rejects empty text blocks).
fn text_block(text: String) -> Option<ContentBlock> {
    (!text.is_empty()).then_some(ContentBlock::Text { text, cache_control: None })
}

fn image_block(path: &str, image: ImagePart) -> Result<ContentBlock, Unmappable> {
    let Some(url) = image.image_url else {
        return Err(Unmappable::new(
            format!("{path}.file_id"),
            "files uploaded to OpenAI cannot be read by an Anthropic account",
        ));
    };
    let source = if let Some(data_url) = url.strip_prefix("data:") {
        base64_source(data_url).ok_or_else(|| {
            Unmappable::new(format!("{path}.image_url"), "only base64 `data:` URLs can be sent as image data")
        })?
    } else if url.starts_with("https://") || url.starts_with("http://") {
        am::ImageSource::Url { url }
    } else {
        return Err(Unmappable::new(format!("{path}.image_url"), "an image URL must be http(s) or a base64 data URL"));
    };
    Ok(ContentBlock::Image { source })
}

/// `image/png;base64,AAAA` (a data URL without its `data:`) → base64 image source.
fn base64_source(data_url: &str) -> Option<am::ImageSource> {
    let (media_type, data) = data_url.split_once(";base64,")?;
    (!media_type.is_empty())
        .then(|| am::ImageSource::Base64 { media_type: media_type.to_owned(), data: data.to_owned() })
}

fn tool_use_block(path: &str, call: FunctionCallItem) -> Result<ContentBlock, Unmappable> {
    let input = parse_arguments(&format!("{path}.arguments"), &call.arguments)?;
    Ok(ContentBlock::ToolUse { id: call.call_id, name: flat_name(call.namespace.as_deref(), &call.name), input })
}

/// A function call's `arguments` string as the JSON object Anthropic's `input` must be.
fn parse_arguments(path: &str, arguments: &str) -> Result<Value, Unmappable> {
    // Models emit an empty string for functions without parameters.
    if arguments.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(Unmappable::new(path, "function arguments must be a JSON object")),
        Err(e) => Err(Unmappable::new(path, format!("function arguments are not valid JSON: {e}"))),
    }
}

fn tool_result_block(path: &str, output: FunctionCallOutputItem) -> Result<ContentBlock, Unmappable> {
    let content = match output.output {
        FunctionOutput::Text(text) if text.is_empty() => None,
        FunctionOutput::Text(text) => Some(ToolResultContent::Text(text)),
        FunctionOutput::Parts(parts) => {
            Some(ToolResultContent::Blocks(parts_to_blocks(&format!("{path}.output"), parts, Role::User)?))
        }
    };
    Ok(ContentBlock::ToolResult { tool_use_id: output.call_id, content, is_error: false })
}

fn convert_tools(tools: Vec<ResponsesTool>) -> Result<Vec<am::Tool>, Unmappable> {
    let mut converted = Vec::new();
    for (index, tool) in tools.into_iter().enumerate() {
        let path = format!("tools[{index}]");
        match tool {
            ResponsesTool::Function(function) => add_tool(&mut converted, &path, anthropic_tool(function, None))?,
            ResponsesTool::Namespace(namespace) => add_namespace(&mut converted, &path, namespace)?,
            ResponsesTool::Other { kind } if DROPPED_TOOL_TYPES.contains(&kind.as_str()) => {}
            other => return Err(unsupported_tool(&path, other.kind())),
        }
    }
    Ok(converted)
}

fn add_namespace(tools: &mut Vec<am::Tool>, path: &str, namespace: NamespaceTool) -> Result<(), Unmappable> {
    for (index, member) in namespace.tools.into_iter().enumerate() {
        let member_path = format!("{path}.tools[{index}]");
        match member {
            ResponsesTool::Function(function) => {
                add_tool(tools, &member_path, anthropic_tool(function, Some(&namespace.name)))?;
            }
            other => return Err(unsupported_tool(&member_path, other.kind())),
        }
    }
    Ok(())
}

/// Adds a tool, refusing a name already taken (possible once namespaces are flattened).
fn add_tool(tools: &mut Vec<am::Tool>, path: &str, tool: am::Tool) -> Result<(), Unmappable> {
    if tools.iter().any(|existing| existing.name == tool.name) {
        return Err(Unmappable::new(
            format!("{path}.name"),
            format!("more than one tool is named `{}` once namespaces are flattened", tool.name),
        ));
    }
    tools.push(tool);
    Ok(())
}

fn anthropic_tool(function: FunctionTool, namespace: Option<&str>) -> am::Tool {
    // Anthropic requires a schema; a function without parameters takes an empty object.
    let schema = function.parameters.unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}}));
    am::Tool {
        kind: None,
        name: flat_name(namespace, &function.name),
        description: function.description,
        input_schema: Some(schema),
    }
}

fn unsupported_tool(path: &str, kind: &str) -> Unmappable {
    Unmappable::new(format!("{path}.type"), format!("`{kind}` tools cannot run on an Anthropic account"))
}

fn convert_tool_choice(
    choice: Option<ToolChoice>,
    parallel_tool_calls: Option<bool>,
    has_tools: bool,
) -> Result<Option<am::ToolChoice>, Unmappable> {
    let disable = (parallel_tool_calls == Some(false)).then_some(true);
    let converted = match choice {
        None if disable.is_some() => am::ToolChoice::Auto { disable_parallel_tool_use: disable },
        None => return Ok(None),
        Some(ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => am::ToolChoice::Auto { disable_parallel_tool_use: disable },
            "none" => am::ToolChoice::None,
            "required" => am::ToolChoice::Any { disable_parallel_tool_use: disable },
            other => return Err(Unmappable::new("tool_choice", format!("unknown tool_choice `{other}`"))),
        },
        Some(ToolChoice::Named(named)) => named_tool_choice(named, disable)?,
    };
    if has_tools {
        return Ok(Some(converted));
    }
    match converted {
        // Anthropic refuses a tool_choice without tools; with none left these mean the same.
        am::ToolChoice::Auto { .. } | am::ToolChoice::None => Ok(None),
        _ => Err(Unmappable::new("tool_choice", "forces a tool call, but no tool can run on an Anthropic account")),
    }
}

fn named_tool_choice(named: NamedToolChoice, disable: Option<bool>) -> Result<am::ToolChoice, Unmappable> {
    if named.kind != "function" {
        return Err(Unmappable::new(
            "tool_choice.type",
            format!("`{}` tool choices cannot be expressed for an Anthropic account", named.kind),
        ));
    }
    let name = named.name.ok_or_else(|| Unmappable::new("tool_choice.name", "a function tool_choice needs a name"))?;
    Ok(am::ToolChoice::Tool { name: flat_name(named.namespace.as_deref(), &name), disable_parallel_tool_use: disable })
}

// ---------------------------------------------------------------------------------------
// Response conversion
// ---------------------------------------------------------------------------------------

/// Anthropic Messages response JSON -> Responses `response` object JSON, with `model` set to
/// `model`. Tool names pass unchanged; see [`messages_response_to_responses_with`].
pub fn messages_response_to_responses(body: &[u8], model: &str) -> Result<Vec<u8>, String> {
    messages_response_to_responses_with(body, model, &Namespaces::default())
}

/// [`messages_response_to_responses`], splitting tool names flattened from the request's
/// namespace tools back into `name` and `namespace`.
pub fn messages_response_to_responses_with(
    body: &[u8],
    model: &str,
    namespaces: &Namespaces,
) -> Result<Vec<u8>, String> {
    let message: am::MessagesResponse =
        serde_json::from_slice(body).map_err(|e| format!("not an Anthropic Messages response: {e}"))?;
    let response = response_from_message(&message, model, namespaces, unix_now());
    serde_json::to_vec(&response).map_err(|e| e.to_string())
}

fn response_from_message(
    message: &am::MessagesResponse,
    model: &str,
    namespaces: &Namespaces,
    created_at: i64,
) -> ResponseObject {
    let base = id_base(&message.id);
    let incomplete = incomplete_reason(message.stop_reason.as_deref());
    let mut output = output_items(&message.content, base, namespaces);
    if incomplete.is_some()
        && let Some(last) = output.last_mut()
    {
        set_status(last, ItemStatus::Incomplete);
    }
    let mut response = in_progress_response(base, created_at, model);
    finish_response(&mut response, output, &message.usage, incomplete);
    response
}

/// Output items for Anthropic content: consecutive text blocks share one message item.
fn output_items(content: &[ContentBlock], base: &str, namespaces: &Namespaces) -> Vec<OutputItem> {
    let mut items: Vec<OutputItem> = Vec::new();
    for block in content {
        match block {
            ContentBlock::Text { text, .. } => match items.last_mut() {
                Some(OutputItem::Message(message)) => append_text(message, text),
                _ => items.push(message_item(item_id("msg", base, items.len()), text.clone(), ItemStatus::Completed)),
            },
            ContentBlock::ToolUse { id, name, input } => {
                let call_id = item_id("fc", base, items.len());
                let arguments = arguments_json(input);
                items.push(function_call_item(call_id, id, name, namespaces, arguments, ItemStatus::Completed));
            }
            // Thinking is never requested, and server-tool blocks need tools never offered.
            _ => {}
        }
    }
    items
}

fn append_text(message: &mut OutputMessage, text: &str) {
    if let Some(part) = message.content.first_mut() {
        part.text.push_str(text);
    }
}

fn message_item(id: String, text: String, status: ItemStatus) -> OutputItem {
    OutputItem::Message(OutputMessage {
        id,
        status,
        role: "assistant",
        content: vec![OutputText { text, annotations: Vec::new() }],
    })
}

fn function_call_item(
    id: String,
    call_id: &str,
    tool_name: &str,
    namespaces: &Namespaces,
    arguments: String,
    status: ItemStatus,
) -> OutputItem {
    let (name, namespace) = namespaces.resolve(tool_name);
    OutputItem::FunctionCall(OutputFunctionCall { id, status, call_id: call_id.to_owned(), name, namespace, arguments })
}

fn set_status(item: &mut OutputItem, status: ItemStatus) {
    match item {
        OutputItem::Message(message) => message.status = status,
        OutputItem::FunctionCall(call) => call.status = status,
    }
}

fn arguments_json(input: &Value) -> String {
    // Serialising a `Value` cannot fail.
    serde_json::to_string(input).unwrap_or_else(|_| "{}".to_owned())
}

/// The Anthropic message id without its `msg_` prefix; response and item ids derive from it.
fn id_base(message_id: &str) -> &str {
    message_id.strip_prefix("msg_").unwrap_or(message_id)
}

fn item_id(prefix: &str, base: &str, output_index: usize) -> String {
    format!("{prefix}_{base}_{output_index}")
}

/// Why a response stopping for `stop_reason` is `incomplete`; `None` when it is complete.
fn incomplete_reason(stop_reason: Option<&str>) -> Option<&'static str> {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => Some("max_output_tokens"),
        Some("refusal") => Some("content_filter"),
        _ => None,
    }
}

fn in_progress_response(base: &str, created_at: i64, model: &str) -> ResponseObject {
    ResponseObject {
        id: format!("resp_{base}"),
        object: "response",
        created_at,
        status: ResponseStatus::InProgress,
        error: None,
        incomplete_details: None,
        model: model.to_owned(),
        output: Vec::new(),
        usage: None,
    }
}

fn finish_response(
    response: &mut ResponseObject,
    output: Vec<OutputItem>,
    usage: &am::Usage,
    incomplete: Option<&'static str>,
) {
    response.status = if incomplete.is_some() { ResponseStatus::Incomplete } else { ResponseStatus::Completed };
    response.incomplete_details = incomplete.map(|reason| IncompleteDetails { reason });
    response.output = output;
    response.usage = Some(ResponseUsage::from_anthropic(usage));
}

/// The Responses error code closest to an Anthropic error type.
fn failure_code(anthropic_type: &str) -> String {
    match anthropic_type {
        "rate_limit_error" => "rate_limit_exceeded",
        "overloaded_error" => "server_is_overloaded",
        "api_error" => "server_error",
        other => other,
    }
    .to_owned()
}

// ---------------------------------------------------------------------------------------
// Stream conversion
// ---------------------------------------------------------------------------------------

/// Anthropic Messages stream -> Responses event stream.
pub struct ResponsesFromMessages {
    model: String,
    namespaces: Namespaces,
    /// The next event's `sequence_number`.
    sequence: u64,
    /// Set by `message_start`: the Anthropic id without `msg_`.
    base: Option<String>,
    created_at: i64,
    usage: am::Usage,
    stop_reason: Option<String>,
    /// Closed output items, in order; the open item's output index is their count.
    output: Vec<OutputItem>,
    open: Option<OpenItem>,
    /// What each Anthropic block index carries; blocks of other kinds are skipped.
    blocks: HashMap<usize, BlockKind>,
    /// A terminal event (`completed`, `incomplete`, `failed`) was written.
    finished: bool,
}

/// The output item being streamed.
enum OpenItem {
    Message { id: String, text: String },
    FunctionCall { id: String, call_id: String, tool_name: String, arguments: String },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    ToolUse,
}

impl ResponsesFromMessages {
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            namespaces: Namespaces::default(),
            sequence: 0,
            base: None,
            created_at: unix_now(),
            usage: am::Usage::default(),
            stop_reason: None,
            output: Vec::new(),
            open: None,
            blocks: HashMap::new(),
            finished: false,
        }
    }

    /// Splits tool names flattened from the request's namespace tools back into `name` and
    /// `namespace` (see [`Namespaces::from_request`]).
    #[must_use]
    pub fn with_namespaces(mut self, namespaces: Namespaces) -> Self {
        self.namespaces = namespaces;
        self
    }

    fn emit(&mut self, out: &mut Vec<u8>, event: &ResponsesStreamEvent) {
        let sequenced = Sequenced { event, sequence_number: self.sequence };
        self.sequence += 1;
        write_event(out, Some(event.name()), &sequenced);
    }

    fn base(&self) -> &str {
        self.base.as_deref().unwrap_or(UNKNOWN_ID)
    }

    fn handle(&mut self, event: am::StreamEvent, out: &mut Vec<u8>) {
        match event {
            am::StreamEvent::MessageStart { message } => self.start(&message.id, message.usage, out),
            am::StreamEvent::ContentBlockStart { index, content_block } => self.block_start(index, content_block, out),
            am::StreamEvent::ContentBlockDelta { index, delta } => self.block_delta(index, delta, out),
            am::StreamEvent::MessageDelta { delta, usage } => {
                self.stop_reason = delta.stop_reason.or(self.stop_reason.take());
                merge_usage(&mut self.usage, &usage);
            }
            am::StreamEvent::MessageStop => self.complete(out),
            am::StreamEvent::Error { error } => self.fail(&error, out),
            // Items close when the next one starts or the message ends, so that consecutive
            // text blocks share one message item.
            am::StreamEvent::ContentBlockStop { .. } | am::StreamEvent::Ping => {}
        }
    }

    fn start(&mut self, message_id: &str, usage: am::Usage, out: &mut Vec<u8>) {
        if self.base.is_some() {
            return;
        }
        self.base = Some(id_base(message_id).to_owned());
        self.usage = usage;
        let response = in_progress_response(self.base(), self.created_at, &self.model);
        self.emit(out, &ResponsesStreamEvent::Created { response: response.clone() });
        self.emit(out, &ResponsesStreamEvent::InProgress { response });
    }

    fn block_start(&mut self, index: usize, block: ContentBlock, out: &mut Vec<u8>) {
        if self.base.is_none() {
            // A stream without `message_start` still gets its opening events.
            self.start(UNKNOWN_ID, am::Usage::default(), out);
        }
        match block {
            ContentBlock::Text { text, .. } => {
                self.blocks.insert(index, BlockKind::Text);
                if !matches!(self.open, Some(OpenItem::Message { .. })) {
                    self.close_open(ItemStatus::Completed, out);
                    self.open_message(out);
                }
                self.text_delta(text, out);
            }
            ContentBlock::ToolUse { id, name, input } => {
                self.blocks.insert(index, BlockKind::ToolUse);
                self.close_open(ItemStatus::Completed, out);
                self.open_function_call(id, name, out);
                // Anthropic starts with `{}` and streams the input; take a complete one as is.
                if input.as_object().is_some_and(|fields| !fields.is_empty()) {
                    self.arguments_delta(arguments_json(&input), out);
                }
            }
            _ => {}
        }
    }

    fn block_delta(&mut self, index: usize, delta: am::Delta, out: &mut Vec<u8>) {
        match (self.blocks.get(&index), delta) {
            (Some(BlockKind::Text), am::Delta::TextDelta { text }) => self.text_delta(text, out),
            (Some(BlockKind::ToolUse), am::Delta::InputJsonDelta { partial_json }) => {
                self.arguments_delta(partial_json, out);
            }
            _ => {}
        }
    }

    fn open_message(&mut self, out: &mut Vec<u8>) {
        let output_index = self.output.len();
        let id = item_id("msg", self.base(), output_index);
        let item = OutputItem::Message(OutputMessage {
            id: id.clone(),
            status: ItemStatus::InProgress,
            role: "assistant",
            content: Vec::new(),
        });
        self.emit(out, &ResponsesStreamEvent::OutputItemAdded { output_index, item });
        let part = OutputText { text: String::new(), annotations: Vec::new() };
        let added =
            ResponsesStreamEvent::ContentPartAdded { item_id: id.clone(), output_index, content_index: 0, part };
        self.emit(out, &added);
        self.open = Some(OpenItem::Message { id, text: String::new() });
    }

    fn open_function_call(&mut self, call_id: String, tool_name: String, out: &mut Vec<u8>) {
        let output_index = self.output.len();
        let id = item_id("fc", self.base(), output_index);
        let item = function_call_item(
            id.clone(),
            &call_id,
            &tool_name,
            &self.namespaces,
            String::new(),
            ItemStatus::InProgress,
        );
        self.emit(out, &ResponsesStreamEvent::OutputItemAdded { output_index, item });
        self.open = Some(OpenItem::FunctionCall { id, call_id, tool_name, arguments: String::new() });
    }

    fn text_delta(&mut self, delta: String, out: &mut Vec<u8>) {
        let output_index = self.output.len();
        let Some(OpenItem::Message { id, text }) = &mut self.open else { return };
        if delta.is_empty() {
            return;
        }
        text.push_str(&delta);
        let event = ResponsesStreamEvent::OutputTextDelta {
            item_id: id.clone(),
            output_index,
            content_index: 0,
            delta,
            logprobs: Vec::new(),
        };
        self.emit(out, &event);
    }

    fn arguments_delta(&mut self, delta: String, out: &mut Vec<u8>) {
        let output_index = self.output.len();
        let Some(OpenItem::FunctionCall { id, arguments, .. }) = &mut self.open else { return };
        if delta.is_empty() {
            return;
        }
        arguments.push_str(&delta);
        let event = ResponsesStreamEvent::FunctionCallArgumentsDelta { item_id: id.clone(), output_index, delta };
        self.emit(out, &event);
    }

    /// Writes the open item's closing events and moves it to the output.
    fn close_open(&mut self, status: ItemStatus, out: &mut Vec<u8>) {
        let Some(open) = self.open.take() else { return };
        let item = match open {
            OpenItem::Message { id, text } => self.close_message(id, text, status, out),
            OpenItem::FunctionCall { id, call_id, tool_name, arguments } => {
                self.close_function_call(id, &call_id, &tool_name, arguments, status, out)
            }
        };
        let output_index = self.output.len();
        self.emit(out, &ResponsesStreamEvent::OutputItemDone { output_index, item: item.clone() });
        self.output.push(item);
    }

    fn close_message(&mut self, id: String, text: String, status: ItemStatus, out: &mut Vec<u8>) -> OutputItem {
        let output_index = self.output.len();
        let done = ResponsesStreamEvent::OutputTextDone {
            item_id: id.clone(),
            output_index,
            content_index: 0,
            text: text.clone(),
            logprobs: Vec::new(),
        };
        self.emit(out, &done);
        let part = OutputText { text: text.clone(), annotations: Vec::new() };
        self.emit(
            out,
            &ResponsesStreamEvent::ContentPartDone { item_id: id.clone(), output_index, content_index: 0, part },
        );
        message_item(id, text, status)
    }

    fn close_function_call(
        &mut self,
        id: String,
        call_id: &str,
        tool_name: &str,
        mut arguments: String,
        status: ItemStatus,
        out: &mut Vec<u8>,
    ) -> OutputItem {
        let output_index = self.output.len();
        if arguments.is_empty() {
            // A call without input streams no JSON; the whole response says `{}`.
            arguments = "{}".to_owned();
            let delta = ResponsesStreamEvent::FunctionCallArgumentsDelta {
                item_id: id.clone(),
                output_index,
                delta: arguments.clone(),
            };
            self.emit(out, &delta);
        }
        let done = ResponsesStreamEvent::FunctionCallArgumentsDone {
            item_id: id.clone(),
            output_index,
            arguments: arguments.clone(),
        };
        self.emit(out, &done);
        function_call_item(id, call_id, tool_name, &self.namespaces, arguments, status)
    }

    fn complete(&mut self, out: &mut Vec<u8>) {
        if self.base.is_none() {
            self.start(UNKNOWN_ID, am::Usage::default(), out);
        }
        let incomplete = incomplete_reason(self.stop_reason.as_deref());
        let status = if incomplete.is_some() { ItemStatus::Incomplete } else { ItemStatus::Completed };
        self.close_open(status, out);
        let mut response = in_progress_response(self.base(), self.created_at, &self.model);
        finish_response(&mut response, std::mem::take(&mut self.output), &self.usage, incomplete);
        let event = if incomplete.is_some() {
            ResponsesStreamEvent::Incomplete { response }
        } else {
            ResponsesStreamEvent::Completed { response }
        };
        self.emit(out, &event);
        self.finished = true;
    }

    fn fail(&mut self, error: &am::ErrorBody, out: &mut Vec<u8>) {
        let mut response = in_progress_response(self.base(), self.created_at, &self.model);
        response.status = ResponseStatus::Failed;
        response.error = Some(ResponseError { code: failure_code(&error.kind), message: error.message.clone() });
        response.output = std::mem::take(&mut self.output);
        self.emit(out, &ResponsesStreamEvent::Failed { response });
        self.finished = true;
    }
}

/// Folds a `message_delta` usage into the running one: output tokens are cumulative there,
/// and input counts appear only when Anthropic revises them.
fn merge_usage(total: &mut am::Usage, delta: &am::Usage) {
    if delta.output_tokens > 0 {
        total.output_tokens = delta.output_tokens;
    }
    if delta.input_tokens > 0 {
        total.input_tokens = delta.input_tokens;
    }
    if delta.cache_read_input_tokens.is_some() {
        total.cache_read_input_tokens = delta.cache_read_input_tokens;
    }
    if delta.cache_creation_input_tokens.is_some() {
        total.cache_creation_input_tokens = delta.cache_creation_input_tokens;
    }
}

impl StreamConverter for ResponsesFromMessages {
    fn event(&mut self, _name: Option<&str>, data: &[u8], out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        // Event types this module does not know carry nothing a Responses client could use.
        if let Ok(event) = serde_json::from_slice::<am::StreamEvent>(data) {
            self.handle(event, out);
        }
    }

    /// Everything terminal is written at `message_stop` or `error`; an unclean end writes
    /// nothing, so the relay's terminal error event is the only ending the client sees.
    fn finish(&mut self, _clean: bool, _out: &mut Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn convert(request: &Value) -> Value {
        let body = request_to_messages(&serde_json::to_vec(request).unwrap()).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    fn refused(request: &Value) -> Unmappable {
        request_to_messages(&serde_json::to_vec(request).unwrap()).unwrap_err()
    }

    fn with_input(input: Value) -> Value {
        json!({"model": "gpt-5", "input": input})
    }

    fn user_says(text: &str) -> Value {
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    }

    #[test]
    fn captured_codex_request_converts() {
        let body = include_bytes!("../../tests/fixtures/codex-responses-request.json");
        let converted: Value = serde_json::from_slice(&request_to_messages(body).unwrap()).unwrap();
        let system = converted["system"].as_array().unwrap();
        assert_eq!(system.len(), 3, "one block per developer text part");
        assert!(system[0]["text"].as_str().unwrap().starts_with("You are a coding agent"));
        assert!(system[2]["text"].as_str().unwrap().starts_with("<permissions instructions>"));
        let messages = converted["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1, "the two user items merge into one turn");
        assert_eq!(messages[0]["role"], "user");
        assert_eq!(messages[0]["content"][1]["text"], "say hi");
        let names: Vec<&str> =
            converted["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), 12, "web_search dropped, namespace members flattened: {names:?}");
        assert!(names.contains(&"exec_command"));
        assert!(names.contains(&"multi_agent_v1__spawn_agent"));
        assert!(!names.iter().any(|name| name.contains("web_search")));
        assert!(converted["tools"][0]["input_schema"]["properties"]["cmd"].is_object());
        assert_eq!(converted["tool_choice"], json!({"type": "auto"}));
        assert_eq!(converted["stream"], true);
        assert_eq!(converted["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(converted["model"], "gpt-5");
        assert!(converted.get("thinking").is_none() && converted.get("metadata").is_none());
        let namespaces = Namespaces::from_request(body);
        assert_eq!(
            namespaces.resolve("multi_agent_v1__wait_agent"),
            ("wait_agent".into(), Some("multi_agent_v1".into()))
        );
        assert_eq!(namespaces.resolve("exec_command"), ("exec_command".into(), None));
    }

    #[test]
    fn instructions_come_before_developer_and_system_items() {
        let mut request = with_input(json!([
            {"role": "developer", "content": "dev"},
            user_says("hi"),
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "late"}]},
        ]));
        request["instructions"] = json!("first");
        let converted = convert(&request);
        let system: Vec<&str> =
            converted["system"].as_array().unwrap().iter().map(|b| b["text"].as_str().unwrap()).collect();
        assert_eq!(system, ["first", "dev", "late"]);
        assert_eq!(converted["messages"], json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}]));
    }

    #[test]
    fn string_input_is_one_user_turn() {
        let converted = convert(&with_input(json!("hello")));
        assert_eq!(converted["messages"], json!([{"role": "user", "content": [{"type": "text", "text": "hello"}]}]));
        assert!(converted.get("system").is_none());
        assert!(converted.get("tool_choice").is_none());
    }

    #[test]
    fn images_map_by_url_kind() {
        let converted = convert(&with_input(json!([{"role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0"},
            {"type": "input_image", "image_url": "https://example.com/a.jpg", "detail": "auto"},
        ]}])));
        assert_eq!(
            converted["messages"][0]["content"],
            json!([
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            ])
        );
    }

    #[test]
    fn unreadable_images_and_files_are_refused_naming_the_part() {
        let part = |part: Value| {
            with_input(
                json!([user_says("x"), {"role": "user", "content": [{"type": "input_text", "text": "y"}, part]}]),
            )
        };
        let file = refused(&part(json!({"type": "input_file", "file_id": "file-1"})));
        assert_eq!(file.field, "input[1].content[1].type");
        assert!(file.message.contains("input_file"));
        let uploaded = refused(&part(json!({"type": "input_image", "file_id": "file-1"})));
        assert_eq!(uploaded.field, "input[1].content[1].file_id");
        let not_base64 = refused(&part(json!({"type": "input_image", "image_url": "data:image/png,abc"})));
        assert_eq!(not_base64.field, "input[1].content[1].image_url");
        let ftp = refused(&part(json!({"type": "input_image", "image_url": "ftp://x/y.png"})));
        assert_eq!(ftp.field, "input[1].content[1].image_url");
        let audio = refused(&part(json!({"type": "input_audio", "input_audio": {}})));
        assert_eq!(audio.field, "input[1].content[1].type");
    }

    #[test]
    fn images_outside_user_turns_are_refused() {
        let image = json!({"type": "input_image", "image_url": "https://example.com/a.png"});
        let system = refused(&with_input(json!([{"role": "developer", "content": [image.clone()]}, user_says("x")])));
        assert_eq!(system.field, "input[0].content[0].type");
        let assistant = refused(&with_input(json!([user_says("x"), {"role": "assistant", "content": [image]}])));
        assert_eq!(assistant.field, "input[1].content[0].type");
    }

    #[test]
    fn tool_call_turn_becomes_tool_use_and_tool_result() {
        let converted = convert(&with_input(json!([
            user_says("list files"),
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"},
            {"type": "function_call", "call_id": "call_2", "name": "get_goal", "arguments": ""},
            {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "none"}]},
            user_says("thanks"),
        ])));
        assert_eq!(
            converted["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "list files"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Looking."},
                    {"type": "tool_use", "id": "call_1", "name": "exec_command", "input": {"cmd": "ls"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_goal", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "a.txt"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "none"}]},
                    {"type": "text", "text": "thanks"},
                ]},
            ])
        );
    }

    #[test]
    fn namespaced_history_call_uses_the_flattened_name() {
        let converted = convert(&with_input(json!([
            user_says("spawn"),
            {"type": "function_call", "call_id": "c", "namespace": "multi_agent_v1", "name": "spawn_agent", "arguments": "{}"},
        ])));
        assert_eq!(converted["messages"][1]["content"][0]["name"], "multi_agent_v1__spawn_agent");
    }

    #[test]
    fn bad_arguments_are_refused_naming_them() {
        let call = |arguments: &str| {
            with_input(
                json!([user_says("x"), {"type": "function_call", "call_id": "c", "name": "f", "arguments": arguments}]),
            )
        };
        assert_eq!(refused(&call("{\"a\":")).field, "input[1].arguments");
        assert_eq!(refused(&call("[1,2]")).field, "input[1].arguments");
    }

    #[test]
    fn stateful_and_unknown_items_are_refused() {
        let reference = refused(&with_input(json!([user_says("x"), {"type": "item_reference", "id": "msg_1"}])));
        assert_eq!(reference.field, "input[1].type");
        assert!(reference.message.contains("item_reference"));
        let custom = refused(&with_input(
            json!([{"type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": ""}]),
        ));
        assert_eq!(custom.field, "input[0].type");
        let mut previous = with_input(json!("hi"));
        previous["previous_response_id"] = json!("resp_1");
        assert_eq!(refused(&previous).field, "previous_response_id");
        let mut background = with_input(json!("hi"));
        background["background"] = json!(true);
        assert_eq!(refused(&background).field, "background");
        assert_eq!(refused(&with_input(json!([{"role": "developer", "content": "only"}]))).field, "input");
    }

    #[test]
    fn web_search_is_dropped_and_hosted_tools_are_refused() {
        let mut request = with_input(json!("hi"));
        request["tools"] = json!([{"type": "web_search", "external_web_access": false}]);
        request["tool_choice"] = json!("auto");
        let converted = convert(&request);
        assert!(converted.get("tools").is_none() && converted.get("tool_choice").is_none());
        request["tool_choice"] = json!("required");
        assert_eq!(refused(&request).field, "tool_choice");
        for kind in [
            "file_search",
            "code_interpreter",
            "computer_use_preview",
            "image_generation",
            "mcp",
            "local_shell",
            "custom",
        ] {
            let mut request = with_input(json!("hi"));
            request["tools"] = json!([{"type": "function", "name": "f"}, {"type": kind, "name": "x"}]);
            let refusal = refused(&request);
            assert_eq!(refusal.field, "tools[1].type", "{kind}");
            assert!(refusal.message.contains(kind));
        }
    }

    #[test]
    fn namespace_members_are_flattened_and_checked() {
        let mut request = with_input(json!("hi"));
        request["tools"] = json!([
            {"type": "function", "name": "plain", "description": "d", "strict": true, "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}},
            {"type": "namespace", "name": "ns", "description": "group", "tools": [{"type": "function", "name": "inner"}]},
        ]);
        let converted = convert(&request);
        assert_eq!(
            converted["tools"],
            json!([
                {"name": "plain", "description": "d", "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
                {"name": "ns__inner", "input_schema": {"type": "object", "properties": {}}},
            ])
        );
        let members = request["tools"][1]["tools"].as_array_mut().unwrap();
        members.push(json!({"type": "web_search"}));
        assert_eq!(refused(&request).field, "tools[1].tools[1].type");
        request["tools"][1]["tools"][1] = json!({"type": "function", "name": "inner"});
        assert_eq!(refused(&request).field, "tools[1].tools[1].name");
    }

    #[test]
    fn tool_choice_and_parallel_calls_map() {
        let choice = |choice: Value, parallel: Option<bool>| {
            let mut request = with_input(json!("hi"));
            request["tools"] = json!([{"type": "function", "name": "f"}]);
            request["tool_choice"] = choice;
            if let Some(parallel) = parallel {
                request["parallel_tool_calls"] = json!(parallel);
            }
            convert(&request)["tool_choice"].clone()
        };
        assert_eq!(choice(json!("auto"), Some(true)), json!({"type": "auto"}));
        assert_eq!(choice(json!("none"), None), json!({"type": "none"}));
        assert_eq!(choice(json!("required"), Some(false)), json!({"type": "any", "disable_parallel_tool_use": true}));
        assert_eq!(choice(json!({"type": "function", "name": "f"}), None), json!({"type": "tool", "name": "f"}));
        assert_eq!(choice(Value::Null, Some(false)), json!({"type": "auto", "disable_parallel_tool_use": true}));
        let mut hosted = with_input(json!("hi"));
        hosted["tools"] = json!([{"type": "function", "name": "f"}]);
        hosted["tool_choice"] = json!({"type": "web_search_preview"});
        assert_eq!(refused(&hosted).field, "tool_choice.type");
    }

    #[test]
    fn sampling_limits_and_hints() {
        let mut request = with_input(json!("hi"));
        request["max_output_tokens"] = json!(100);
        request["temperature"] = json!(0.2);
        request["top_p"] = json!(0.9);
        request["reasoning"] = json!({"effort": "high", "summary": "auto"});
        request["store"] = json!(false);
        request["include"] = json!(["reasoning.encrypted_content"]);
        request["prompt_cache_key"] = json!("k");
        request["text"] = json!({"format": {"type": "text"}, "verbosity": "low"});
        request["truncation"] = json!("auto");
        request["user"] = json!("u");
        let converted = convert(&request);
        assert_eq!(converted["max_tokens"], 100);
        assert_eq!(converted["temperature"], 0.2);
        assert_eq!(converted["top_p"], 0.9);
        assert!(converted.get("thinking").is_none() && converted.get("stream").is_none());
        request["temperature"] = json!(1.5);
        assert_eq!(refused(&request).field, "temperature");
        request["temperature"] = json!(1.0);
        request["text"] = json!({"format": {"type": "json_schema", "name": "x", "schema": {}}});
        assert_eq!(refused(&request).field, "text.format.type");
    }

    fn anthropic_message(content: Value, stop_reason: &str, usage: Value) -> Value {
        json!({"id": "msg_01abc", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": content, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage})
    }

    fn to_responses(message: &Value, namespaces: &Namespaces) -> Value {
        let body = serde_json::to_vec(message).unwrap();
        serde_json::from_slice(&messages_response_to_responses_with(&body, "gpt-5", namespaces).unwrap()).unwrap()
    }

    fn text_and_tool_message() -> Value {
        anthropic_message(
            json!([
                {"type": "text", "text": "Let me "},
                {"type": "text", "text": "check."},
                {"type": "tool_use", "id": "toolu_1", "name": "multi_agent_v1__spawn_agent", "input": {"task": "t"}},
                {"type": "tool_use", "id": "toolu_2", "name": "exec_command", "input": {"cmd": "ls"}},
            ]),
            "tool_use",
            json!({"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5, "output_tokens": 20}),
        )
    }

    fn multi_agent_namespaces() -> Namespaces {
        Namespaces::from_request(
            br#"{"model":"m","tools":[{"type":"namespace","name":"multi_agent_v1","tools":[{"type":"function","name":"spawn_agent"}]}]}"#,
        )
    }

    #[test]
    fn whole_response_with_text_tool_calls_and_cached_usage() {
        let response = to_responses(&text_and_tool_message(), &multi_agent_namespaces());
        assert_eq!(response["id"], "resp_01abc");
        assert_eq!(response["object"], "response");
        assert_eq!(response["model"], "gpt-5");
        assert_eq!(response["status"], "completed");
        assert!(response["created_at"].as_i64().unwrap() > 0);
        assert!(response["error"].is_null() && response["incomplete_details"].is_null());
        assert_eq!(
            response["output"],
            json!([
                {"type": "message", "id": "msg_01abc_0", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Let me check.", "annotations": []}]},
                {"type": "function_call", "id": "fc_01abc_1", "status": "completed", "call_id": "toolu_1",
                 "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": "{\"task\":\"t\"}"},
                {"type": "function_call", "id": "fc_01abc_2", "status": "completed", "call_id": "toolu_2",
                 "name": "exec_command", "arguments": "{\"cmd\":\"ls\"}"},
            ])
        );
        assert_eq!(
            response["usage"],
            json!({"input_tokens": 115, "input_tokens_details": {"cached_tokens": 100}, "output_tokens": 20,
                   "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 135})
        );
        let plain = to_responses(&text_and_tool_message(), &Namespaces::default());
        assert_eq!(plain["output"][1]["name"], "multi_agent_v1__spawn_agent");
        assert!(plain["output"][1].get("namespace").is_none());
    }

    #[test]
    fn max_tokens_makes_the_response_incomplete() {
        let message = anthropic_message(
            json!([{"type": "text", "text": "cut"}]),
            "max_tokens",
            json!({"input_tokens": 1, "output_tokens": 2}),
        );
        let response = to_responses(&message, &Namespaces::default());
        assert_eq!(response["status"], "incomplete");
        assert_eq!(response["incomplete_details"], json!({"reason": "max_output_tokens"}));
        assert_eq!(response["output"][0]["status"], "incomplete");
        assert!(messages_response_to_responses(b"{\"type\":\"error\"}", "m").is_err());
    }

    #[test]
    fn thinking_blocks_are_skipped() {
        let message = anthropic_message(
            json!([{"type": "thinking", "thinking": "hmm", "signature": "s"}, {"type": "text", "text": "a"}]),
            "end_turn",
            json!({"input_tokens": 1, "output_tokens": 2}),
        );
        let response = to_responses(&message, &Namespaces::default());
        assert_eq!(response["output"].as_array().unwrap().len(), 1);
        assert_eq!(response["output"][0]["id"], "msg_01abc_0");
    }

    /// Parses written SSE into (event name, data), checking the `event:` line matches the
    /// payload's type and sequence numbers count from 0.
    fn parse_sse(out: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(out).unwrap();
        let events: Vec<(String, Value)> = text
            .split("\n\n")
            .filter(|chunk| !chunk.is_empty())
            .map(|chunk| {
                let (event_line, data_line) = chunk.split_once('\n').unwrap();
                let name = event_line.strip_prefix("event: ").unwrap().to_owned();
                let data: Value = serde_json::from_str(data_line.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name.as_str());
                (name, data)
            })
            .collect();
        for (expected, (_, data)) in events.iter().enumerate() {
            assert_eq!(data["sequence_number"], expected);
        }
        events
    }

    fn feed(converter: &mut ResponsesFromMessages, events: &[am::StreamEvent]) -> Vec<u8> {
        let mut out = Vec::new();
        for event in events {
            converter.event(Some(event.name()), &serde_json::to_vec(event).unwrap(), &mut out);
        }
        out
    }

    /// The Anthropic stream that delivers `message`, text and JSON split into `chunk`-char deltas.
    fn stream_of(message: &am::MessagesResponse, chunk: usize) -> Vec<am::StreamEvent> {
        use am::StreamEvent as E;
        let mut start = message.clone();
        start.content.clear();
        start.stop_reason = None;
        start.usage.output_tokens = 1;
        let mut events = vec![E::MessageStart { message: start }, E::Ping];
        for (index, block) in message.content.iter().enumerate() {
            let (first, deltas): (ContentBlock, Vec<am::Delta>) = match block {
                ContentBlock::Text { text, .. } => (
                    ContentBlock::Text { text: String::new(), cache_control: None },
                    chunks(text, chunk).into_iter().map(|text| am::Delta::TextDelta { text }).collect(),
                ),
                ContentBlock::ToolUse { id, name, input } => (
                    ContentBlock::ToolUse { id: id.clone(), name: name.clone(), input: json!({}) },
                    chunks(&input.to_string(), chunk)
                        .into_iter()
                        .map(|partial_json| am::Delta::InputJsonDelta { partial_json })
                        .collect(),
                ),
                other => (other.clone(), Vec::new()),
            };
            events.push(E::ContentBlockStart { index, content_block: first });
            events.extend(deltas.into_iter().map(|delta| E::ContentBlockDelta { index, delta }));
            events.push(E::ContentBlockStop { index });
        }
        let usage = am::Usage { output_tokens: message.usage.output_tokens, ..am::Usage::default() };
        let delta = am::MessageDeltaBody { stop_reason: message.stop_reason.clone(), stop_sequence: None };
        events.extend([E::MessageDelta { delta, usage }, E::MessageStop]);
        events
    }

    fn chunks(text: &str, size: usize) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        chars.chunks(size.max(1)).map(|piece| piece.iter().collect()).collect()
    }

    #[test]
    fn stream_with_text_then_tool_call_writes_the_responses_sequence() {
        let message: am::MessagesResponse = serde_json::from_value(text_and_tool_message()).unwrap();
        let mut converter = ResponsesFromMessages::new("gpt-5").with_namespaces(multi_agent_namespaces());
        let mut out = feed(&mut converter, &stream_of(&message, 4));
        converter.finish(true, &mut out);
        let events = parse_sse(&out);
        let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        let mut expected = vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
        ];
        expected.extend(["response.output_text.delta"; 4]); // "Let ", "me ", "chec", "k."
        expected.extend([
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
        ]);
        expected.extend(["response.function_call_arguments.delta"; 3]); // {"task":"t"} in 4-char pieces
        expected.extend([
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
        ]);
        expected.extend(["response.function_call_arguments.delta"; 3]);
        expected.extend(["response.function_call_arguments.done", "response.output_item.done", "response.completed"]);
        assert_eq!(names, expected);
        assert_eq!(events[0].1["response"]["status"], "in_progress");
        assert!(events[0].1["response"]["usage"].is_null());
        assert_eq!(
            events[2].1["item"],
            json!({"type": "message", "id": "msg_01abc_0", "status": "in_progress", "role": "assistant", "content": []})
        );
        let added_call = &events[11].1;
        assert_eq!(added_call["output_index"], 1);
        assert_eq!(added_call["item"]["arguments"], "");
        assert_eq!(added_call["item"]["namespace"], "multi_agent_v1");
        let text_done = &events[8].1;
        assert_eq!(
            (text_done["text"].as_str(), text_done["item_id"].as_str()),
            (Some("Let me check."), Some("msg_01abc_0"))
        );
        let completed = &events.last().unwrap().1["response"];
        let whole = to_responses(&text_and_tool_message(), &multi_agent_namespaces());
        assert_eq!(completed["output"], whole["output"]);
        assert_eq!(completed["usage"], whole["usage"]);
        assert_eq!(completed["id"], whole["id"]);
        assert_eq!(completed["status"], "completed");
    }

    #[test]
    fn stream_stopped_by_max_tokens_is_incomplete() {
        let message = anthropic_message(
            json!([{"type": "text", "text": "cut off"}]),
            "max_tokens",
            json!({"input_tokens": 3, "output_tokens": 9}),
        );
        let message: am::MessagesResponse = serde_json::from_value(message).unwrap();
        let events = parse_sse(&feed(&mut ResponsesFromMessages::new("gpt-5"), &stream_of(&message, 3)));
        let (name, last) = events.last().unwrap();
        assert_eq!(name, "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(last["response"]["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(last["response"]["output"][0]["status"], "incomplete");
        assert_eq!(last["response"]["usage"]["output_tokens"], 9);
    }

    #[test]
    fn stream_error_fails_the_response_and_ends_it() {
        let message: am::MessagesResponse = serde_json::from_value(text_and_tool_message()).unwrap();
        let events = stream_of(&message, 100);
        let mut converter = ResponsesFromMessages::new("gpt-5");
        let mut out = feed(&mut converter, &events[..5]);
        let error = am::StreamEvent::Error {
            error: am::ErrorBody { kind: "overloaded_error".into(), message: "Overloaded".into() },
        };
        out.extend(feed(&mut converter, &[error]));
        let after = feed(&mut converter, &events[5..]);
        assert!(after.is_empty(), "nothing follows response.failed");
        converter.finish(false, &mut out);
        let written = parse_sse(&out);
        let (name, failed) = written.last().unwrap();
        assert_eq!(name, "response.failed");
        assert_eq!(failed["response"]["status"], "failed");
        assert_eq!(failed["response"]["error"], json!({"code": "server_is_overloaded", "message": "Overloaded"}));
        assert!(!written.iter().any(|(name, _)| name == "response.completed"));
    }

    #[test]
    fn unclean_end_writes_nothing_more_and_ping_writes_nothing() {
        let message: am::MessagesResponse = serde_json::from_value(text_and_tool_message()).unwrap();
        let events = stream_of(&message, 100);
        let mut converter = ResponsesFromMessages::new("gpt-5");
        assert!(feed(&mut converter, &[am::StreamEvent::Ping]).is_empty());
        let written = feed(&mut converter, &events[..4]);
        let mut tail = Vec::new();
        converter.finish(false, &mut tail);
        assert!(tail.is_empty());
        assert!(!std::str::from_utf8(&written).unwrap().contains("response.completed"));
    }

    fn arg_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            "\\PC{0,12}".prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from)
        ]
    }

    fn arguments() -> impl Strategy<Value = serde_json::Map<String, Value>> {
        prop::collection::btree_map("[a-z]{1,6}", arg_value(), 0..4).prop_map(|args| args.into_iter().collect())
    }

    fn content_block() -> impl Strategy<Value = ContentBlock> {
        prop_oneof![
            "\\PC{0,40}".prop_map(|text| ContentBlock::Text { text, cache_control: None }),
            ("[A-Za-z0-9]{4,10}", "[a-z_]{1,16}", arguments()).prop_map(|(id, name, input)| ContentBlock::ToolUse {
                id: format!("toolu_{id}"),
                name,
                input: Value::Object(input),
            }),
        ]
    }

    fn anthropic_response() -> impl Strategy<Value = am::MessagesResponse> {
        let usage = (0..100_000u64, 0..10_000u64, prop::option::of(0..50_000u64), prop::option::of(0..5_000u64));
        let stop = prop_oneof![Just("end_turn"), Just("tool_use"), Just("max_tokens")];
        (prop::collection::vec(content_block(), 0..6), usage, stop).prop_map(|(content, usage, stop)| {
            am::MessagesResponse {
                id: "msg_01prop".into(),
                kind: "message".into(),
                role: Role::Assistant,
                model: "claude".into(),
                content,
                stop_reason: Some(stop.into()),
                stop_sequence: None,
                usage: am::Usage {
                    input_tokens: usage.0,
                    output_tokens: usage.1,
                    cache_read_input_tokens: usage.2,
                    cache_creation_input_tokens: usage.3,
                },
            }
        })
    }

    /// A generated Responses input item, with what conversion must keep of it.
    #[derive(Debug, Clone)]
    enum GenItem {
        User(String),
        Assistant(String),
        Developer(String),
        Call { call_id: String, name: String, arguments: serde_json::Map<String, Value> },
        Output { call_id: String, text: String },
    }

    impl GenItem {
        fn to_json(&self) -> Value {
            match self {
                Self::User(text) => user_says(text),
                Self::Assistant(text) => {
                    json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]})
                }
                Self::Developer(text) => json!({"type": "message", "role": "developer", "content": text}),
                Self::Call { call_id, name, arguments } => {
                    json!({"type": "function_call", "call_id": call_id, "name": name,
                    "arguments": Value::Object(arguments.clone()).to_string()})
                }
                Self::Output { call_id, text } => {
                    json!({"type": "function_call_output", "call_id": call_id, "output": text})
                }
            }
        }
    }

    fn gen_item() -> impl Strategy<Value = GenItem> {
        prop_oneof![
            "\\PC{1,30}".prop_map(GenItem::User),
            "\\PC{1,30}".prop_map(GenItem::Assistant),
            "\\PC{1,30}".prop_map(GenItem::Developer),
            ("call_[A-Za-z0-9]{1,8}", "[a-z][a-z_]{0,10}", arguments())
                .prop_map(|(call_id, name, arguments)| GenItem::Call { call_id, name, arguments }),
            ("call_[A-Za-z0-9]{1,8}", "\\PC{1,30}").prop_map(|(call_id, text)| GenItem::Output { call_id, text }),
        ]
    }

    /// Every block of the converted messages, in order.
    fn blocks_of(converted: &Value) -> Vec<Value> {
        converted["messages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["content"].as_array().unwrap().clone())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn streamed_response_matches_the_whole_response(message in anthropic_response(), chunk in 1usize..8) {
            let mut converter = ResponsesFromMessages::new("gpt-5");
            let mut out = feed(&mut converter, &stream_of(&message, chunk));
            converter.finish(true, &mut out);
            let events = parse_sse(&out);
            let (name, last) = events.last().unwrap();
            let whole = to_responses(&serde_json::to_value(&message).unwrap(), &Namespaces::default());
            let expected_name = if message.stop_reason.as_deref() == Some("max_tokens") { "response.incomplete" } else { "response.completed" };
            prop_assert_eq!(name.as_str(), expected_name);
            prop_assert_eq!(&last["response"]["output"], &whole["output"]);
            prop_assert_eq!(&last["response"]["usage"], &whole["usage"]);
            prop_assert_eq!(&last["response"]["status"], &whole["status"]);
            // Deltas add up to what each item's done event reports.
            for (_, done) in events.iter().filter(|(name, _)| name == "response.output_item.done") {
                let item_id = done["item"]["id"].clone();
                let streamed: String = events
                    .iter()
                    .filter(|(name, data)| name.ends_with(".delta") && data["item_id"] == item_id)
                    .map(|(_, data)| data["delta"].as_str().unwrap())
                    .collect();
                let final_text = done["item"]["content"][0]["text"].as_str().or(done["item"]["arguments"].as_str()).unwrap();
                prop_assert_eq!(streamed.as_str(), final_text);
            }
        }

        #[test]
        fn converted_requests_keep_every_text_call_and_tool(
            items in prop::collection::vec(gen_item(), 0..10),
            tools in prop::collection::btree_set("[a-z][a-z_]{0,10}", 0..4),
        ) {
            let mut all = vec![GenItem::User("start".into())];
            all.extend(items);
            let mut request = with_input(Value::Array(all.iter().map(GenItem::to_json).collect()));
            request["tools"] = tools.iter().map(|name| json!({"type": "function", "name": name, "parameters": {"type": "object"}})).collect();
            let converted = convert(&request);

            let roles: Vec<&str> = converted["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
            prop_assert!(roles.windows(2).all(|pair| pair[0] != pair[1]), "roles alternate: {:?}", roles);
            let blocks = blocks_of(&converted);
            let texts: Vec<&str> = blocks.iter().filter(|b| b["type"] == "text").map(|b| b["text"].as_str().unwrap()).collect();
            let expected_texts: Vec<&str> = all.iter().filter_map(|item| match item {
                GenItem::User(text) | GenItem::Assistant(text) => Some(text.as_str()),
                _ => None,
            }).collect();
            prop_assert_eq!(texts, expected_texts);
            let system: Vec<&str> = converted["system"].as_array().map(|s| s.iter().map(|b| b["text"].as_str().unwrap()).collect()).unwrap_or_default();
            let expected_system: Vec<&str> = all.iter().filter_map(|item| match item {
                GenItem::Developer(text) => Some(text.as_str()),
                _ => None,
            }).collect();
            prop_assert_eq!(system, expected_system);
            let uses: Vec<Value> = blocks.iter().filter(|b| b["type"] == "tool_use").cloned().collect();
            let expected_uses: Vec<Value> = all.iter().filter_map(|item| match item {
                GenItem::Call { call_id, name, arguments } => Some(json!({"type": "tool_use", "id": call_id, "name": name, "input": arguments})),
                _ => None,
            }).collect();
            prop_assert_eq!(uses, expected_uses);
            let results: Vec<Value> = blocks.iter().filter(|b| b["type"] == "tool_result").cloned().collect();
            let expected_results: Vec<Value> = all.iter().filter_map(|item| match item {
                GenItem::Output { call_id, text } => Some(json!({"type": "tool_result", "tool_use_id": call_id, "content": text})),
                _ => None,
            }).collect();
            prop_assert_eq!(results, expected_results);
            let names: Vec<&str> = converted["tools"].as_array().map(|t| t.iter().map(|tool| tool["name"].as_str().unwrap()).collect()).unwrap_or_default();
            prop_assert_eq!(names, tools.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}
