//! The admin "test this account" request: one small streamed prompt through that account
//! alone (Messages, or `streamGenerateContent` for a Gemini account), outside scheduling and
//! slots. A success also returns an account in the error state to service (the credential
//! evidently works again).

use std::time::{Duration, Instant};

use domain::{AccountStatus, AccountTestResult};
use futures_util::StreamExt;
use http::HeaderMap;
use serde_json::json;

use super::{Gateway, anthropic, claude_code, code_assist, codex, gemini, openai};
use crate::schedule::map_model;
use crate::usage::SseLineBuffer;

const DEFAULT_TEST_MODEL: &str = "claude-sonnet-4-5";
/// The default for Gemini accounts, which are tested on `streamGenerateContent`.
const DEFAULT_GEMINI_TEST_MODEL: &str = "gemini-2.5-flash";
const DEFAULT_OPENAI_TEST_MODEL: &str = "gpt-5.1";
const TEST_PROMPT: &str = "Reply with one short friendly sentence.";
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest answer text kept.
const MAX_TEXT: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("account not found")]
    NotFound,
    #[error("model `{0}` is not served by this account")]
    ModelNotServed(String),
}

impl Gateway {
    /// Sends a test prompt through account `id` with `model` (default: the first model its
    /// mapping names, else a current model of its platform).
    pub async fn test_account(&self, id: i64, model: Option<String>) -> Result<AccountTestResult, TestError> {
        let snap = self.snapshot.current();
        let account = snap.accounts.get(&id).ok_or(TestError::NotFound)?;
        let platform = account.platform;
        let is_gemini = platform == domain::Platform::Gemini;
        let model = model.filter(|m| !m.trim().is_empty()).unwrap_or_else(|| {
            account.model_mapping.keys().find(|k| !k.ends_with('*')).cloned().unwrap_or_else(|| {
                match platform {
                    domain::Platform::Gemini => DEFAULT_GEMINI_TEST_MODEL,
                    domain::Platform::Openai => DEFAULT_OPENAI_TEST_MODEL,
                    domain::Platform::Anthropic => DEFAULT_TEST_MODEL,
                }
                .into()
            })
        });
        let upstream_model =
            map_model(&account.model_mapping, &model).ok_or_else(|| TestError::ModelNotServed(model.clone()))?;
        let started = Instant::now();
        let mut result =
            AccountTestResult { success: false, status: None, model, latency_ms: 0, text: String::new(), error: None };
        let client = match self.client_for(account) {
            Ok(client) => client,
            Err(e) => {
                result.error = Some(format!("the account's proxy cannot be used: {}", e.without_url()));
                return Ok(result);
            }
        };
        // Shaped as any other (non-Claude-Code, non-Codex) client's request on this account.
        let none = HeaderMap::new();
        let cfg = &self.config;
        let request = match (platform, account.oauth.is_some()) {
            (domain::Platform::Gemini, oauth) => {
                let body = json!({
                    "contents": [{"role": "user", "parts": [{"text": TEST_PROMPT}]}],
                    "generationConfig": {"maxOutputTokens": 64},
                })
                .to_string();
                let action = super::gemini::GeminiAction::StreamGenerate;
                if oauth {
                    let project = account.oauth.as_ref().and_then(|o| o.project_id.as_deref()).unwrap_or_default();
                    let base = super::upstream_base(account, &cfg.code_assist_base_url);
                    let shaped =
                        code_assist::body(body.as_bytes(), action, &upstream_model, project).unwrap_or_default();
                    client
                        .post(code_assist::url(base, action, Some("alt=sse")))
                        .headers(code_assist::headers(&none, account))
                        .body(shaped)
                } else {
                    let path = format!("/v1beta/models/{upstream_model}:streamGenerateContent");
                    client
                        .post(gemini::url(account, &cfg.gemini_base_url, &path, Some("alt=sse")))
                        .headers(gemini::headers(&none, account))
                        .body(body)
                }
            }
            (domain::Platform::Openai, oauth) => {
                let body = json!({"model": upstream_model, "input": TEST_PROMPT, "stream": true});
                let raw = axum::body::Bytes::from(body.to_string());
                if oauth {
                    client
                        .post(codex::url(account, &cfg.chatgpt_base_url, ""))
                        .headers(codex::headers(&none, account))
                        .body(codex::body(&raw, &upstream_model, &cfg.codex_instructions))
                } else {
                    client
                        .post(openai::url(account, &cfg.openai_base_url, "/v1/responses"))
                        .headers(openai::headers(&none, account))
                        .body(raw)
                }
            }
            (domain::Platform::Anthropic, oauth) => {
                let body = json!({
                    "model": upstream_model,
                    "max_tokens": 64,
                    "stream": true,
                    "messages": [{"role": "user", "content": TEST_PROMPT}],
                });
                if oauth {
                    let raw = axum::body::Bytes::from(body.to_string());
                    let base = super::upstream_base(account, &cfg.anthropic_base_url);
                    let headers =
                        claude_code::headers(&none, anthropic::forwarded(&none), account, &upstream_model, false);
                    let shaped = claude_code::body(&raw, &body, &none, account, &upstream_model, true, false);
                    client
                        .post(format!("{base}/v1/messages?{}", claude_code::query(None)))
                        .headers(headers)
                        .body(shaped)
                } else {
                    client
                        .post(anthropic::url(account, &cfg.anthropic_base_url, "/v1/messages", None))
                        .headers(anthropic::headers(&none, account))
                        .body(body.to_string())
                }
            }
        };
        let request = request.timeout(TEST_TIMEOUT);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                result.error = Some(format!("no answer from the upstream: {}", e.without_url()));
                result.latency_ms = elapsed_ms(started);
                return Ok(result);
            }
        };
        let status = response.status();
        result.status = Some(status.as_u16());
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            result.error = Some(format!("upstream answered {status}: {}", body.chars().take(500).collect::<String>()));
            result.latency_ms = elapsed_ms(started);
            return Ok(result);
        }
        let mut lines = SseLineBuffer::default();
        let mut stream = response.bytes_stream();
        let mut stream_error = None;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    stream_error = Some(format!("the stream broke: {}", e.without_url()));
                    break;
                }
            };
            lines.push(&chunk, |event| {
                let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(event.data) else { return };
                // Code Assist wraps each chunk.
                if let Some(inner) = value.get_mut("response").filter(|r| r.get("candidates").is_some()) {
                    value = inner.take();
                }
                // Anthropic `content_block_delta`, a Gemini chunk's first part, or an OpenAI
                // Responses `response.output_text.delta`.
                let openai_delta = (value.get("type").and_then(|t| t.as_str()) == Some("response.output_text.delta"))
                    .then(|| value.get("delta"))
                    .flatten();
                let text = value
                    .pointer("/delta/text")
                    .or_else(|| value.pointer("/candidates/0/content/parts/0/text"))
                    .or(openai_delta);
                if let Some(text) = text.and_then(|t| t.as_str())
                    && result.text.len() < MAX_TEXT
                {
                    result.text.push_str(text);
                }
                if event.event == Some("error") || (is_gemini && value.get("error").is_some_and(|e| e.is_object())) {
                    let message = value.pointer("/error/message").and_then(|m| m.as_str()).unwrap_or("error event");
                    stream_error = Some(message.to_owned());
                }
            });
        }
        result.latency_ms = elapsed_ms(started);
        result.error = stream_error;
        result.success = result.error.is_none();
        if result.success && account.status == AccountStatus::Error {
            self.recover(id).await;
        }
        Ok(result)
    }

    async fn recover(&self, id: i64) {
        if let Err(e) = self.store.set_account_status(id, "active", "").await {
            tracing::error!(error = %e, account_id = id, "returning a tested account to service failed");
            return;
        }
        tracing::info!(account_id = id, "account test succeeded; the account is back in service");
        self.snapshot.update(|snap| {
            if let Some(entry) = snap.accounts.get_mut(&id) {
                entry.status = AccountStatus::Active;
            }
        });
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
