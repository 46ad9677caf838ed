//! One request from admission to its usage row: caller slots, account choice with waiting,
//! the upstream call, failover before the first byte, streaming back, recording.
//!
//! Runs in its own task (see [`super::messages`]) so it can keep writing to a stream after
//! the handler returned the response head, and notices a client that went away through the
//! [`Sink`]. Every slot it takes is a guard owned by this task: however the task ends, the
//! slots come back.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use store::NewUsage;
use store::coord::{CooldownKind, QueueGuard, SlotGuard};
use time::OffsetDateTime;

use super::anthropic;
use super::claude_code;
use super::code_assist;
use super::codex;
use super::gemini::{self, GeminiAction};
use super::openai;
use super::sink::Sink;
use super::tap::{AnthropicTap, GeminiTap, OpenAiKind, OpenAiTap, StreamEnd, StreamTap, TranslateTap, error_message};
use super::{Gateway, OVERHEAD_HEADER, account_slot_key, error_response, slot_limit};
use crate::auth::Caller;
use crate::cooldown::{self, Disposition, HealthAction, TransportFailure, UpstreamFailure};
use crate::error::{Protocol, ProxyError};
use crate::oauth::keeper;
use crate::schedule::{self, Unavailable};
use crate::snapshot::AccountEntry;
use crate::translate::{self, StreamConverter};
use crate::usage::Usage;

/// How much of a failed upstream answer is read to classify it and report its message.
const ERROR_BODY_CAP: usize = 64 * 1024;
/// Largest non-stream answer relayed (it is held whole to read its usage).
const RESPONSE_BODY_CAP: usize = 64 * 1024 * 1024;
/// Longest pause between two checks for a free slot while waiting.
const WAIT_SLICE: Duration = Duration::from_millis(250);
const PING_EVENT: &[u8] = b"event: ping\ndata: {\"type\": \"ping\"}\n\n";
/// OpenAI streams have no ping event; an SSE comment keeps the connection alive.
const PING_COMMENT: &[u8] = b": ping\n\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Messages,
    CountTokens,
    ChatCompletions,
    Responses,
    /// Gemini `models/{model}:{action}`.
    Gemini(GeminiAction),
}

impl Endpoint {
    /// The upstream path for `model` (Responses may add a sub-path such as `/compact`; only
    /// Gemini names the model in the path).
    fn path(self, subpath: &str, model: &str) -> String {
        match self {
            Endpoint::Messages => "/v1/messages".into(),
            Endpoint::CountTokens => "/v1/messages/count_tokens".into(),
            Endpoint::ChatCompletions => "/v1/chat/completions".into(),
            Endpoint::Responses => format!("/v1/responses{subpath}"),
            Endpoint::Gemini(action) => {
                let model = model.strip_prefix("models/").unwrap_or(model);
                format!("/v1beta/models/{model}:{}", action.as_str())
            }
        }
    }

    pub(super) fn protocol(self) -> Protocol {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => Protocol::Anthropic,
            Endpoint::ChatCompletions | Endpoint::Responses => Protocol::OpenAi,
            Endpoint::Gemini(_) => Protocol::Google,
        }
    }

    /// The group platform that serves this endpoint without translation.
    pub(super) fn platform(self) -> domain::Platform {
        match self.protocol() {
            Protocol::Anthropic => domain::Platform::Anthropic,
            Protocol::OpenAi => domain::Platform::Openai,
            Protocol::Google => domain::Platform::Gemini,
        }
    }

    /// Requests that take slots and write a usage row (all but token counting).
    fn is_billed(self) -> bool {
        !matches!(self, Endpoint::CountTokens | Endpoint::Gemini(GeminiAction::CountTokens))
    }
}

/// How a request is carried when its route's protocol is not its group's platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Translation {
    /// Chat Completions answered by an Anthropic account.
    ChatViaMessages,
    /// Responses (Codex CLI) answered by an Anthropic account.
    ResponsesViaMessages,
    /// Anthropic Messages answered by an OpenAI account.
    MessagesViaChat,
}

impl Translation {
    /// The translation that lets a group of `platform` serve `endpoint`; `None` when the
    /// route cannot be served there (token counting on OpenAI, Responses sub-paths).
    pub(super) fn between(endpoint: Endpoint, platform: domain::Platform, subpath: &str) -> Option<Self> {
        match (endpoint, platform) {
            (Endpoint::ChatCompletions, domain::Platform::Anthropic) => Some(Translation::ChatViaMessages),
            (Endpoint::Responses, domain::Platform::Anthropic) if subpath.is_empty() => {
                Some(Translation::ResponsesViaMessages)
            }
            (Endpoint::Messages, domain::Platform::Openai) => Some(Translation::MessagesViaChat),
            _ => None,
        }
    }

    /// The client's request body in the upstream's protocol.
    pub(super) fn request(self, body: &[u8]) -> Result<Vec<u8>, translate::Unmappable> {
        match self {
            Translation::ChatViaMessages => translate::chat::request_to_messages(body),
            Translation::ResponsesViaMessages => translate::responses::request_to_messages(body),
            Translation::MessagesViaChat => translate::chat::request_from_messages(body),
        }
    }

    fn upstream(self) -> Endpoint {
        match self {
            Translation::ChatViaMessages | Translation::ResponsesViaMessages => Endpoint::Messages,
            Translation::MessagesViaChat => Endpoint::ChatCompletions,
        }
    }

    /// A whole upstream answer in the client's protocol.
    fn response(self, body: &[u8], job: &Job) -> Result<Vec<u8>, String> {
        let model = &job.model;
        match self {
            Translation::ChatViaMessages => translate::chat::messages_response_to_chat(body, model),
            Translation::ResponsesViaMessages => {
                translate::responses::messages_response_to_responses_with(body, model, &job.namespaces)
            }
            Translation::MessagesViaChat => translate::chat::chat_response_to_messages(body, model),
        }
    }

