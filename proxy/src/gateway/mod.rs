//! The gateway's I/O half: routes, the relay loop, upstream clients. The policy pieces it
//! assembles (auth, schedule, cooldown, sticky, usage, error) are pure and live beside it.
//!
//! - [`messages`]: `POST /v1/messages` and `/v1/messages/count_tokens`, `GET /v1/models`.
//! - [`relay`]: one request from admission to its usage row: slots, waiting with pings,
//!   account choice, failover, streaming back.
//! - [`gemini`]: the Gemini-native routes (`/v1beta/models/…`) and how a request is shaped
//!   for a Gemini API-key account.
//! - [`anthropic`]: how a request is shaped for an Anthropic account.
//! - [`account_test`]: the admin "test this account" request.

pub mod account_test;
mod anthropic;
mod claude_code;
mod code_assist;
mod codex;
mod gemini;
mod messages;
mod openai;
mod relay;
mod sink;
mod tap;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::pricing::PriceTable;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use store::Store;
use store::coord::{CooldownKind, Coordinator};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cooldown::CooldownConfig;
use crate::error::{Protocol, ProxyError};
use crate::outbound::{self, ProxiedClients};
use crate::schedule::Live;
use crate::snapshot::SnapshotCell;
use crate::usage_writer::UsageWriter;

/// The bundled LiteLLM price catalogue (see `proxy/data/README.md`).
const BUNDLED_PRICES: &str = include_str!("../../data/model_prices.json");
/// Where the bundled prices come from, for the admin UI (keep in step with the README).
pub const PRICE_SOURCE: &str = "LiteLLM 1.110.2 catalogue, bundled (extracted 2026-11-26)";

pub const OVERHEAD_HEADER: HeaderName = HeaderName::from_static("x-sub2api-overhead-ms");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Anthropic's own request id header; the SDKs expose it as `_request_id`.
const ANTHROPIC_REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

/// The `gateway` and `rate_limit` configuration sections, as the relay uses them.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest request body accepted (after request decompression).
    pub max_body_size: usize,
    /// Accounts a request may move on to after the first one failed.
    pub max_account_switches: u32,
    pub sticky_ttl: Duration,
    /// Longest a request waits for a free slot before it is refused with 429.
    pub wait_timeout: Duration,
    /// Waiters allowed per slot key beyond its concurrency.
    pub max_extra_waiters: u32,
    /// Streaming requests that wait for a slot get `event: ping` this often.
    pub ping_interval: Duration,
    /// Longest wait for the upstream's response headers.
    pub response_header_timeout: Duration,
    /// Longest silence between two chunks of an upstream stream.
    pub stream_idle_timeout: Duration,
    /// Lease time of a slot; a long stream refreshes it, a crashed holder's slot comes back.
    pub slot_ttl: Duration,
    /// Used when an Anthropic account has no `base_url`.
    pub anthropic_base_url: String,
    /// Used when an OpenAI account has no `base_url`.
    pub openai_base_url: String,
    /// Used when a Gemini account has no `base_url`.
    pub gemini_base_url: String,
    /// Where Google (Code Assist) subscription accounts are served: `{base}/v1internal:{action}`.
    pub code_assist_base_url: String,
    /// Where ChatGPT (Codex) subscription accounts are served: `{base}/backend-api/codex/responses`.
    pub chatgpt_base_url: String,
    /// Instructions sent to the Codex backend for clients that send none (it requires some).
    pub codex_instructions: String,
    pub cooldown: CooldownConfig,
    /// Sign-in and token refresh of subscription accounts.
    pub oauth: crate::oauth::OAuthConfig,
    /// See [`Tunables::window_threshold_percent`].
    pub window_threshold_percent: u8,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_body_size: 256 * 1024 * 1024,
            max_account_switches: 3,
            sticky_ttl: Duration::from_secs(3600),
            wait_timeout: Duration::from_secs(30),
            max_extra_waiters: 20,
            ping_interval: Duration::from_secs(10),
            response_header_timeout: Duration::from_secs(600),
            stream_idle_timeout: Duration::from_secs(180),
            slot_ttl: Duration::from_secs(30 * 60),
            anthropic_base_url: "https://api.anthropic.com".into(),
            openai_base_url: "https://api.openai.com".into(),
            gemini_base_url: "https://generativelanguage.googleapis.com".into(),
            chatgpt_base_url: "https://chatgpt.com".into(),
            code_assist_base_url: "https://cloudcode-pa.googleapis.com".into(),
            codex_instructions: "You are a helpful assistant.".into(),
            cooldown: CooldownConfig::default(),
            oauth: crate::oauth::OAuthConfig::default(),
            window_threshold_percent: 0,
        }
    }
}

