//! The client-facing routes: Anthropic `POST /v1/messages` and `/v1/messages/count_tokens`,
//! OpenAI `POST /v1/chat/completions` and `/v1/responses` (with their aliases), and
//! `GET /v1/models`. The handler checks the key and the body, then hands the request to the
//! relay task and returns whatever head it produces ([`dispatch`], which the Gemini routes
//! share).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::relay::{self, Endpoint, Job, Translation};
use super::sink::Sink;
use super::{Gateway, error_response, read_body, request_id};
use crate::auth::{self, Caller};
use crate::error::{Protocol, ProxyError};
use crate::snapshot::{GroupEntry, Snapshot};
use crate::sticky;

/// A refused request's body is read up to this much (and this long) before answering.
const DRAIN_LIMIT: usize = 1024 * 1024;
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Served to OpenAI groups when no account names its models.
const BUILT_IN_OPENAI_MODELS: &[(&str, &str)] = &[
    ("gpt-5.2", "GPT-5.2"),
    ("gpt-5.2-codex", "GPT-5.2 Codex"),
    ("gpt-5.1-codex-max", "GPT-5.1 Codex Max"),
    ("gpt-5.1-codex", "GPT-5.1 Codex"),
    ("gpt-5.1", "GPT-5.1"),
    ("gpt-5.1-codex-mini", "GPT-5.1 Codex mini"),
    ("gpt-5", "GPT-5"),
];

/// Served to Anthropic groups when no account names its models.
const BUILT_IN_MODELS: &[(&str, &str)] = &[
    ("claude-opus-4-5-20251101", "Claude Opus 4.5"),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5"),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1"),
    ("claude-sonnet-4-20250514", "Claude Sonnet 4"),
];

pub(super) async fn messages_handler(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    handle(gw, req, Endpoint::Messages).await
}

pub(super) async fn count_tokens_handler(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    handle(gw, req, Endpoint::CountTokens).await
}

pub(super) async fn chat_handler(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    handle(gw, req, Endpoint::ChatCompletions).await
}

pub(super) async fn responses_handler(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    handle(gw, req, Endpoint::Responses).await
}

/// `GET /v1/responses`: Codex CLI tries a WebSocket first. Until a WebSocket relay exists,
/// say so at once (426) so it falls back to HTTP without waiting.
pub(super) async fn responses_socket_handler(req: Request) -> Response {
    let rid = request_id(req.headers());
    let upgrade = req.headers().get(http::header::UPGRADE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let err = if upgrade.eq_ignore_ascii_case("websocket") {
        ProxyError::UpgradeRequired("WebSocket transport is not supported; use HTTP POST".into())
    } else {
        ProxyError::NotFound("use POST for /v1/responses".into())
    };
    error_response(Protocol::OpenAi, &err, &rid)
}

fn authenticate(gw: &Gateway, req: &Request) -> Result<Caller, ProxyError> {
    let presented = auth::presented_key(req.headers(), req.uri().query(), false);
    Ok(auth::authenticate(&gw.snapshot.current(), presented, OffsetDateTime::now_utc())?)
}

async fn handle(gw: Arc<Gateway>, req: Request, endpoint: Endpoint) -> Response {
    let started = Instant::now();
    let started_at = OffsetDateTime::now_utc();
    let rid = request_id(req.headers());
    let prepared = prepare(&gw, req, endpoint, started, started_at, rid.clone()).await;
    dispatch(gw, endpoint.protocol(), prepared, started, &rid).await
}

/// Hands a prepared job to its relay task and returns the response head that task produces;
/// a request refused while preparing (the error, and whether part of its body is still
/// unread) is answered in `protocol`'s shape.
pub(super) async fn dispatch(
    gw: Arc<Gateway>,
    protocol: Protocol,
    prepared: Result<Job, (ProxyError, bool)>,
    started: Instant,
    rid: &str,
) -> Response {
    let job = match prepared {
        Ok(job) => job,
        Err((e, body_left_unread)) => {
            let mut res = error_response(protocol, &e, rid);
            if let Some(value) = super::overhead_value(started.elapsed()) {
                res.headers_mut().insert(super::OVERHEAD_HEADER, value);
            }
            if body_left_unread {
                // The connection cannot be reused with part of a body still in it; say so
                // rather than close it under the client.
                res.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            }
            return res;
        }
    };
    let (sink, head) = Sink::new();
    gw.tasks.spawn(relay::drive(Arc::clone(&gw), job, sink));
    match head.await {
        Ok(res) => res,
        Err(_) => {
            tracing::error!("the relay task ended without an answer");
            error_response(protocol, &ProxyError::Internal, rid)
        }
    }
}

/// Reads (and drops) the body of a refused request, up to a reasonable size, so the
/// connection stays usable. `false`: some of it is still unread.
pub(super) async fn drain(body: axum::body::Body) -> bool {
    matches!(tokio::time::timeout(DRAIN_TIMEOUT, axum::body::to_bytes(body, DRAIN_LIMIT)).await, Ok(Ok(_)))
}

async fn prepare(
    gw: &Gateway,
    req: Request,
    endpoint: Endpoint,
    started: Instant,
    started_at: OffsetDateTime,
    request_id: String,
) -> Result<Job, (ProxyError, bool)> {
    let refused = authenticate(gw, &req);
    let (parts, body) = req.into_parts();
    let caller = match refused {
        Ok(caller) => caller,
        Err(e) => return Err((e, !drain(body).await)),
    };
    let body = read_body(body, &parts.headers, gw.config.max_body_size).await.map_err(|e| {
        let unread = matches!(e, ProxyError::TooLarge { .. });
        (e, unread)
    })?;
    let translation = if caller.group.platform == endpoint.platform() {
        None
    } else {
        let subpath = responses_subpath(endpoint, &parts.uri);
        let Some(t) = Translation::between(endpoint, caller.group.platform, &subpath) else {
            let message = format!(
                "{} is not available for this API key: its group serves {} accounts",
                parts.uri.path(),
                caller.group.platform.as_str()
            );
            return Err((ProxyError::NotFound(message), false));
        };
        Some(t)
    };
    let mut job = parse(endpoint, caller, parts, body, started, started_at, request_id).map_err(|e| (e, false))?;
    if let Some(t) = translation {
        let translated = t.request(&job.body).map_err(|e| {
            let err = ProxyError::InvalidParam { param: e.field, message: e.message };
            (err, false)
        })?;
        if t == Translation::ResponsesViaMessages {
            job.namespaces = crate::translate::responses::Namespaces::from_request(&job.body);
        }
        job.body = translated.into();
        job.translation = Some(t);
    }
    Ok(job)
}

fn parse(
    endpoint: Endpoint,
    caller: Caller,
    parts: http::request::Parts,
    body: axum::body::Bytes,
    started: Instant,
    started_at: OffsetDateTime,
    request_id: String,
) -> Result<Job, ProxyError> {
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|e| ProxyError::InvalidRequest(format!("request body is not valid JSON: {e}")))?;
    if !parsed.is_object() {
        return Err(ProxyError::InvalidRequest("request body must be a JSON object".into()));
    }
    let model = match parsed.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        Some(_) => return Err(ProxyError::InvalidRequest("model: must be a non-empty string".into())),
        None => return Err(ProxyError::InvalidRequest("model: field required".into())),
    };
    let stream = endpoint != Endpoint::CountTokens && parsed.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let session = match endpoint {
        Endpoint::Messages => sticky::anthropic_session(&parsed, &parts.headers),
        Endpoint::ChatCompletions | Endpoint::Responses => sticky::openai_session(&parsed, &parts.headers),
        Endpoint::CountTokens | Endpoint::Gemini(_) => None,
    };
    let binding = session.map(|session| sticky::binding_key(caller.group.id, &session.key));
    let wants_usage = parsed.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let subpath = responses_subpath(endpoint, &parts.uri);
    Ok(Job {
        endpoint,
        translation: None,
        namespaces: Default::default(),
        caller,
        model,
        stream,
        body,
        query: parts.uri.query().map(str::to_owned),
        subpath,
        wants_usage,
        headers: parts.headers,
        binding,
        request_id,
        started,
        started_at,
    })
}

