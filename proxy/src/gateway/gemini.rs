//! The Gemini-native routes and how a request is shaped for a Gemini (AI Studio) API-key
//! account: `POST /v1beta/models/{model}:{action}` (and `/v1/models/…`) with
//! `generateContent`, `streamGenerateContent` and `countTokens`, relayed like every other
//! route; `GET /v1beta/models` and `/v1beta/models/{model}` answered from the snapshot.
//!
//! Only keys whose group serves Gemini accounts are taken; every refusal is in Google's error
//! shape. The body goes upstream byte for byte: only the model in the path is mapped, the
//! caller's key (header or `?key=`) stays here and the account's key goes as
//! `x-goog-api-key`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::anthropic::rewrite_top_level;
use super::relay::{Endpoint, Job};
use super::{Gateway, error_response, messages, read_body, request_id};
use crate::auth::{self, Caller};
use crate::error::{Protocol, ProxyError};
use crate::schedule::map_model;
use crate::snapshot::AccountEntry;

/// Served to Gemini groups when no account names its models.
pub(super) const BUILT_IN_MODELS: &[(&str, &str)] = &[
    ("gemini-2.5-pro", "Gemini 2.5 Pro"),
    ("gemini-2.5-flash", "Gemini 2.5 Flash"),
    ("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite"),
    ("gemini-3-flash-preview", "Gemini 3 Flash Preview"),
    ("gemini-3.1-pro-preview", "Gemini 3.1 Pro Preview"),
];

/// The generation methods the gateway relays, as `GET /v1beta/models` lists them.
const METHODS: [&str; 3] = ["generateContent", "streamGenerateContent", "countTokens"];

/// Client headers forwarded upstream (the caller's `x-goog-api-key`, bearer token and cookies
/// stay here).
const FORWARDED: &[&str] = &["accept", "accept-language", "content-type", "user-agent", "x-goog-api-client"];

const GOOG_API_KEY: HeaderName = HeaderName::from_static("x-goog-api-key");

/// The `{action}` of `models/{model}:{action}` the gateway relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GeminiAction {
    Generate,
    /// `streamGenerateContent`: SSE with `?alt=sse`, else one JSON array.
    StreamGenerate,
    /// Token counting: no slot, no usage row.
    CountTokens,
}

impl GeminiAction {
    fn parse(action: &str) -> Option<Self> {
        match action {
            "generateContent" => Some(GeminiAction::Generate),
            "streamGenerateContent" => Some(GeminiAction::StreamGenerate),
            "countTokens" => Some(GeminiAction::CountTokens),
            _ => None,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            GeminiAction::Generate => "generateContent",
            GeminiAction::StreamGenerate => "streamGenerateContent",
            GeminiAction::CountTokens => "countTokens",
        }
    }
}

/// The upstream URL for `path` (`/v1beta/models/{model}:{action}`). The client's query goes
/// along (`alt=sse` above all) except its `key`, which is the gateway's own.
pub(super) fn url(account: &AccountEntry, default_base: &str, path: &str, query: Option<&str>) -> String {
    let base = super::upstream_base(account, default_base);
    // A base written with its version (`…/v1beta`) is not doubled.
    let url = match (base.strip_suffix("/v1beta"), path.strip_prefix("/v1beta")) {
        (Some(root), Some(rest)) => format!("{root}/v1beta{rest}"),
        _ => format!("{base}{path}"),
    };
    let kept: Vec<&str> =
        query.unwrap_or_default().split('&').filter(|pair| !pair.is_empty() && !pair.starts_with("key=")).collect();
    if kept.is_empty() { url } else { format!("{url}?{}", kept.join("&")) }
}

/// The headers sent upstream: the allowlisted client headers and the account's key.
pub(super) fn headers(client: &HeaderMap, account: &AccountEntry) -> HeaderMap {
    let mut out = super::forwarded_headers(client, FORWARDED);
    if let Some(key) = super::secret_header(&account.api_key) {
        out.insert(GOOG_API_KEY, key);
    }
    out
}

/// Writes `requested` back as the `modelVersion` of a whole answer, but only when the
/// upstream reported exactly the mapped name; anything else is left as the upstream sent it.
pub(super) fn restore_model_version(body: Bytes, requested: &str, upstream: &str) -> Bytes {
    if requested == upstream {
        return body;
    }
    let upstream = Value::String(upstream.to_owned()).to_string();
    let requested = Value::String(requested.to_owned()).to_string();
    let changed = std::cell::Cell::new(false);
    let edited = rewrite_top_level(
        &body,
        |key, raw| {
            let hit = key == "modelVersion" && raw == upstream;
            changed.set(changed.get() || hit);
            hit.then(|| requested.clone())
        },
        &[],
    );
    match edited {
        Some(edited) if changed.get() => Bytes::from(edited),
        _ => body,
    }
}