/// The relay tunables in force for one request: the configuration file, overridden by what
/// an administrator stored in the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunables {
    pub max_account_switches: u32,
    pub sticky_ttl: Duration,
    pub wait_timeout: Duration,
    pub max_extra_waiters: u32,
    pub cooldown: CooldownConfig,
    /// Stop scheduling a subscription account whose usage window is this full (percent)
    /// until the window resets; 0: only when it is used up.
    pub window_threshold_percent: u8,
}

impl GatewayConfig {
    pub fn tunables(&self, stored: &domain::settings::GatewayOverrides) -> Tunables {
        Tunables {
            max_account_switches: stored.max_account_switches.unwrap_or(self.max_account_switches),
            sticky_ttl: stored.sticky_ttl_seconds.map_or(self.sticky_ttl, Duration::from_secs),
            wait_timeout: stored.wait_timeout_seconds.map_or(self.wait_timeout, Duration::from_secs),
            max_extra_waiters: stored.max_extra_waiters.unwrap_or(self.max_extra_waiters),
            cooldown: CooldownConfig {
                fallback_cooldown_seconds: stored
                    .fallback_cooldown_seconds
                    .unwrap_or(self.cooldown.fallback_cooldown_seconds),
                overload_cooldown_minutes: stored
                    .overload_cooldown_minutes
                    .unwrap_or(self.cooldown.overload_cooldown_minutes),
            },
            window_threshold_percent: stored.window_threshold_percent.unwrap_or(self.window_threshold_percent),
        }
    }
}

/// Everything the relay shares across requests.
pub struct Gateway {
    pub config: GatewayConfig,
    pub snapshot: Arc<SnapshotCell>,
    pub coord: Arc<dyn Coordinator>,
    pub(crate) store: Store,
    /// The client for accounts without an outbound proxy.
    http: reqwest::Client,
    /// The clients for accounts behind an outbound proxy, one per proxy.
    proxied: ProxiedClients,
    usage: UsageWriter,
    prices: PriceTable,
    /// When this instance last picked each account, for least-recently-used order between
    /// snapshot reloads (the store's `last_used_at` is written with the usage rows).
    last_used: Mutex<HashMap<i64, OffsetDateTime>>,
    /// Subscription usage windows as the upstreams last reported them.
    windows: crate::windows::WindowBook,
    /// The relay tasks, so shutdown can wait for their usage rows.
    tasks: TaskTracker,
    /// Cancelled when the shutdown grace period is over: streams still running are cut (and
    /// their rows recorded) instead of outliving the server.
    shutdown: CancellationToken,
}

impl Gateway {
    pub fn new(
        config: GatewayConfig,
        snapshot: Arc<SnapshotCell>,
        coord: Arc<dyn Coordinator>,
        store: Store,
        usage: UsageWriter,
    ) -> anyhow::Result<Gateway> {
        let http = outbound::client_builder().build()?;
        let prices: PriceTable = serde_json::from_str(BUNDLED_PRICES)?;
        Ok(Gateway {
            config,
            snapshot,
            coord,
            store,
            http,
            proxied: ProxiedClients::default(),
            usage,
            prices,
            last_used: Mutex::new(HashMap::new()),
            windows: crate::windows::WindowBook::default(),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        })
    }

    /// After the grace period: cut the streams still running, then wait (at most `timeout`)
    /// for every relay task to record its usage row.
    pub async fn stop_relays(&self, cut_streams: bool, timeout: Duration) -> bool {
        if cut_streams {
            self.shutdown.cancel();
        }
        self.tasks.close();
        tokio::time::timeout(timeout, self.tasks.wait()).await.is_ok()
    }