    fn stream(self, job: &Job) -> Box<dyn StreamConverter> {
        let model = &job.model;
        match self {
            Translation::ChatViaMessages => Box::new(translate::chat::ChatFromMessages::new(model, job.wants_usage)),
            Translation::ResponsesViaMessages => Box::new(
                translate::responses::ResponsesFromMessages::new(model).with_namespaces(job.namespaces.clone()),
            ),
            Translation::MessagesViaChat => Box::new(translate::chat::MessagesFromChat::new(model)),
        }
    }
}

/// A validated request, ready to relay.
pub(super) struct Job {
    /// The route the client called (its protocol is the answer's).
    pub endpoint: Endpoint,
    /// Set when the upstream speaks another protocol; `body` is then already translated.
    pub translation: Option<Translation>,
    /// Responses via Messages: the client's namespaced tools, to split their calls back.
    pub namespaces: translate::responses::Namespaces,
    pub caller: Caller,
    pub model: String,
    pub stream: bool,
    pub body: Bytes,
    pub query: Option<String>,
    /// Responses sub-path (`/compact`), empty otherwise.
    pub subpath: String,
    /// Chat streams: the client asked for the usage chunk itself.
    pub wants_usage: bool,
    pub headers: HeaderMap,
    /// Sticky binding key (group-namespaced session), when the request names a session.
    pub binding: Option<String>,
    pub request_id: String,
    pub started: Instant,
    pub started_at: OffsetDateTime,
}

impl Job {
    /// The endpoint called upstream.
    fn upstream_endpoint(&self) -> Endpoint {
        self.translation.map_or(self.endpoint, Translation::upstream)
    }
}

/// What the usage row will say.
#[derive(Default)]
struct Record {
    account_id: Option<i64>,
    upstream_model: String,
    status: u16,
    error: String,
    usage: Option<Usage>,
    first_token: Option<Duration>,
    /// Time spent waiting on the upstream (headers and body), excluded from the overhead.
    upstream_wait: Duration,
    /// The upstream's answer started reaching the client.
    answered: bool,
}

/// Relays `job`, answering through `sink`, then records its usage row.
pub(super) async fn drive(gw: Arc<Gateway>, job: Job, mut sink: Sink) {
    let mut rec = Record { status: 200, ..Record::default() };
    run(&gw, &job, &mut sink, &mut rec).await;
    if job.endpoint.is_billed() {
        gw.usage.record(usage_row(&gw, &job, &rec));
    }
}

enum Attempt {
    /// The upstream accepted the request; its answer is to be forwarded.
    Success(reqwest::Response),
    /// The answer (an upstream error passed through) went to the client.
    Finished,
    ClientGone,
    Failed {
        status: Option<u16>,
        health: HealthAction,
    },
}

enum Stop {
    TimedOut,
    QueueFull,
    ClientGone,
    ShuttingDown,
}