/// `{model}:{action}` (or `{model}/{action}`) from the path after `models/`.
fn parse_target(target: &str) -> Result<(String, GeminiAction), ProxyError> {
    let (model, action) = target
        .rsplit_once(':')
        .or_else(|| target.rsplit_once('/'))
        .ok_or_else(|| ProxyError::NotFound(format!("expected models/{{model}}:{{action}}, got models/{target}")))?;
    let action = GeminiAction::parse(action).ok_or_else(|| {
        ProxyError::NotFound(format!(
            "action `{action}` is not supported; use generateContent, streamGenerateContent or countTokens"
        ))
    })?;
    check_model(model)?;
    Ok((model.to_owned(), action))
}

/// A model name that can go into an upstream path as it is.
fn check_model(model: &str) -> Result<(), ProxyError> {
    let valid = !model.is_empty()
        && model.len() <= 200
        && model.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '@'));
    if valid { Ok(()) } else { Err(ProxyError::InvalidRequest(format!("invalid model name `{model}`"))) }
}

/// The caller, from `x-goog-api-key`, `?key=` or a bearer token, if their group serves
/// Gemini accounts.
fn authenticate(gw: &Gateway, req: &Request) -> Result<Caller, ProxyError> {
    let presented = auth::presented_key(req.headers(), req.uri().query(), true);
    Ok(auth::authenticate(&gw.snapshot.current(), presented, OffsetDateTime::now_utc())?)
}

fn check_platform(caller: &Caller, path: &str) -> Result<(), ProxyError> {
    if caller.group.platform == domain::Platform::Gemini {
        return Ok(());
    }
    Err(ProxyError::NotFound(format!(
        "{path} is not available for this API key: its group serves {} accounts",
        caller.group.platform.as_str()
    )))
}

/// `POST /v1beta/models/{model}:{action}` and `/v1/models/{model}:{action}`.
pub(super) async fn generate_handler(
    State(gw): State<Arc<Gateway>>,
    Path(target): Path<String>,
    req: Request,
) -> Response {
    let started = Instant::now();
    let rid = request_id(req.headers());
    let prepared = prepare(&gw, &target, req, started, rid.clone()).await;
    messages::dispatch(gw, Protocol::Google, prepared, started, &rid).await
}

async fn prepare(
    gw: &Gateway,
    target: &str,
    req: Request,
    started: Instant,
    request_id: String,
) -> Result<Job, (ProxyError, bool)> {
    let started_at = OffsetDateTime::now_utc();
    let authenticated = authenticate(gw, &req);
    let (parts, body) = req.into_parts();
    let caller = match authenticated {
        Ok(caller) => caller,
        Err(e) => return Err((e, !messages::drain(body).await)),
    };
    let body = read_body(body, &parts.headers, gw.config.max_body_size).await.map_err(|e| {
        let unread = matches!(e, ProxyError::TooLarge { .. });
        (e, unread)
    })?;
    check_platform(&caller, parts.uri.path()).map_err(|e| (e, false))?;
    let (model, action) = parse_target(target).map_err(|e| (e, false))?;
    let is_object = body.trim_ascii_start().first() == Some(&b'{');
    if !is_object || serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
        return Err((ProxyError::InvalidRequest("request body must be a JSON object".into()), false));
    }
    Ok(Job {
        endpoint: Endpoint::Gemini(action),
        translation: None,
        namespaces: Default::default(),
        caller,
        model,
        stream: action == GeminiAction::StreamGenerate,
        body,
        query: parts.uri.query().map(str::to_owned),
        subpath: String::new(),
        wants_usage: false,
        headers: parts.headers,
        binding: None,
        request_id,
        started,
        started_at,
    })
}

/// One entry of Gemini's model list.
fn model_entry(id: &str, display_name: &str) -> Value {
    json!({
        "name": format!("models/{id}"),
        "baseModelId": id,
        "version": "001",
        "displayName": display_name,
        "description": "",
        "supportedGenerationMethods": METHODS,
    })
}

/// `GET /v1beta/models`: the models the key's group maps, else the built-in list.
pub(super) async fn list_models_handler(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let rid = request_id(req.headers());
    let caller = match authenticate(&gw, &req).and_then(|c| check_platform(&c, req.uri().path()).map(|()| c)) {
        Ok(caller) => caller,
        Err(e) => return error_response(Protocol::Google, &e, &rid),
    };
    let snap = gw.snapshot.current();
    let group = snap.groups.get(&caller.group.id).unwrap_or(&caller.group);
    let (models, _) = messages::group_models(&snap, group);
    let models: Vec<Value> = models.iter().map(|(id, name)| model_entry(id, name)).collect();
    axum::Json(json!({ "models": models })).into_response()
}