    /// The gateway routes, ready to be merged into the server's router.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/messages", post(messages::messages_handler))
            .route("/v1/messages/count_tokens", post(messages::count_tokens_handler))
            .route("/v1/models", get(messages::models_handler))
            .route("/v1/chat/completions", post(messages::chat_handler))
            .route("/chat/completions", post(messages::chat_handler))
            .route("/v1/responses", post(messages::responses_handler).get(messages::responses_socket_handler))
            .route("/responses", post(messages::responses_handler).get(messages::responses_socket_handler))
            .route(
                "/backend-api/codex/responses",
                post(messages::responses_handler).get(messages::responses_socket_handler),
            )
            .route("/v1/responses/{*subpath}", post(messages::responses_handler))
            .route("/backend-api/codex/responses/{*subpath}", post(messages::responses_handler))
            .route("/v1beta/models", get(gemini::list_models_handler))
            .route("/v1beta/models/{*target}", get(gemini::get_model_handler).post(gemini::generate_handler))
            .route("/v1/models/{*target}", post(gemini::generate_handler))
            .layer(tower_http::decompression::RequestDecompressionLayer::new())
            .with_state(Arc::clone(self))
    }

    /// Slots held right now on each account (all instances), for the admin views.
    pub async fn in_flight(&self, account_ids: &[i64]) -> HashMap<i64, u32> {
        let keys: Vec<String> = account_ids.iter().map(|id| account_slot_key(*id)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        match self.coord.slot_counts(&refs).await {
            Ok(counts) => account_ids.iter().copied().zip(counts).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "reading slot counts failed");
                HashMap::new()
            }
        }
    }

    /// Ends the run-time cooldowns of an account (admin "clear rate limit").
    pub async fn clear_cooldowns(&self, account_id: i64) {
        for kind in CooldownKind::ALL {
            if let Err(e) = self.coord.clear_cooldown(account_id, kind).await {
                tracing::warn!(error = %e, account_id, "clearing a cooldown failed");
            }
        }
    }

    /// Reloads keys, users, groups and accounts from the store.
    pub async fn refresh(&self) {
        if let Err(e) = self.snapshot.refresh().await {
            tracing::error!(error = %e, "reloading the gateway snapshot failed; the previous one stays");
        }
    }

    /// The tunables in force now. They travel with the snapshot, so a settings change
    /// reaches every instance with the reload that follows it.
    pub fn tunables(&self) -> Tunables {
        self.config.tunables(&self.snapshot.current().settings)
    }

    /// The models `GET /v1/models` lists for `group_id` right now, and whether that is the
    /// platform's built-in list; `None` for an unknown group.
    pub fn group_models(&self, group_id: i64) -> Option<(Vec<String>, bool)> {
        let snap = self.snapshot.current();
        let group = snap.groups.get(&group_id)?;
        let (models, built_in) = messages::group_models(&snap, group);
        Some((models.into_iter().map(|(id, _)| id.to_owned()).collect(), built_in))
    }

    /// The price table usage is billed with.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }

    /// Tells the other instances to reload (a no-op without Redis).
    pub async fn announce_change(&self) {
        if let Err(e) = self.coord.announce_change().await {
            tracing::warn!(error = %e, "announcing a change to other instances failed");
        }
    }

    /// Run-time state of `account_ids`: cooldowns and loads from the coordinator, plus the
    /// local last-used times. A coordinator failure degrades to "no run-time state" (fail
    /// open): the stored cooldowns still apply.
    async fn live(&self, account_ids: &[i64]) -> HashMap<i64, Live> {
        let keys: Vec<String> = account_ids.iter().map(|id| account_slot_key(*id)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (loads, cooldowns) = tokio::join!(self.coord.slot_loads(&refs), self.coord.cooldowns(account_ids));
        let loads = loads.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading slot loads failed");
            Vec::new()
        });
        let cooldowns = cooldowns.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "reading cooldowns failed");
            HashMap::new()
        });
        let last_used = self.last_used.lock().unwrap_or_else(|p| p.into_inner());
        account_ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let live = Live {
                    cooldown_until: cooldowns.get(id).and_then(|list| list.iter().map(|c| c.until).max()),
                    in_flight: loads.get(i).map_or(0, |l| l.held),
                    last_used: last_used.get(id).copied(),
                };
                (*id, live)
            })
            .collect()
    }

    /// The client that carries `account`'s upstream traffic: through its proxy, or direct.
    /// A proxied client is built once per proxy and then shared.
    fn client_for(&self, account: &crate::snapshot::AccountEntry) -> reqwest::Result<reqwest::Client> {
        let Some(target) = account.proxy.as_deref() else { return Ok(self.http.clone()) };
        self.proxied.get(target, |t| self.snapshot.current().proxies.values().any(|p| **p == *t))
    }

    /// The client for an account's token requests: through its proxy like its traffic, or
    /// direct.
    pub(crate) fn oauth_client(&self, account_id: i64) -> reqwest::Client {
        let snap = self.snapshot.current();
        match snap.accounts.get(&account_id) {
            Some(account) => self.client_for(account).unwrap_or_else(|_| self.http.clone()),
            None => self.http.clone(),
        }
    }

    /// The client for a sign-in's code exchange: through `proxy_id` when the admin chose one.
    pub fn sign_in_client(&self, proxy_id: Option<i64>) -> reqwest::Result<reqwest::Client> {
        let snap = self.snapshot.current();
        match proxy_id.and_then(|id| snap.proxies.get(&id)) {
            Some(target) => self.proxied.get(target, |t| snap.proxies.values().any(|p| **p == *t)),
            None => Ok(self.http.clone()),
        }
    }

    fn note_used(&self, account_id: i64, at: OffsetDateTime) {
        self.last_used.lock().unwrap_or_else(|p| p.into_inner()).insert(account_id, at);
    }
}

