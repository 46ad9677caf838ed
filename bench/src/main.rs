//! `sub2api-bench`: measures what the gateway adds on top of its upstream, on this machine.
//!
//! It starts two `fake-upstream` processes (a fast one, and a slow streaming one for the
//! many-streams run), a bare pass-through proxy in-process (the floor: the least any proxy hop
//! costs here), and the real `sub2api` binary over a throw-away SQLite database, configures an
//! account, a user and a key through the admin REST API, then drives the same requests at
//! each target and prints Markdown tables:
//!
//! - concurrency 1, non-stream: latency p50/p99 direct, through the floor, through the gateway,
//!   and the gateway's own `x-sub2api-overhead-ms`;
//! - concurrency 1, stream: time to first byte;
//! - an open-loop fixed rate (default 500 req/s): latency p50/p99 and errors;
//! - closed-loop throughput at concurrency 64;
//! - N concurrent slow streams (default 1000): completions and the longest gap between chunks;
//! - the gateway's RSS idle, after the load, and its peak during the streams.
//!
//! ```text
//! sub2api-bench --gateway-bin PATH --fake-bin PATH [--requests N] [--rate R] [--seconds S] [--streams N]
//! ```

#![allow(clippy::print_stdout, reason = "the Markdown report on stdout is what this tool is for")]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use bench::{Gateway, Proc, ms, rss_kb, spawn_gateway, stats};
use futures_util::StreamExt;
use serde_json::json;

const UPSTREAM_KEY: &str = "sk-ant-bench";