/// `/v1/responses/compact` and the like: the part after `/responses`.
fn responses_subpath(endpoint: Endpoint, uri: &http::Uri) -> String {
    match endpoint {
        Endpoint::Responses => uri.path().split_once("/responses").map(|(_, rest)| rest.to_owned()).unwrap_or_default(),
        _ => String::new(),
    }
}

/// `GET /v1/models`: the models the key's group can serve. Accounts with a model mapping
/// name theirs (patterns left out); when none does, the built-in list. One body that both
/// the Anthropic (`type`, `display_name`, `has_more`) and OpenAI (`object`, `owned_by`)
/// SDKs read.
/// What `GET /v1/models` lists for a group: the model names its accounts map (wildcards
/// left out), or the built-in list of its platform (`true`) when no account names any.
pub(crate) fn group_models<'a>(snap: &'a Snapshot, group: &GroupEntry) -> (Vec<(&'a str, &'a str)>, bool) {
    let built_in = match group.platform {
        domain::Platform::Openai => BUILT_IN_OPENAI_MODELS,
        domain::Platform::Gemini => super::gemini::BUILT_IN_MODELS,
        domain::Platform::Anthropic => BUILT_IN_MODELS,
    };
    let named: BTreeSet<&str> = group
        .account_ids
        .iter()
        .filter_map(|id| snap.accounts.get(id))
        .flat_map(|a| a.model_mapping.keys())
        .map(String::as_str)
        .filter(|m| !m.ends_with('*'))
        .collect();
    if named.is_empty() { (built_in.to_vec(), true) } else { (named.into_iter().map(|m| (m, m)).collect(), false) }
}

pub(super) async fn models_handler(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let rid = request_id(req.headers());
    let caller = match authenticate(&gw, &req) {
        Ok(caller) => caller,
        Err(e) => {
            // Both SDK families list models here; Anthropic clients always send a version.
            let protocol =
                if req.headers().contains_key("anthropic-version") { Protocol::Anthropic } else { Protocol::OpenAi };
            return error_response(protocol, &e, &rid);
        }
    };
    let owner = match caller.group.platform {
        domain::Platform::Openai => "openai",
        domain::Platform::Gemini => "google",
        domain::Platform::Anthropic => "anthropic",
    };
    let snap = gw.snapshot.current();
    let group = snap.groups.get(&caller.group.id).unwrap_or(&caller.group);
    let (models, _) = group_models(&snap, group);
    let data: Vec<Value> = models
        .iter()
        .map(|(id, name)| {
            json!({
                "type": "model", "id": id, "display_name": name, "created_at": "2025-01-01T00:00:00Z",
                "object": "model", "created": 1_735_689_600, "owned_by": owner,
            })
        })
        .collect();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "has_more": false,
        "first_id": models.first().map(|m| m.0),
        "last_id": models.last().map(|m| m.0),
    }))
    .into_response()
}