/// The account's own base URL, else the platform default, without a trailing `/`.
fn upstream_base<'a>(account: &'a crate::snapshot::AccountEntry, default_base: &'a str) -> &'a str {
    account.base_url.as_deref().filter(|b| !b.is_empty()).unwrap_or(default_base).trim_end_matches('/')
}

/// The client headers on `allowlist` (and `x-stainless-*`), plus a JSON body and an
/// uncompressed answer (so usage can be read and the client sees one consistent encoding).
/// The gateway key, cookies and hop-by-hop headers never pass.
fn forwarded_headers(client: &HeaderMap, allowlist: &[&str]) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(allowlist.len() + 4);
    for (name, value) in client {
        if allowlist.contains(&name.as_str()) || name.as_str().starts_with("x-stainless-") {
            out.append(name.clone(), value.clone());
        }
    }
    out.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    out.insert(http::header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    out
}

/// A credential as a header value that logs and debug output never show.
fn secret_header(value: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(value).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// `x-sub2api-overhead-ms` for time spent in the gateway.
fn overhead_value(overhead: Duration) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("{:.3}", overhead.as_secs_f64() * 1000.0)).ok()
}

pub fn account_slot_key(id: i64) -> String {
    format!("account:{id}")
}

/// `limit ≤ 0` means unlimited, which the coordinator spells 0.
fn slot_limit(limit: i32) -> u32 {
    u32::try_from(limit).unwrap_or(0)
}

/// The request id the server's layer put on the request (or the caller's own).
fn request_id(headers: &HeaderMap) -> String {
    headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// A gateway error in `protocol`'s shape, with the retry hints and request id.
pub fn error_response(protocol: Protocol, err: &ProxyError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = (status, axum::Json(err.body(protocol))).into_response();
    let headers = res.headers_mut();
    if let Some(secs) = err.retry_after() {
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    headers.insert("x-should-retry", HeaderValue::from_static(if err.should_retry() { "true" } else { "false" }));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(ANTHROPIC_REQUEST_ID, id);
    }
    res
}

/// Reads the whole request body, refusing it once it passes `limit` bytes.
async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, ProxyError> {
    let declared =
        headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ProxyError::TooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            if cause.is::<http_body_util::LengthLimitError>() {
                return ProxyError::TooLarge { limit };
            }
            source = cause.source();
        }
        ProxyError::InvalidRequest(format!("could not read the request body: {e}"))
    })
}