struct Args {
    gateway_bin: PathBuf,
    fake_bin: PathBuf,
    requests: usize,
    rate: u32,
    seconds: u64,
    streams: usize,
    /// Run the gateway with the Redis coordinator at this URL (a fresh key prefix).
    redis: Option<String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        gateway_bin: PathBuf::from("target/release/sub2api"),
        fake_bin: PathBuf::from("target/release/fake-upstream"),
        requests: 2000,
        rate: 500,
        seconds: 10,
        streams: 1000,
        redis: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--gateway-bin" => args.gateway_bin = value.into(),
            "--fake-bin" => args.fake_bin = value.into(),
            "--requests" => args.requests = value.parse()?,
            "--rate" => args.rate = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--streams" => args.streams = value.parse()?,
            "--redis" => args.redis = Some(value),
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

fn spawn_fake(bin: &PathBuf, extra: &[&str]) -> anyhow::Result<(Proc, SocketAddr)> {
    let mut child = Command::new(bin)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = line.trim().parse().with_context(|| format!("fake-upstream printed {line:?}"))?;
    Ok((Proc { child }, addr))
}

/// The floor: a bare pass-through proxy hop (no auth, no scheduling, no accounting).
#[derive(Clone)]
struct Floor {
    client: reqwest::Client,
    upstream: String,
}

async fn floor_handler(State(floor): State<Floor>, headers: HeaderMap, body: Bytes) -> Response {
    let mut req = floor.client.post(&floor.upstream).body(body);
    for name in ["x-api-key", "content-type", "anthropic-version"] {
        if let Some(value) = headers.get(name) {
            req = req.header(name, value);
        }
    }
    match req.send().await {
        Ok(upstream) => {
            let status = upstream.status();
            let content_type = upstream.headers().get(header::CONTENT_TYPE).cloned();
            let mut res = Response::new(Body::from_stream(upstream.bytes_stream()));
            *res.status_mut() = status;
            if let Some(ct) = content_type {
                res.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            res
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn spawn_floor(client: reqwest::Client, fake: SocketAddr) -> anyhow::Result<SocketAddr> {
    let floor = Floor { client, upstream: format!("http://{fake}/v1/messages") };
    let app = axum::Router::new().route("/v1/messages", axum::routing::post(floor_handler)).with_state(floor);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// A group with one unlimited account at `upstream`, and a key for it.
async fn key_for(
    gw: &Gateway,
    client: &reqwest::Client,
    name: &str,
    upstream: SocketAddr,
    user: i64,
) -> anyhow::Result<String> {
    let group = gw.admin(client, "/groups", json!({"name": name, "platform": "anthropic"})).await?["id"].clone();
    gw.admin(
        client,
        "/accounts",
        json!({"name": name, "platform": "anthropic", "type": "apikey", "concurrency": 0,
               "credentials": {"api_key": UPSTREAM_KEY, "base_url": format!("http://{upstream}")},
               "group_ids": [group]}),
    )
    .await?;
    let key = gw.admin(client, &format!("/users/{user}/api-keys"), json!({"name": name, "group_id": group})).await?;
    Ok(key["key"].as_str().ok_or_else(|| anyhow!("no key in {key}"))?.to_owned())
}

/// A group with one unlimited Claude OAuth account signed in through the admin REST flow
/// (the fake's token endpoint takes any code), and a key for it.
async fn oauth_key_for(gw: &Gateway, client: &reqwest::Client, user: i64) -> anyhow::Result<String> {
    let group = gw.admin(client, "/groups", json!({"name": "oauth", "platform": "anthropic"})).await?["id"].clone();
    let started = gw.admin(client, "/accounts/generate-auth-url", json!({"platform": "anthropic"})).await?;
    let url = started["auth_url"].as_str().ok_or_else(|| anyhow!("no auth_url in {started}"))?;
    let state = url.split(['?', '&']).find_map(|p| p.strip_prefix("state=")).ok_or_else(|| anyhow!("no state"))?;
    let account = gw
        .admin(
            client,
            "/accounts/exchange-code",
            json!({"session_id": started["session_id"], "code": format!("bench#{state}"), "name": "oauth",
                   "group_ids": [group], "concurrency": 0}),
        )
        .await?;
    anyhow::ensure!(account["type"] == "oauth", "not an OAuth account: {account}");
    let key = gw.admin(client, &format!("/users/{user}/api-keys"), json!({"name": "oauth", "group_id": group})).await?;
    Ok(key["key"].as_str().ok_or_else(|| anyhow!("no key in {key}"))?.to_owned())
}

#[derive(Clone)]
struct Target {
    name: &'static str,
    url: String,
    key: String,
}

fn body(stream: bool) -> Bytes {
    Bytes::from(
        json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
               "messages": [{"role": "user", "content": "Say hello."}]})
        .to_string(),
    )
}

/// One request's timings: to the first body byte and to the end; the gateway's own overhead.
struct Timing {
    first_byte: Duration,
    total: Duration,
    overhead_ms: Option<f64>,
    chunk_gap: Duration,
}

async fn one(client: &reqwest::Client, target: &Target, payload: Bytes) -> anyhow::Result<Timing> {
    let started = Instant::now();
    let res = client
        .post(&target.url)
        .header("x-api-key", &target.key)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(payload)
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("{} answered {}", target.name, res.status());
    }
    let overhead_ms = res.headers().get("x-sub2api-overhead-ms").and_then(|v| v.to_str().ok()?.parse().ok());
    let mut stream = res.bytes_stream();
    let mut first_byte = None;
    let mut last = Instant::now();
    let mut chunk_gap = Duration::ZERO;
    while let Some(chunk) = stream.next().await {
        chunk?;
        let now = Instant::now();
        first_byte.get_or_insert(now - started);
        chunk_gap = chunk_gap.max(now - last);
        last = now;
    }
    Ok(Timing { first_byte: first_byte.unwrap_or_default(), total: started.elapsed(), overhead_ms, chunk_gap })
}

async fn sequential(client: &reqwest::Client, target: &Target, n: usize, stream: bool) -> anyhow::Result<Vec<Timing>> {
    let payload = body(stream);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(one(client, target, payload.clone()).await?);
    }
    Ok(out)
}

/// Requests started at a fixed rate whatever the answers do (open loop).
async fn fixed_rate(client: &reqwest::Client, target: &Target, rate: u32, seconds: u64) -> (Vec<Duration>, usize) {
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = rate as usize * seconds as usize;
    let payload = body(false);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..total {
        ticks.tick().await;
        let (client, target, payload) = (client.clone(), target.clone(), payload.clone());
        tasks.spawn(async move { one(&client, &target, payload).await.map(|t| t.total) });
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(latency)) => latencies.push(latency),
            _ => errors += 1,
        }
    }
    (latencies, errors)
}