async fn run(gw: &Gateway, job: &Job, sink: &mut Sink, rec: &mut Record) {
    let cfg = &gw.config;
    // Read once: a settings change applies from the next request on, never halfway through.
    let tuned = gw.tunables();
    let mut waiting =
        Waiting { gw, job, deadline: job.started + tuned.wait_timeout, next_ping: Instant::now() + cfg.ping_interval };

    // The user's and the key's own limits come first: a caller over its limit waits without
    // holding an account slot.
    let mut caller_slots = Vec::new();
    if job.endpoint.is_billed() {
        let (user, key) = (&job.caller.user, &job.caller.key);
        // The key first: a key at its limit must not hold its user's other keys back.
        let limits = [
            (format!("api_key:{}", key.id), key.concurrency, "API key"),
            (format!("user:{}", user.id), user.concurrency, "user"),
        ];
        for (slot_key, limit, what) in limits {
            match waiting.acquire(sink, &slot_key, slot_limit(limit)).await {
                Ok(guard) => caller_slots.extend(guard),
                Err(Stop::ClientGone) => return client_gone(rec),
                Err(Stop::ShuttingDown) => return fail(sink, rec, job, shutting_down()).await,
                Err(Stop::QueueFull) => return fail(sink, rec, job, too_many_pending()).await,
                Err(Stop::TimedOut) => return fail(sink, rec, job, concurrency_exceeded(what)).await,
            }
        }
    }

    // ChatGPT subscription accounts speak only the Responses API.
    let mut excluded: HashSet<i64> = if job.upstream_endpoint() == Endpoint::Responses {
        HashSet::new()
    } else {
        let snap = gw.snapshot.current();
        let group = snap.groups.get(&job.caller.group.id).unwrap_or(&job.caller.group);
        group.account_ids.iter().copied().filter(|id| snap.accounts.get(id).is_some_and(is_codex_account)).collect()
    };
    let mut switches = 0u32;
    let mut last_status: Option<u16> = None;
    let mut failed_once = false;
    let mut earliest_cooldown: Option<OffsetDateTime> = None;
    let mut queue: Option<QueueGuard> = None;
    let mut sticky = match &job.binding {
        Some(key) => gw.coord.get_sticky(key).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading a sticky binding failed");
            None
        }),
        None => None,
    };

    loop {
        let snap = gw.snapshot.current();
        let group = snap.groups.get(&job.caller.group.id).unwrap_or(&job.caller.group);
        let live = gw.live(&group.account_ids).await;
        let now = OffsetDateTime::now_utc();
        let list = match schedule::candidates(&snap, group, &job.model, sticky, &excluded, &live, now) {
            Ok(list) => list,
            Err(why) => {
                let retry = earliest_cooldown.map(|t| cooldown::retry_after_secs(t, now));
                let err = match why {
                    Unavailable::NoModel => ProxyError::NotFound(format!(
                        "model `{}` is not served by any account of this key's group",
                        job.model
                    )),
                    Unavailable::CoolingDown { until } if failed_once => {
                        let earliest = earliest_cooldown.map_or(until, |t| t.min(until));
                        ProxyError::exhausted(last_status, Some(cooldown::retry_after_secs(earliest, now)))
                    }
                    _ if failed_once => ProxyError::exhausted(last_status, retry),
                    Unavailable::CoolingDown { until } => ProxyError::RateLimited {
                        message: "All accounts of this group are rate-limited or overloaded, please retry later".into(),
                        retry_after: cooldown::retry_after_secs(until, now),
                    },
                    // Nothing here heals by waiting (accounts disabled, in error, paused):
                    // a short hint so SDK retries do not sleep for minutes.
                    Unavailable::NoAccount => ProxyError::Unavailable { retry_after: Some(1) },
                };
                return fail(sink, rec, job, err).await;
            }
        };
        // A binding to an account that can no longer serve is dropped: stickiness never
        // blocks failover.
        if let (Some(bound), Some(key)) = (sticky, &job.binding)
            && list.first().map(|c| c.account_id) != Some(bound)
        {
            if let Err(e) = gw.coord.delete_sticky_if(key, bound).await {
                tracing::warn!(error = %e, "dropping a sticky binding failed");
            }
            sticky = None;
        }

        // A usable bound account that is merely busy is waited for, not left: moving the
        // session would lose its prompt cache.
        let sticky_first = sticky.is_some() && list.first().map(|c| c.account_id) == sticky;
        let mut chosen = None;
        for (i, candidate) in list.iter().enumerate() {
            if sticky_first && i > 0 {
                break;
            }
            if !job.endpoint.is_billed() {
                chosen = Some((candidate.clone(), None));
                break;
            }
            let Some(account) = snap.accounts.get(&candidate.account_id) else { continue };
            match gw
                .coord
                .try_acquire_slot(&account_slot_key(account.id), slot_limit(account.concurrency), cfg.slot_ttl)
                .await
            {
                Ok(Some(lease)) => {
                    chosen = Some((candidate.clone(), Some(SlotGuard::new(Arc::clone(&gw.coord), lease))));
                    break;
                }
                Ok(None) => {}
                Err(e) => {
                    // Fail open: a broken coordinator must not stop all traffic.
                    tracing::warn!(error = %e, "taking an account slot failed; going on without one");
                    chosen = Some((candidate.clone(), None));
                    break;
                }
            }
        }
        let Some((candidate, slot)) = chosen else {
            let Some(best) = list.first().and_then(|c| snap.accounts.get(&c.account_id)) else {
                return fail(sink, rec, job, ProxyError::Unavailable { retry_after: Some(1) }).await;
            };
            let key = account_slot_key(best.id);
            let limit = slot_limit(best.concurrency);
            if queue.is_none() {
                match enter_queue(gw, &key, limit).await {
                    Ok(ticket) => queue = ticket,
                    Err(()) => return fail(sink, rec, job, too_many_pending()).await,
                }
            }
            match waiting.turn(sink, &key, limit).await {
                Ok(()) => continue,
                Err(Stop::ClientGone) => return client_gone(rec),
                Err(Stop::ShuttingDown) => return fail(sink, rec, job, shutting_down()).await,
                Err(_) => return fail(sink, rec, job, concurrency_exceeded("account")).await,
            }
        };
        drop(queue.take());
        let Some(account) = snap.accounts.get(&candidate.account_id) else { continue };
        gw.note_used(account.id, now);
        rec.account_id = Some(account.id);
        rec.upstream_model.clone_from(&candidate.upstream_model);

        let mut outcome = attempt(gw, job, account, &candidate.upstream_model, sink, rec).await;
        // A subscription token the upstream refused gets one refresh and one more try on
        // the same account before the request moves on.
        let refreshed;
        let mut account = account;
        if let Attempt::Failed { status: Some(401), health } = &mut outcome
            && account.oauth.as_ref().is_some_and(|o| o.refreshable)
        {
            let rejected = keeper::Trigger::Rejected(account.api_key.clone());
            match keeper::refresh_account(gw, account.id, rejected).await {
                Ok(()) => {
                    refreshed = gw.snapshot.current();
                    if let Some(fresh) = refreshed.accounts.get(&account.id) {
                        tracing::info!(account_id = account.id, "retrying with the refreshed token");
                        account = fresh;
                        outcome = attempt(gw, job, account, &candidate.upstream_model, sink, rec).await;
                    }
                }
                // The refresh itself put the account in error, with the better reason.
                Err(keeper::RefreshError::OAuth(crate::oauth::OAuthError::InvalidGrant(_))) => {
                    *health = HealthAction::None;
                }
                Err(e) => {
                    tracing::warn!(account_id = account.id, error = %e, "refreshing a rejected token failed");
                }
            }
        }
        match outcome {
            Attempt::Success(response) => {
                if let Some(key) = &job.binding {
                    bind_session(gw, key, account.id, sticky == Some(account.id)).await;
                }
                let held: Vec<&SlotGuard> = caller_slots.iter().chain(slot.as_ref()).collect();
                forward(gw, job, account, &candidate.upstream_model, response, &held, sink, rec).await;
                return;
            }
            Attempt::Finished => return,
            Attempt::ClientGone => return client_gone(rec),
            Attempt::Failed { status, health } => {
                failed_once = true;
                last_status = status;
                if let Some(until) = apply_health(gw, account, health).await {
                    earliest_cooldown = Some(earliest_cooldown.map_or(until, |t| t.min(until)));
                }
                excluded.insert(account.id);
                drop(slot);
                if switches >= tuned.max_account_switches {
                    let retry = earliest_cooldown.map(|t| cooldown::retry_after_secs(t, OffsetDateTime::now_utc()));
                    return fail(sink, rec, job, ProxyError::exhausted(last_status, retry)).await;
                }
                switches += 1;
            }
        }
    }
}

fn shutting_down() -> ProxyError {
    ProxyError::Unavailable { retry_after: Some(5) }
}

fn too_many_pending() -> ProxyError {
    ProxyError::RateLimited { message: "Too many pending requests, please retry later".into(), retry_after: 1 }
}

