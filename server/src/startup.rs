//! Building and running the server: connect and migrate, bootstrap the admin, assemble the
//! router, bind, serve until a shutdown signal, drain within the grace period.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use app::state::AppState;
use axum::Router;
use axum::http::{HeaderName, Request};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::get;
use axum::serve::ListenerExt;
use leptos::config::{Env, LeptosOptions};
use leptos_axum::{LeptosRoutes, generate_route_list};
use proxy::gateway::Gateway;
use proxy::snapshot::SnapshotCell;
use proxy::usage_writer::{UsageWriter, UsageWriterTask};
use store::Store;
use store::coord::{Coordinator, LoginThrottle, MemoryCoordinator, RedisCoordinator};
use store::session::DbSessionStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::bootstrap::{self, AdminBootstrap};
use crate::config::Config;
use crate::ops::{self, Metrics, OpsState};
use crate::web::{self, SignInGuard};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const SESSION_COOKIE: &str = "sub2api_session";

/// A server that is bound and ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    store: Store,
    gateway: Arc<Gateway>,
    usage_task: UsageWriterTask,
    grace: Duration,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Application {
    /// Connects to the database, migrates, bootstraps the admin, and binds the listener.
    pub async fn build(config: &Config, env: &BTreeMap<String, String>) -> anyhow::Result<Application> {
        let secrets = crate::secrets::load_secret_box(&config.security)?;
        let store = open_store(config).await?;
        crate::secrets::verify_key_matches(&store, &secrets).await?;
        match bootstrap::ensure_admin(&store, env).await? {
            AdminBootstrap::Existing => {}
            AdminBootstrap::Created { email, generated_password: Some(password) } => {
                tracing::warn!(
                    "created the first admin; sign in with email: {email} password: {password} \
                     (shown once; change it with `sub2api admin reset-password --email {email}`)"
                );
            }
            AdminBootstrap::Created { email, generated_password: None } => {
                tracing::info!(%email, "created the first admin with the password from SUB2API_ADMIN_PASSWORD");
            }
        }
        if bootstrap::install_admin_api_key(&store, env).await? {
            tracing::info!("admin API key set from SUB2API_ADMIN_API_KEY");
        }

        let redis = match config.redis.url.as_str() {
            "" => None,
            url => Some(redis::Client::open(url).context("redis.url")?),
        };
        let tasks = TaskTracker::new();
        let cancel = CancellationToken::new();
        let sessions = DbSessionStore::new(store.clone());
        spawn_session_purge(&tasks, &cancel, sessions.clone());

        let snapshot =
            Arc::new(SnapshotCell::load(store.clone(), secrets.clone()).await.context("loading accounts and keys")?);
        let coord: Arc<dyn Coordinator> = if config.redis.url.is_empty() {
            let memory = MemoryCoordinator::new();
            memory.spawn_purge(&tasks, cancel.clone());
            Arc::new(memory)
        } else {
            let redis = RedisCoordinator::connect(&config.redis.url, &config.redis.key_prefix)
                .await
                .with_context(|| format!("cannot use Redis at {}", store::db::redact_url(&config.redis.url)))?;
            tracing::info!(prefix = %config.redis.key_prefix, "coordination in Redis");
            Arc::new(redis)
        };
        let (usage, usage_task) = UsageWriter::spawn(store.clone(), config.gateway.usage_queue_size as usize);
        let gateway = Arc::new(Gateway::new(config.gateway(), snapshot, coord, store.clone(), usage)?);
        spawn_snapshot_refresh(&tasks, &cancel, &gateway, Duration::from_secs(config.gateway.snapshot_refresh_seconds));
        spawn_change_listener(&tasks, &cancel, &gateway);
        spawn_token_refresh(&tasks, &cancel, &gateway);

        let router = build_router(config, store.clone(), secrets, redis, sessions, Arc::clone(&gateway))?;
        let addr = format!("{}:{}", config.server.host, config.server.port);
        let listener = TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        Ok(Application {
            listener,
            router,
            store,
            gateway,
            usage_task,
            grace: Duration::from_secs(config.server.shutdown_grace_seconds),
            tasks,
            cancel,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish
    /// within the grace period, stops background jobs and closes the database.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application { listener, router, store, gateway, usage_task, grace, tasks, cancel } = self;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        // Small SSE writes would otherwise wait on delayed ACKs (tens of ms per event).
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY could not be set on a connection");
            }
        });
        let mut server = tokio::spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await
        });
        // Whatever ends the serving (a signal, or the server failing), the relay tasks are
        // waited for and the usage rows drained before returning.
        let flatten = |res: Result<std::io::Result<()>, tokio::task::JoinError>| -> anyhow::Result<()> { Ok(res??) };
        let mut outcome = Ok(());
        let failed_early = tokio::select! {
            () = shutdown => false,
            res = &mut server => {
                outcome = flatten(res);
                true
            }
        };
        let cut = if failed_early {
            false
        } else {
            tracing::info!(
                grace_seconds = grace.as_secs(),
                "shutting down: no new connections; finishing in-flight requests"
            );
            let _ = stop_tx.send(());
            match tokio::time::timeout(grace, &mut server).await {
                Ok(res) => {
                    outcome = flatten(res);
                    false
                }
                Err(_) => {
                    tracing::warn!("grace period over; closing the remaining connections");
                    server.abort();
                    true
                }
            }
        };
        if !gateway.stop_relays(cut, Duration::from_secs(5)).await {
            tracing::warn!("some relay tasks did not end in time");
        }
        cancel.cancel();
        tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
        // Relay tasks of the last requests still hold the usage writer; wait for them to end
        // (the server is down, so they are finishing), then drain the queue.
        drop(gateway_for_shutdown(gateway).await);
        if !usage_task.close(Duration::from_secs(10)).await {
            tracing::warn!("usage rows were still being written when shutdown gave up");
        }
        // Connections still checked out by aborted requests would make `close` wait forever.
        if tokio::time::timeout(Duration::from_secs(5), store.close()).await.is_err() {
            tracing::warn!("database pool did not close in time");
        }
        tracing::info!("stopped");
        outcome
    }
}