/// Requests per second with `concurrency` clients each sending the next as soon as the last
/// answer ends (closed loop).
async fn throughput(client: &reqwest::Client, target: &Target, concurrency: usize, seconds: u64) -> f64 {
    let until = Instant::now() + Duration::from_secs(seconds);
    let payload = body(false);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, target, payload) = (client.clone(), target.clone(), payload.clone());
        tasks.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                if one(&client, &target, payload.clone()).await.is_ok() {
                    n += 1;
                }
            }
            n
        });
    }
    let mut done = 0u64;
    while let Some(n) = tasks.join_next().await {
        done += n.unwrap_or(0);
    }
    done as f64 / seconds as f64
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = std::env::temp_dir().join(format!("sub2api-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let client = reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(2048).build()?;

    let (_fake, fake) = spawn_fake(&args.fake_bin, &[])?;
    let (_slow, slow) = spawn_fake(&args.fake_bin, &["--event-delay-ms", "100", "--deltas", "20"])?;
    let floor = spawn_floor(client.clone(), fake).await?;
    let mut env = vec![
        ("DATABASE_URL", format!("sqlite://{}/bench.db", dir.display())),
        // The Claude subscription account signs in at the fast fake and is served by it.
        ("SUB2API__OAUTH__CLAUDE__TOKEN_URL", format!("http://{fake}/v1/oauth/token")),
        ("SUB2API__GATEWAY__ANTHROPIC_BASE_URL", format!("http://{fake}")),
    ];
    if let Some(url) = &args.redis {
        env.push(("REDIS_URL", url.clone()));
        env.push(("SUB2API__REDIS__KEY_PREFIX", format!("sub2api-bench:{}:", std::process::id())));
    }
    let gateway = spawn_gateway(&args.gateway_bin, &dir, &client, &env).await?;
    let pid = gateway.proc.child.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_start = rss_kb(pid);
    let coordinator = if args.redis.is_some() { "Redis" } else { "in-process" };
    println!("Coordinator: {coordinator}.\n");
    let user = gateway
        .admin(&client, "/users", json!({"email": "load@example.com", "password": "load-password-1", "concurrency": 0}))
        .await?["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("no user id"))?;
    let fast_key = key_for(&gateway, &client, "fast", fake, user).await?;
    let slow_key = key_for(&gateway, &client, "slow", slow, user).await?;
    let oauth_key = oauth_key_for(&gateway, &client, user).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kb(pid);

    let targets = [
        Target { name: "direct", url: format!("http://{fake}/v1/messages"), key: UPSTREAM_KEY.into() },
        Target { name: "floor (bare proxy hop)", url: format!("http://{floor}/v1/messages"), key: UPSTREAM_KEY.into() },
        Target { name: "sub2api", url: format!("{}/v1/messages", gateway.base), key: fast_key },
        Target { name: "sub2api, Claude OAuth account", url: format!("{}/v1/messages", gateway.base), key: oauth_key },
    ];
    for target in &targets {
        sequential(&client, target, 300, false).await?;
    }

    println!("## Concurrency 1, non-stream ({} requests each)\n", args.requests);
    println!("| target | p50 ms | p99 ms | max ms |\n|---|---|---|---|");
    let mut c1 = Vec::new();
    let mut overheads = Vec::new();
    for target in &targets {
        let timings = sequential(&client, target, args.requests, false).await?;
        overheads.extend(timings.iter().filter_map(|t| t.overhead_ms));
        let s = stats(timings.iter().map(|t| t.total).collect());
        println!("| {} | {} | {} | {} |", target.name, ms(s.p50), ms(s.p99), ms(s.max));
        c1.push(s);
    }
    println!(
        "\nAdded by sub2api over direct: p50 {} ms, p99 {} ms. Added by the floor: p50 {} ms, p99 {} ms.",
        ms(c1[2].p50.saturating_sub(c1[0].p50)),
        ms(c1[2].p99.saturating_sub(c1[0].p99)),
        ms(c1[1].p50.saturating_sub(c1[0].p50)),
        ms(c1[1].p99.saturating_sub(c1[0].p99)),
    );
    println!(
        "Added through a Claude OAuth account (identity shaping: system block, fingerprint, user id): p50 {} ms, p99 {} ms.",
        ms(c1[3].p50.saturating_sub(c1[0].p50)),
        ms(c1[3].p99.saturating_sub(c1[0].p99)),
    );
    let own = stats(overheads.iter().map(|m| Duration::from_secs_f64(m / 1000.0)).collect());
    println!(
        "`x-sub2api-overhead-ms` (time in the gateway, upstream wait excluded): p50 {} ms, p99 {} ms.\n",
        ms(own.p50),
        ms(own.p99)
    );

    println!("## Concurrency 1, stream: time to first byte ({} requests each)\n", args.requests / 2);
    println!("| target | TTFB p50 ms | TTFB p99 ms | whole stream p50 ms |\n|---|---|---|---|");
    for target in &targets {
        let timings = sequential(&client, target, args.requests / 2, true).await?;
        let first = stats(timings.iter().map(|t| t.first_byte).collect());
        let whole = stats(timings.iter().map(|t| t.total).collect());
        println!("| {} | {} | {} | {} |", target.name, ms(first.p50), ms(first.p99), ms(whole.p50));
    }

    println!("\n## Fixed rate {} req/s for {} s, non-stream\n", args.rate, args.seconds);
    println!("| target | p50 ms | p99 ms | max ms | errors |\n|---|---|---|---|---|");
    for target in &targets {
        let (latencies, errors) = fixed_rate(&client, target, args.rate, args.seconds).await;
        let s = stats(latencies);
        println!("| {} | {} | {} | {} | {errors} |", target.name, ms(s.p50), ms(s.p99), ms(s.max));
    }

    println!("\n## Throughput, 64 concurrent clients, 5 s, non-stream\n");
    println!("| target | requests/s |\n|---|---|");
    for target in &targets {
        println!("| {} | {:.0} |", target.name, throughput(&client, target, 64, 5).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = rss_kb(pid);

    println!("\n## {} concurrent streams through sub2api (20 events, 100 ms apart)\n", args.streams);
    let slow_target = Target { name: "sub2api", url: format!("{}/v1/messages", gateway.base), key: slow_key };
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_kb(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.streams {
        let (client, target) = (client.clone(), slow_target.clone());
        tasks.spawn(async move { one(&client, &target, body(true)).await });
    }
    let (mut ok, mut failed, mut gaps) = (0, 0, Vec::new());
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(t)) => {
                ok += 1;
                gaps.push(t.chunk_gap);
            }
            _ => failed += 1,
        }
    }
    sampler.abort();
    let gap = stats(gaps);
    println!("| completed | failed | wall s | longest gap between chunks p50 / p99 / max ms |\n|---|---|---|---|");
    println!(
        "| {ok} | {failed} | {:.2} | {} / {} / {} |",
        started.elapsed().as_secs_f64(),
        ms(gap.p50),
        ms(gap.p99),
        ms(gap.max)
    );

    println!("\n## Gateway memory (VmRSS)\n");
    println!("| state | RSS MB |\n|---|---|");
    let mb = |kb: u64| format!("{:.1}", kb as f64 / 1024.0);
    println!("| idle, just started | {} |", mb(rss_start));
    println!("| idle, after setup (two argon2id password hashes, 19 MiB each) | {} |", mb(rss_idle));
    println!("| after the latency, rate and throughput runs | {} |", mb(rss_after));
    println!("| peak during the concurrent streams | {} |", mb(peak.load(std::sync::atomic::Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