fn concurrency_exceeded(what: &str) -> ProxyError {
    ProxyError::RateLimited {
        message: format!("Concurrency limit exceeded for {what}, please retry later"),
        retry_after: 1,
    }
}

/// The client left. Before any answer the row says 499 (the client closed the request);
/// during a stream it keeps the upstream status and bills what was delivered.
fn client_gone(rec: &mut Record) {
    if rec.error.is_empty() {
        rec.error = "client disconnected".into();
    }
    if !rec.answered {
        rec.status = 499;
    }
}

/// Answers with a gateway error: a status of its own while nothing was sent, else one
/// terminal error event.
async fn fail(sink: &mut Sink, rec: &mut Record, job: &Job, err: ProxyError) {
    rec.status = err.status();
    rec.error = err.to_string();
    if sink.is_started() {
        sink.send(Bytes::from(err.sse_event(job.endpoint.protocol()))).await;
    } else {
        let mut res = error_response(job.endpoint.protocol(), &err, &job.request_id);
        set_overhead(res.headers_mut(), job, rec);
        sink.respond(res);
    }
}

/// Takes a place in the wait queue of `key`. `Err`: the queue is full. A coordinator
/// failure lets the request wait without a ticket.
async fn enter_queue(gw: &Gateway, key: &str, limit: u32) -> Result<Option<QueueGuard>, ()> {
    let tuned = gw.tunables();
    let max_waiters = limit.saturating_add(tuned.max_extra_waiters);
    let ttl = tuned.wait_timeout + Duration::from_secs(5);
    match gw.coord.try_enter_queue(key, max_waiters, ttl).await {
        Ok(Some(ticket)) => Ok(Some(QueueGuard::new(Arc::clone(&gw.coord), ticket))),
        Ok(None) => Err(()),
        Err(e) => {
            tracing::warn!(error = %e, "entering a wait queue failed; waiting without a place");
            Ok(None)
        }
    }
}

/// A request's waiting for slots: its deadline and when its next ping is due.
struct Waiting<'a> {
    gw: &'a Gateway,
    job: &'a Job,
    deadline: Instant,
    next_ping: Instant,
}

impl Waiting<'_> {
    /// A slot of `key`, waiting for one up to the deadline. `None` when unlimited.
    async fn acquire(&mut self, sink: &mut Sink, key: &str, limit: u32) -> Result<Option<SlotGuard>, Stop> {
        let gw = self.gw;
        if limit == 0 {
            return Ok(None);
        }
        let mut queue = None;
        loop {
            match gw.coord.try_acquire_slot(key, limit, gw.config.slot_ttl).await {
                Ok(Some(lease)) => return Ok(Some(SlotGuard::new(Arc::clone(&gw.coord), lease))),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, key, "taking a slot failed; going on without one");
                    return Ok(None);
                }
            }
            if queue.is_none() {
                queue = enter_queue(gw, key, limit).await.map_err(|()| Stop::QueueFull)?;
            }
            self.turn(sink, key, limit).await?;
        }
    }

    /// Waits a little for a slot of `key` to free up, pinging a streaming client when a ping is
    /// due (the first ping sends the stream's head). `Ok`: look again.
    async fn turn(&mut self, sink: &mut Sink, key: &str, limit: u32) -> Result<(), Stop> {
        let (gw, job, deadline) = (self.gw, self.job, self.deadline);
        let next_ping = &mut self.next_ping;
        let now = Instant::now();
        if now >= deadline {
            return Err(Stop::TimedOut);
        }
        let mut slice = WAIT_SLICE.min(deadline - now);
        let ping = if job.stream { ping_for(job.endpoint.protocol()) } else { None };
        if ping.is_some() {
            slice = slice.min(next_ping.saturating_duration_since(now));
        }
        // Never a zero slice: that would spin on the coordinator.
        let slice = slice.max(Duration::from_millis(1));
        let woke = tokio::select! {
            woke = gw.coord.wait_for_release(key, limit, slice) => woke,
            () = sink.closed() => return Err(Stop::ClientGone),
            () = gw.shutdown.cancelled() => return Err(Stop::ShuttingDown),
        };
        if let Err(e) = woke {
            tracing::warn!(error = %e, key, "waiting for a slot failed");
            tokio::time::sleep(slice).await;
        }
        if let Some(ping) = ping
            && Instant::now() >= *next_ping
        {
            *next_ping = Instant::now() + gw.config.ping_interval;
            if !sink.is_started() && !sink.start_stream(StatusCode::OK, stream_headers(job, None, Duration::ZERO)) {
                return Err(Stop::ClientGone);
            }
            if !sink.send(Bytes::from_static(ping)).await {
                return Err(Stop::ClientGone);
            }
        }
        Ok(())
    }
}

/// The keep-alive a waiting stream gets in `protocol`. Gemini clients parse every non-empty
/// line as a chunk (an SSE comment breaks them), so a Gemini stream waits silently.
fn ping_for(protocol: Protocol) -> Option<&'static [u8]> {
    match protocol {
        Protocol::Anthropic => Some(PING_EVENT),
        Protocol::OpenAi => Some(PING_COMMENT),
        Protocol::Google => None,
    }
}