/// `GET /v1beta/models/{model}`: the model when an account of the key's group serves it.
pub(super) async fn get_model_handler(
    State(gw): State<Arc<Gateway>>,
    Path(target): Path<String>,
    req: Request,
) -> Response {
    let rid = request_id(req.headers());
    let caller = match authenticate(&gw, &req).and_then(|c| check_platform(&c, req.uri().path()).map(|()| c)) {
        Ok(caller) => caller,
        Err(e) => return error_response(Protocol::Google, &e, &rid),
    };
    let snap = gw.snapshot.current();
    let group = snap.groups.get(&caller.group.id).unwrap_or(&caller.group);
    let served = check_model(&target).is_ok()
        && group
            .account_ids
            .iter()
            .filter_map(|id| snap.accounts.get(id))
            .filter(|a| a.platform == domain::Platform::Gemini)
            .any(|a| map_model(&a.model_mapping, &target).is_some());
    if !served {
        let err = ProxyError::NotFound(format!("models/{target} is not served by this API key's group"));
        return error_response(Protocol::Google, &err, &rid);
    }
    let display = BUILT_IN_MODELS.iter().find(|(id, _)| *id == target).map_or(target.as_str(), |(_, name)| *name);
    axum::Json(model_entry(&target, display)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn account() -> AccountEntry {
        let mut account = crate::gateway::anthropic::tests_support::account();
        account.platform = domain::Platform::Gemini;
        account.api_key = "AIza-upstream".into();
        account
    }

    #[test]
    fn targets_name_a_model_and_a_supported_action() {
        let parsed = |t: &str| parse_target(t).map(|(m, a)| (m, a.as_str()));
        assert_eq!(parsed("gemini-2.5-flash:generateContent"), Ok(("gemini-2.5-flash".into(), "generateContent")));
        assert_eq!(parsed("gemini-2.5-pro/streamGenerateContent").map(|p| p.1), Ok("streamGenerateContent"));
        assert_eq!(parsed("gemini-2.5-pro:countTokens").map(|p| p.1), Ok("countTokens"));
        assert_eq!(parsed("gemini-2.5-pro:embedContent").map_err(|e| e.status()), Err(404));
        assert_eq!(parsed("gemini-2.5-pro").map_err(|e| e.status()), Err(404));
        assert_eq!(parsed("../x:generateContent").map_err(|e| e.status()), Err(400));
        assert_eq!(parsed(":generateContent").map_err(|e| e.status()), Err(400));
    }

    #[test]
    fn the_upstream_url_keeps_alt_and_drops_the_callers_key() {
        let account = account();
        let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent";
        assert_eq!(
            url(&account, "https://generativelanguage.googleapis.com", path, Some("key=sk-gw&alt=sse")),
            "http://up/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        let mut bare = account.clone();
        bare.base_url = None;
        assert_eq!(
            url(&bare, "https://generativelanguage.googleapis.com/", path, Some("key=sk-gw")),
            "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent"
        );
        bare.base_url = Some("http://up/v1beta".into());
        assert_eq!(url(&bare, "", path, None), "http://up/v1beta/models/gemini-2.5-flash:streamGenerateContent");
    }

    #[test]
    fn only_the_accounts_key_goes_upstream() {
        let mut client = HeaderMap::new();
        client.insert("x-goog-api-key", HeaderValue::from_static("sk-gateway"));
        client.insert("authorization", HeaderValue::from_static("Bearer sk-gateway"));
        client.insert("x-goog-api-client", HeaderValue::from_static("google-genai-sdk/1.0"));
        client.insert("cookie", HeaderValue::from_static("a=b"));
        let h = headers(&client, &account());
        assert_eq!(h["x-goog-api-key"], "AIza-upstream");
        assert!(h["x-goog-api-key"].is_sensitive());
        assert!(h.get("authorization").is_none() && h.get("cookie").is_none());
        assert_eq!(h["x-goog-api-client"], "google-genai-sdk/1.0");
        assert_eq!(h.get_all("x-goog-api-key").iter().count(), 1);
    }

    #[test]
    fn model_version_is_mapped_back_only_when_it_is_the_mapped_name() {
        let body = Bytes::from_static(br#"{"candidates":[],"modelVersion":"gemini-2.5-flash","responseId":"r"}"#);
        let out = restore_model_version(body.clone(), "flash", "gemini-2.5-flash");
        assert_eq!(&out[..], br#"{"candidates":[],"modelVersion":"flash","responseId":"r"}"#);
        let other = restore_model_version(body.clone(), "flash", "gemini-2.5-flash-001");
        assert_eq!(other, body, "another version is left as sent");
        assert_eq!(restore_model_version(body.clone(), "same", "same"), body);
    }
}