/// Opens the database named in the config and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database.url, config.database.max_connections)
        .await
        .with_context(|| format!("cannot open the database {}", store::db::redact_url(&config.database.url)))?;
    store.migrate().await.context("database migration failed")?;
    tracing::info!(backend = store.backend_name(), "database ready");
    Ok(store)
}

/// Waits (bounded) until only this handle to the gateway is left: every relay task has ended
/// and dropped its usage sender, so the writer can drain and stop.
async fn gateway_for_shutdown(gateway: Arc<Gateway>) -> Option<Gateway> {
    let mut gateway = gateway;
    for _ in 0..100 {
        match Arc::try_unwrap(gateway) {
            Ok(g) => return Some(g),
            Err(shared) => gateway = shared,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::warn!("relay tasks still running at shutdown");
    None
}

fn spawn_snapshot_refresh(tasks: &TaskTracker, cancel: &CancellationToken, gateway: &Arc<Gateway>, every: Duration) {
    if every.is_zero() {
        return;
    }
    let cancel = cancel.clone();
    let gateway = Arc::downgrade(gateway);
    tasks.spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticks.tick() => match gateway.upgrade() {
                    Some(g) => g.refresh().await,
                    None => break,
                },
            }
        }
    });
}

/// Refreshes OAuth tokens ahead of their expiry (`oauth.refresh`). The first look is right
/// after start, so tokens that expired while the gateway was down are renewed at once.
fn spawn_token_refresh(tasks: &TaskTracker, cancel: &CancellationToken, gateway: &Arc<Gateway>) {
    let refresh = gateway.config.oauth.refresh;
    if !refresh.enabled {
        return;
    }
    let cancel = cancel.clone();
    let gateway = Arc::downgrade(gateway);
    tasks.spawn(async move {
        let mut ticks = tokio::time::interval(refresh.check_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticks.tick() => {
                    let Some(g) = gateway.upgrade() else { break };
                    // A refresh in flight is cut at shutdown; the next start redoes it.
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        n = proxy::oauth::keeper::refresh_due(&g) => {
                            if n > 0 {
                                tracing::info!(refreshed = n, "OAuth tokens refreshed ahead of expiry");
                            }
                        }
                    }
                }
            }
        }
    });
}