/// One upstream call on `account`, up to its response head.
async fn attempt(
    gw: &Gateway,
    job: &Job,
    account: &AccountEntry,
    upstream_model: &str,
    sink: &mut Sink,
    rec: &mut Record,
) -> Attempt {
    let cfg = &gw.config;
    let endpoint = job.upstream_endpoint();
    let path = endpoint.path(&job.subpath, upstream_model);
    let client = match gw.client_for(account) {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(account_id = account.id, error = %e.without_url(), "no client for the account's proxy");
            return transport_failure(account, TransportFailure::Connect, gw);
        }
    };
    let request = match (endpoint, account.platform) {
        (Endpoint::Gemini(action), _) if account.oauth.is_some() => {
            let project = account.oauth.as_ref().and_then(|o| o.project_id.as_deref()).unwrap_or_default();
            let base = super::upstream_base(account, &cfg.code_assist_base_url);
            let body =
                code_assist::body(&job.body, action, upstream_model, project).unwrap_or_else(|| job.body.clone());
            client
                .post(code_assist::url(base, action, job.query.as_deref()))
                .headers(code_assist::headers(&job.headers, account))
                .body(body)
        }
        (Endpoint::Gemini(_), _) => client
            .post(gemini::url(account, &cfg.gemini_base_url, &path, job.query.as_deref()))
            .headers(gemini::headers(&job.headers, account))
            .body(job.body.clone()),
        (_, domain::Platform::Openai) if account.oauth.is_some() => client
            .post(codex::url(account, &cfg.chatgpt_base_url, &job.subpath))
            .headers(codex::headers(&job.headers, account))
            .body(codex::body(&job.body, upstream_model, &cfg.codex_instructions)),
        (_, domain::Platform::Openai) => client
            .post(openai::url(account, &cfg.openai_base_url, &path))
            .headers(openai::headers(&job.headers, account))
            .body(openai::body(&job.body, &job.model, upstream_model, force_usage(job))),
        (_, _) if account.oauth.is_some() => {
            let parsed: serde_json::Value = serde_json::from_slice(&job.body).unwrap_or_default();
            let genuine = claude_code::is_claude_code(&job.headers, &parsed);
            let base = super::upstream_base(account, &cfg.anthropic_base_url);
            let messages = endpoint == Endpoint::Messages;
            let headers = claude_code::headers(
                &job.headers,
                anthropic::forwarded(&job.headers),
                account,
                upstream_model,
                genuine,
            );
            client
                .post(format!("{base}{path}?{}", claude_code::query(job.query.as_deref())))
                .headers(headers)
                .body(claude_code::body(&job.body, &parsed, &job.headers, account, upstream_model, messages, genuine))
        }
        (_, _) => client
            .post(anthropic::url(account, &cfg.anthropic_base_url, &path, job.query.as_deref()))
            .headers(anthropic::headers(&job.headers, account))
            .body(anthropic::body(&job.body, &job.model, upstream_model)),
    };
    let sent = Instant::now();
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(cfg.response_header_timeout, request.send()) => outcome,
        () = sink.closed() => return Attempt::ClientGone,
    };
    rec.upstream_wait += sent.elapsed();
    let failure = match outcome {
        Ok(Ok(response)) if response.status().is_success() => return Attempt::Success(response),
        // The account's proxy refused the gateway's credentials: a proxy problem, not the
        // account's, so it is tried elsewhere and the account is not marked.
        Ok(Ok(response))
            if account.proxy.is_some() && response.status() == StatusCode::PROXY_AUTHENTICATION_REQUIRED =>
        {
            tracing::warn!(account_id = account.id, "the account's proxy refused its credentials (407)");
            return transport_failure(account, TransportFailure::Connect, gw);
        }
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::warn!(account_id = account.id, error = %e.without_url(), "upstream request failed");
            return transport_failure(account, TransportFailure::Connect, gw);
        }
        Err(_) => {
            tracing::warn!(account_id = account.id, "upstream response headers timed out");
            return transport_failure(account, TransportFailure::HeaderTimeout, gw);
        }
    };
    let status = failure.status();
    let headers = failure.headers().clone();
    // A 429 benches the account through its own verdict below.
    observe_windows(gw, account, &headers, status != StatusCode::TOO_MANY_REQUESTS).await;
    let read_started = Instant::now();
    // A partial error body still classifies.
    let body = read_capped(failure, ERROR_BODY_CAP, cfg.stream_idle_timeout).await.unwrap_or_else(|partial| partial);
    rec.upstream_wait += read_started.elapsed();
    let verdict = cooldown::classify(
        account.platform,
        &UpstreamFailure::Http { status, headers: &headers, body: &body },
        OffsetDateTime::now_utc(),
        &gw.tunables().cooldown,
    );
    match verdict.disposition {
        Disposition::Failover => {
            tracing::warn!(
                account_id = account.id,
                status = status.as_u16(),
                "upstream failed; trying another account"
            );
            Attempt::Failed { status: Some(status.as_u16()), health: verdict.health }
        }
        Disposition::PassThrough => {
            rec.answered = true;
            rec.status = status.as_u16();
            rec.error = error_message(&body);
            let body = match job.translation {
                Some(_) => Bytes::from(translate::error_body(job.endpoint.protocol(), &body)),
                None => body,
            };
            if sink.is_started() {
                sink.send(Bytes::from(upstream_error_event(job.endpoint.protocol(), &body))).await;
            } else {
                let mut res = axum::response::Response::new(axum::body::Body::from(body));
                *res.status_mut() = status;
                let out = res.headers_mut();
                copy_headers(&headers, out, &["content-type", "retry-after", "x-should-retry"]);
                upstream_request_id(&headers, out);
                own_request_id(job, out);
                set_overhead(out, job, rec);
                sink.respond(res);
            }
            Attempt::Finished
        }
    }
}

fn transport_failure(account: &AccountEntry, kind: TransportFailure, gw: &Gateway) -> Attempt {
    let verdict = cooldown::classify(
        account.platform,
        &UpstreamFailure::Transport(kind),
        OffsetDateTime::now_utc(),
        &gw.tunables().cooldown,
    );
    Attempt::Failed { status: None, health: verdict.health }
}

/// An upstream error body as one well-formed terminal SSE event (compact JSON on one line).
fn upstream_error_event(protocol: Protocol, body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok().filter(|v| v.get("error").is_some());
    let json = parsed.unwrap_or_else(
        || serde_json::json!({"type": "error", "error": {"type": "api_error", "message": error_message(body)}}),
    );
    match protocol {
        Protocol::Anthropic => format!("event: error\ndata: {json}\n\n"),
        _ => format!("data: {json}\n\n"),
    }
}

