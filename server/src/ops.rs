//! Operations endpoints: `/health` (the process is up), `/ready` (its database, and Redis when
//! configured, answer), `/metrics` (Prometheus text), and the middleware that feeds metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde_json::json;
use store::Store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Process-wide metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<MetricsInner>,
}

struct MetricsInner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    pool_size: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sub2api");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let (pool_size, pool_idle, pool_max) = (Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("http_requests", "HTTP requests by method, route and status", requests.clone());
        registry.register("http_request_duration_seconds", "Time to response headers, by route", latency.clone());
        registry.register("db_pool_connections", "Open database connections", pool_size.clone());
        registry.register("db_pool_idle_connections", "Idle database connections", pool_idle.clone());
        registry.register("db_pool_max_connections", "Configured database connection limit", pool_max.clone());
        Self { inner: Arc::new(MetricsInner { registry, requests, latency, pool_size, pool_idle, pool_max }) }
    }
}

impl Metrics {
    fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let inner = &self.inner;
        inner
            .requests
            .get_or_create(&RequestLabels { method: method.to_owned(), route: route.to_owned(), status })
            .inc();
        inner.latency.get_or_create(&RouteLabels { route: route.to_owned() }).observe(elapsed.as_secs_f64());
    }

    fn render(&self, store: &Store) -> Result<String, std::fmt::Error> {
        let pool = store.pool_stats();
        self.inner.pool_size.set(i64::from(pool.size));
        self.inner.pool_idle.set(i64::from(pool.idle));
        self.inner.pool_max.set(i64::from(pool.max));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)?;
        Ok(text)
    }
}

/// Counts every request under its route pattern (never the raw path, which would explode
/// the label set), or `unmatched` for static files and 404s.
pub async fn track_requests(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // Any token is a valid method to hyper: only the standard ones get their own label.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "OTHER",
    }
    .to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let response = next.run(req).await;
    metrics.observe(&method, &route, response.status().as_u16(), started.elapsed());
    response
}

/// Everything `/ready` and `/metrics` look at.
#[derive(Clone)]
pub struct OpsState {
    pub store: Store,
    pub redis: Option<redis::Client>,
    pub metrics: Metrics,
}

/// Answers a client's reachability probe at once, without touching the database.
pub async fn preflight_handler() -> StatusCode {
    StatusCode::OK
}

pub async fn health_handler() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready_handler(State(ops): State<OpsState>) -> Response {
    let database = match tokio::time::timeout(Duration::from_secs(2), ops.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    };
    let redis = match &ops.redis {
        None => None,
        Some(client) => Some(match tokio::time::timeout(Duration::from_secs(2), ping_redis(client)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_owned()),
        }),
    };
    let ready = database.is_ok() && redis.as_ref().is_none_or(Result::is_ok);
    for (what, res) in [("database", Some(&database)), ("redis", redis.as_ref())] {
        if let Some(Err(e)) = res {
            tracing::warn!(check = what, error = %e, "readiness check failed");
        }
    }
    let check = |r: Option<&Result<(), String>>| match r {
        None => "disabled",
        Some(Ok(())) => "ok",
        Some(Err(_)) => "unavailable",
    };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": check(Some(&database)),
        "redis": check(redis.as_ref()),
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

async fn ping_redis(client: &redis::Client) -> redis::RedisResult<()> {
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async::<String>(&mut conn).await.map(drop)
}

pub async fn metrics_handler(State(ops): State<OpsState>) -> Response {
    match ops.metrics.render(&ops.store) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