/// Reloads the snapshot when another instance announces an admin change (Redis only).
fn spawn_change_listener(tasks: &TaskTracker, cancel: &CancellationToken, gateway: &Arc<Gateway>) {
    let Some(mut changes) = gateway.coord.changes() else { return };
    let cancel = cancel.clone();
    let gateway = Arc::downgrade(gateway);
    tasks.spawn(async move {
        loop {
            let received = tokio::select! {
                () = cancel.cancelled() => break,
                received = changes.recv() => received,
            };
            if matches!(received, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                break;
            }
            // Several announcements in a row need one reload.
            while changes.try_recv().is_ok() {}
            match gateway.upgrade() {
                Some(g) => g.refresh().await,
                None => break,
            }
        }
    });
}

fn spawn_session_purge(tasks: &TaskTracker, cancel: &CancellationToken, sessions: DbSessionStore) {
    let cancel = cancel.clone();
    tasks.spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(600));
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = every.tick() => match sessions.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "expired admin sessions purged"),
                    Err(e) => tracing::warn!(error = %e, "purging expired sessions failed"),
                },
            }
        }
    });
}

/// Where the built UI lives; see `server.site_root` in the config.
fn site_root(config: &Config) -> String {
    if !config.server.site_root.is_empty() {
        return config.server.site_root.clone();
    }
    if let Ok(root) = std::env::var("LEPTOS_SITE_ROOT") {
        return root;
    }
    let beside_exe = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join("site")));
    match beside_exe {
        Some(dir) if dir.join("pkg").is_dir() => dir.display().to_string(),
        _ => PathBuf::from("target").join("site").display().to_string(),
    }
}

fn build_router(
    config: &Config,
    store: Store,
    secrets: store::cipher::SecretBox,
    redis: Option<redis::Client>,
    sessions: DbSessionStore,
    gateway: Arc<Gateway>,
) -> anyhow::Result<Router> {
    let leptos_options = LeptosOptions::builder()
        .output_name("sub2api")
        .site_root(site_root(config))
        .site_pkg_dir("pkg")
        .env(Env::PROD)
        .build();
    let state = AppState {
        leptos_options: leptos_options.clone(),
        store: store.clone(),
        throttle: Arc::new(LoginThrottle::new(
            config.auth.login_max_failures,
            Duration::from_secs(config.auth.login_window_seconds),
        )),
        secrets,
        gateway: Arc::clone(&gateway),
    };
    let routes = generate_route_list(app::App);
    let pages: HashSet<String> = routes.iter().map(|r| r.path().to_owned()).filter(|p| p != web::LOGIN_PATH).collect();
    let guard = SignInGuard { store: store.clone(), pages: Arc::new(pages) };
    let idle = time::Duration::minutes(i64::try_from(config.server.session_idle_minutes).unwrap_or(i64::MAX / 60));
    let session_layer = SessionManagerLayer::new(sessions)
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(config.server.secure_cookies)
        .with_expiry(Expiry::OnInactivity(idle));

    let shell_options = leptos_options.clone();
    let ui = Router::new()
        .leptos_routes(&state, routes, move || app::shell(shell_options.clone()))
        .nest("/api/v1/admin", crate::admin_api::router())
        .layer(from_fn(web::server_fn_error_status))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
        .layer(from_fn_with_state(Arc::clone(&gateway), web::refresh_after_change))
        .layer(from_fn_with_state(guard, web::require_sign_in))
        .layer(session_layer)
        .layer(from_fn(web::secure_cookies_behind_tls))
        .layer(from_fn(web::same_origin_only))
        .with_state(state);

    let metrics = Metrics::default();
    let ops_state = OpsState { store, redis, metrics: metrics.clone() };
    let ops = Router::new()
        .route("/health", get(ops::health_handler))
        .route("/ready", get(ops::ready_handler))
        .route("/metrics", get(ops::metrics_handler))
        // Claude Code probes the base URL with `HEAD /` (or `HEAD /v1`) before its first request.
        .route("/", axum::routing::head(ops::preflight_handler))
        .route("/v1", axum::routing::head(ops::preflight_handler))
        .with_state(ops_state);

    Ok(Router::new()
        .merge(ops)
        .merge(gateway.router())
        .merge(ui)
        .layer(from_fn_with_state(metrics, ops::track_requests))
        .layer(from_fn_with_state(config.server.trust_forwarded_for, web::client_ip))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
                    tracing::info_span!("request", method = %req.method(), path = req.uri().path(), request_id = id)
                })
                // Gateway 502/503s are upstream trouble, already logged where they happen.
                .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid)))
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