/// Chat streams get `stream_options.include_usage` upstream so they can be billed.
fn force_usage(job: &Job) -> bool {
    job.upstream_endpoint() == Endpoint::ChatCompletions && job.stream
}

/// Reads at most `cap` bytes of a body, each chunk within `idle`. `Err` holds what arrived
/// when the body broke, stalled or was longer than `cap`.
async fn read_capped(response: reqwest::Response, cap: usize, idle: Duration) -> Result<Bytes, Bytes> {
    let mut out = Vec::new();
    let mut stream = response.bytes_stream();
    loop {
        match tokio::time::timeout(idle, stream.next()).await {
            Ok(None) => return Ok(Bytes::from(out)),
            Ok(Some(Ok(chunk))) => {
                let room = cap.saturating_sub(out.len());
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if chunk.len() > room {
                    return Err(Bytes::from(out));
                }
            }
            Ok(Some(Err(_))) | Err(_) => return Err(Bytes::from(out)),
        }
    }
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap, names: &[&'static str]) {
    for name in names {
        if let Some(value) = from.get(*name) {
            to.insert(*name, value.clone());
        }
    }
}

/// `request-id` (what the SDKs report as the request id) is the gateway's, the one its usage
/// row and logs carry; the upstream's own id goes along as `x-upstream-request-id`.
fn own_request_id(job: &Job, headers: &mut HeaderMap) {
    if let Ok(id) = HeaderValue::from_str(&job.request_id) {
        headers.insert("request-id", id);
    }
}

fn upstream_request_id(upstream: &HeaderMap, headers: &mut HeaderMap) {
    // Anthropic names it `request-id`, OpenAI `x-request-id`.
    if let Some(id) = upstream.get("request-id").or_else(|| upstream.get("x-request-id")) {
        headers.insert("x-upstream-request-id", id.clone());
    }
}

fn set_overhead(headers: &mut HeaderMap, job: &Job, rec: &Record) {
    if let Some(value) = super::overhead_value(job.started.elapsed().saturating_sub(rec.upstream_wait)) {
        headers.insert(OVERHEAD_HEADER, value);
    }
}

fn stream_headers(job: &Job, upstream: Option<&HeaderMap>, upstream_wait: Duration) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(upstream) = upstream {
        upstream_request_id(upstream, &mut headers);
    }
    own_request_id(job, &mut headers);
    let rec = Record { upstream_wait, ..Record::default() };
    set_overhead(&mut headers, job, &rec);
    headers
}

/// Forwards a successful upstream answer: streamed as it arrives, or whole for non-stream.
#[allow(clippy::too_many_arguments, reason = "one call site; the pieces are all distinct")]
async fn forward(
    gw: &Gateway,
    job: &Job,
    account: &AccountEntry,
    upstream_model: &str,
    response: reqwest::Response,
    slots: &[&SlotGuard],
    sink: &mut Sink,
    rec: &mut Record,
) {
    if cooldown::clears_rate_limit(response.headers()) {
        lift_rate_limit(gw, account).await;
    }
    observe_windows(gw, account, response.headers(), true).await;
    let is_sse = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return forward_whole(gw, job, upstream_model, response, is_code_assist(account), sink, rec).await;
    }
    if !job.stream && is_codex_account(account) {
        return forward_collected(gw, job, upstream_model, response, sink, rec).await;
    }
    let headers = stream_headers(job, Some(response.headers()), rec.upstream_wait);
    rec.answered = true;
    if !sink.start_stream(StatusCode::OK, headers) {
        return client_gone(rec);
    }
    let mut tap: Box<dyn StreamTap> = match (job.translation, job.endpoint) {
        (Some(t), _) => Box::new(TranslateTap::new(t.stream(job), t.upstream() == Endpoint::ChatCompletions)),
        (None, Endpoint::ChatCompletions) => {
            Box::new(OpenAiTap::new(OpenAiKind::Chat, &job.model, upstream_model, !job.wants_usage))
        }
        (None, Endpoint::Responses) => {
            Box::new(OpenAiTap::new(OpenAiKind::Responses, &job.model, upstream_model, false))
        }
        (None, Endpoint::Messages | Endpoint::CountTokens) => Box::new(AnthropicTap::new(&job.model, upstream_model)),
        (None, Endpoint::Gemini(_)) => Box::new(GeminiTap::new(is_code_assist(account))),
    };
    let mut body = response.bytes_stream();
    let refresh_every = gw.config.slot_ttl / 2;
    let mut refresh_at = Instant::now() + refresh_every;
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(gw.config.stream_idle_timeout, body.next()) => next,
            () = sink.closed() => break client_gone(rec),
            () = gw.shutdown.cancelled() => {
                tracing::warn!(account_id = account.id, "stream cut: the shutdown grace period is over");
                break;
            }
        };
        let chunk = match next {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::warn!(account_id = account.id, error = %e.without_url(), "upstream stream broke");
                break;
            }
            Err(_) => {
                tracing::warn!(account_id = account.id, "upstream stream went silent");
                break;
            }
        };
        let out = tap.process(chunk);
        if out.is_empty() {
            continue;
        }
        if !send_within(sink, out.clone(), gw.config.stream_idle_timeout).await {
            break client_gone(rec);
        }
        rec.first_token.get_or_insert_with(|| job.started.elapsed());
        tap.delivered(&out);
        if Instant::now() >= refresh_at {
            refresh_at = Instant::now() + refresh_every;
            for slot in slots {
                let _ = slot.refresh(gw.config.slot_ttl).await;
            }
        }
    }
    let rest = tap.finish();
    if !rest.is_empty() && sink.send(rest.clone()).await {
        tap.delivered(&rest);
    }
    tap.close();
    rec.usage = tap.usage();
    match tap.end().clone() {
        StreamEnd::Done => {}
        StreamEnd::Failed(message) => {
            rec.error = message;
            rec.status = 502;
        }
        StreamEnd::Open if rec.error.is_empty() => {
            let err = ProxyError::Upstream("upstream stream ended unexpectedly");
            rec.error = err.to_string();
            rec.status = err.status();
            sink.send(Bytes::from(err.sse_event(job.endpoint.protocol()))).await;
        }
        StreamEnd::Open => {}
    }
}

/// Sends a chunk unless the client stopped reading for `within`. `false`: treat the client
/// as gone.
async fn send_within(sink: &mut Sink, chunk: Bytes, within: Duration) -> bool {
    tokio::time::timeout(within, sink.send(chunk)).await.unwrap_or(false)
}

fn is_code_assist(account: &AccountEntry) -> bool {
    account.platform == domain::Platform::Gemini && account.oauth.is_some()
}

fn is_codex_account(account: &AccountEntry) -> bool {
    account.platform == domain::Platform::Openai && account.oauth.is_some()
}

/// The Codex backend streams every answer: a client that asked for a whole one gets the
/// final event's response object.
async fn forward_collected(
    gw: &Gateway,
    job: &Job,
    upstream_model: &str,
    response: reqwest::Response,
    sink: &mut Sink,
    rec: &mut Record,
) {
    let status = response.status();
    let read_started = Instant::now();
    let sse = tokio::select! {
        body = read_capped(response, RESPONSE_BODY_CAP, gw.config.stream_idle_timeout) => body,
        () = sink.closed() => return client_gone(rec),
    };
    rec.upstream_wait += read_started.elapsed();
    let whole = sse.ok().and_then(|sse| codex::whole_from_stream(&sse));
    let Some(whole) = whole else {
        tracing::warn!("the Codex stream ended without a final response");
        return fail(sink, rec, job, ProxyError::Upstream("Upstream request failed")).await;
    };
    let rebuilt = http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(whole)
        .map(reqwest::Response::from);
    match rebuilt {
        Ok(response) => forward_whole(gw, job, upstream_model, response, false, sink, rec).await,
        Err(_) => fail(sink, rec, job, ProxyError::Internal).await,
    }
}

#[allow(clippy::too_many_arguments, reason = "private; the pieces are all distinct")]
async fn forward_whole(
    gw: &Gateway,
    job: &Job,
    upstream_model: &str,
    response: reqwest::Response,
    code_assist: bool,
    sink: &mut Sink,
    rec: &mut Record,
) {
    let status = response.status();
    let upstream_headers = response.headers().clone();
    let read_started = Instant::now();
    let body = tokio::select! {
        body = read_capped(response, RESPONSE_BODY_CAP, gw.config.stream_idle_timeout) => body,
        () = sink.closed() => return client_gone(rec),
    };
    rec.upstream_wait += read_started.elapsed();
    let body = match body {
        Ok(body) if !sink.is_started() => body,
        _ => {
            // A broken or oversized answer, or a JSON answer to a stream already pinged.
            tracing::warn!("upstream answer could not be relayed whole");
            return fail(sink, rec, job, ProxyError::Upstream("Upstream request failed")).await;
        }
    };
    let body = match code_assist.then(|| code_assist::unwrap_whole(&body)).flatten() {
        Some(unwrapped) => Bytes::from(unwrapped),
        None => body,
    };
    rec.first_token = Some(job.started.elapsed());
    rec.usage = match job.upstream_endpoint() {
        Endpoint::Messages => Usage::from_anthropic_response(&body),
        Endpoint::ChatCompletions => Usage::from_openai_chat(&body),
        Endpoint::Responses => Usage::from_openai_responses(&body),
        Endpoint::Gemini(GeminiAction::Generate | GeminiAction::StreamGenerate) => Usage::from_gemini(&body),
        Endpoint::CountTokens | Endpoint::Gemini(GeminiAction::CountTokens) => None,
    };
    let body = match job.translation {
        None if job.endpoint.protocol() == Protocol::Google => {
            gemini::restore_model_version(body, &job.model, upstream_model)
        }
        None => anthropic::restore_model(body, &job.model, upstream_model),
        Some(t) if status.is_success() => match t.response(&body, job) {
            Ok(translated) => Bytes::from(translated),
            Err(why) => {
                tracing::warn!(%why, "upstream answer could not be translated");
                return fail(sink, rec, job, ProxyError::Upstream("Upstream answer could not be translated")).await;
            }
        },
        Some(_) => Bytes::from(translate::error_body(job.endpoint.protocol(), &body)),
    };
    let mut res = axum::response::Response::new(axum::body::Body::from(body));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    if job.translation.is_some() {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    } else {
        copy_headers(&upstream_headers, headers, &["content-type"]);
    }
    upstream_request_id(&upstream_headers, headers);
    own_request_id(job, headers);
    set_overhead(headers, job, rec);
    rec.answered = true;
    if !sink.respond(res) {
        client_gone(rec);
    }
}

async fn bind_session(gw: &Gateway, key: &str, account_id: i64, already_bound: bool) {
    let ttl = gw.tunables().sticky_ttl;
    let result = if already_bound {
        gw.coord.touch_sticky(key, ttl).await.map(|_| ())
    } else {
        gw.coord.set_sticky(key, account_id, ttl).await
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "writing a sticky binding failed");
    }
}

/// Applies a failure's health action to the account; returns the end of a cooldown it set.
async fn apply_health(gw: &Gateway, account: &AccountEntry, health: HealthAction) -> Option<OffsetDateTime> {
    let (kind, until) = match health {
        HealthAction::None => return None,
        HealthAction::RateLimited { until } => (CooldownKind::RateLimited, until),
        HealthAction::Overloaded { until } => (CooldownKind::Overloaded, until),
        HealthAction::Error { reason } => {
            tracing::warn!(account_id = account.id, %reason, "account put in the error state");
            if let Err(e) = gw.store.set_account_status(account.id, "error", &reason).await {
                tracing::error!(error = %e, account_id = account.id, "saving the account's error state failed");
            }
            let id = account.id;
            gw.snapshot.update(|snap| {
                if let Some(entry) = snap.accounts.get_mut(&id) {
                    entry.status = domain::AccountStatus::Error;
                }
            });
            gw.announce_change().await;
            return None;
        }
    };
    let until = gw.coord.set_cooldown(account.id, kind, until).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "saving a cooldown in the coordinator failed");
        until
    });
    tracing::warn!(account_id = account.id, kind = kind.as_str(), %until, "account cooling down");
    persist_cooldowns(gw, account, false).await;
    Some(until)
}

/// Writes the account's cooldown ends to its row so a restart keeps them: the later of what
/// the row held and what the coordinator holds now (`lift_rate_limit`: the rate limit is
/// gone).
async fn persist_cooldowns(gw: &Gateway, account: &AccountEntry, lift_rate_limit: bool) {
    let now = OffsetDateTime::now_utc();
    let live = gw.coord.cooldowns(&[account.id]).await.unwrap_or_default().remove(&account.id).unwrap_or_default();
    // The row as the snapshot mirrors it now (the caller's copy may be older).
    let current = gw.snapshot.current();
    let account = current.accounts.get(&account.id).unwrap_or(account);
    let of = |kind: CooldownKind, row: Option<OffsetDateTime>| {
        live.iter().filter(|c| c.kind == kind).map(|c| c.until).chain(row).filter(|t| *t > now).max()
    };
    let rate = if lift_rate_limit { None } else { of(CooldownKind::RateLimited, account.rate_limit_reset_at) };
    let overload = of(CooldownKind::Overloaded, account.overload_until);
    if let Err(e) = gw.store.set_account_cooldowns(account.id, rate, overload).await {
        tracing::error!(error = %e, account_id = account.id, "saving the account's cooldowns failed");
    }
    // Mirror the row, so a later success knows there is a stored limit to lift.
    let id = account.id;
    gw.snapshot.update(|snap| {
        if let Some(entry) = snap.accounts.get_mut(&id) {
            entry.rate_limit_reset_at = rate;
            entry.overload_until = overload;
        }
    });
}

/// Keeps what the response says about the account's usage windows: stored when it changed
/// (for the admin pages), and with `bench`, an account whose window is used up or past the
/// threshold stops being scheduled until that window resets.
async fn observe_windows(gw: &Gateway, account: &AccountEntry, headers: &HeaderMap, bench: bool) {
    let now = OffsetDateTime::now_utc();
    let Some(all) = gw.windows.observe(account.id, crate::windows::parse(account.platform, headers, now)) else {
        return;
    };
    match serde_json::to_string(&all) {
        Ok(json) => {
            if let Err(e) = gw.store.set_account_windows(account.id, &json).await {
                tracing::warn!(error = %e, account_id = account.id, "saving the account's usage windows failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "usage windows cannot be written"),
    }
    if !bench {
        return;
    }
    if let Some(until) = crate::windows::bench_until(&all, gw.tunables().window_threshold_percent, now) {
        tracing::info!(account_id = account.id, %until, "usage window full; the account waits for its reset");
        apply_health(gw, account, HealthAction::RateLimited { until }).await;
    }
}

/// A success that says the rate-limit window is open again ends a stored rate limit.
async fn lift_rate_limit(gw: &Gateway, account: &AccountEntry) {
    let cleared = gw.coord.clear_cooldown(account.id, CooldownKind::RateLimited).await.unwrap_or(false);
    let stored = gw.snapshot.current().accounts.get(&account.id).and_then(|a| a.rate_limit_reset_at);
    if !cleared && stored.is_none() {
        return;
    }
    tracing::info!(account_id = account.id, "rate limit lifted: the upstream says the window is open");
    persist_cooldowns(gw, account, true).await;
}

fn usage_row(gw: &Gateway, job: &Job, rec: &Record) -> NewUsage {
    let usage = rec.usage.unwrap_or_default();
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let tokens = domain::pricing::TokenCounts {
        input: usage.input_tokens,
        output: usage.output_tokens,
        cache_creation: usage.cache_creation_tokens,
        cache_creation_5m: usage.cache_creation_5m_tokens,
        cache_creation_1h: usage.cache_creation_1h_tokens,
        cache_read: usage.cache_read_tokens,
    };
    let multiplier = job.caller.group.rate_multiplier;
    let priced_model = if rec.upstream_model.is_empty() { &job.model } else { &rec.upstream_model };
    let cost = match gw.prices.lookup(priced_model) {
        Some((_, price)) => domain::pricing::cost(price, &tokens, multiplier),
        None => {
            if rec.usage.is_some() {
                tracing::warn!(model = %priced_model, "no price for this model; usage recorded at zero cost");
            }
            domain::pricing::Cost::default()
        }
    };
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    NewUsage {
        request_id: job.request_id.clone(),
        user_id: Some(job.caller.user.id),
        api_key_id: Some(job.caller.key.id),
        account_id: rec.account_id,
        group_id: Some(job.caller.group.id),
        requested_model: job.model.clone(),
        upstream_model: rec.upstream_model.clone(),
        input_tokens: count(usage.input_tokens),
        output_tokens: count(usage.output_tokens),
        cache_creation_tokens: count(usage.cache_creation_tokens),
        cache_creation_5m_tokens: count(usage.cache_creation_5m_tokens),
        cache_creation_1h_tokens: count(usage.cache_creation_1h_tokens),
        cache_read_tokens: count(usage.cache_read_tokens),
        input_cost: cost.input,
        output_cost: cost.output,
        cache_creation_cost: cost.cache_creation,
        cache_read_cost: cost.cache_read,
        total_cost: cost.total,
        actual_cost: cost.actual,
        rate_multiplier: multiplier,
        stream: job.stream,
        status_code: i32::from(rec.status),
        error_message: rec.error.clone(),
        duration_ms: ms(job.started.elapsed()),
        first_token_ms: rec.first_token.map(ms),
        user_agent: job
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(256)
            .collect(),
        created_at: job.started_at,
    }
}
