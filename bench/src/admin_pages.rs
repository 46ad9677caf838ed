//! `sub2api-admin-bench`: how long the admin UI's heaviest pages take to render on the server
//! with a realistic amount of data.
//!
//! It starts the real `sub2api` binary over a throw-away database (SQLite by default, or a
//! fresh PostgreSQL database created next to `--database-url`), seeds groups, users, keys and
//! `--accounts` upstream accounts through the admin REST API, writes `--usage` usage rows
//! spread over the last 30 days straight into the store, signs in, and times full
//! server-side renders (every resource resolved, as `SsrMode::Async` sends them) of the
//! Accounts, Usage and Dashboard pages. Prints a Markdown table.
//!
//! ```text
//! sub2api-admin-bench --gateway-bin PATH [--database-url postgres://…/postgres]
//!                     [--accounts 1000] [--usage 100000] [--samples 20]
//! ```

#![allow(clippy::print_stdout, reason = "the Markdown report on stdout is what this tool is for")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bench::{ADMIN_EMAIL, ADMIN_PASSWORD, ms, spawn_gateway, stats};
use serde_json::json;
use store::{NewUsage, Store};
use time::OffsetDateTime;

struct Args {
    gateway_bin: PathBuf,
    /// A PostgreSQL server URL (any database on it); a fresh database is created beside it.
    database_url: Option<String>,
    accounts: usize,
    usage: usize,
    samples: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args =
        Args { gateway_bin: PathBuf::new(), database_url: None, accounts: 1000, usage: 100_000, samples: 20 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow!("{flag} needs a value"));
        match flag.as_str() {
            "--gateway-bin" => args.gateway_bin = value()?.into(),
            "--database-url" => args.database_url = Some(value()?),
            "--accounts" => args.accounts = value()?.parse()?,
            "--usage" => args.usage = value()?.parse()?,
            "--samples" => args.samples = value()?.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    if args.gateway_bin.as_os_str().is_empty() {
        bail!(
            "usage: sub2api-admin-bench --gateway-bin PATH [--database-url URL] [--accounts N] [--usage N] [--samples N]"
        );
    }
    Ok(args)
}

/// A small deterministic generator: the same data on every run, no extra dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below.max(1)
    }
}

/// A fresh PostgreSQL database on the server of `url`, dropped by [`drop_database`].
async fn create_database(url: &str) -> anyhow::Result<(String, String)> {
    use sqlx::Connection;
    let name = format!("sub2api_admin_bench_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(url).await.context("connecting to PostgreSQL")?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
    conn.close().await?;
    let base = url.split('?').next().unwrap_or(url).rsplit_once('/').map_or(url, |(base, _)| base);
    Ok((format!("{base}/{name}"), name))
}

async fn drop_database(url: &str, name: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

const MODELS: &[&str] =
    &["claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5", "gpt-5", "gpt-5-mini", "gemini-2.5-pro"];

fn usage_row(rng: &mut Lcg, i: usize, now: OffsetDateTime, ids: &Seeded) -> NewUsage {
    let status = match rng.next(100) {
        0..=94 => 200,
        95..=97 => 429,
        _ => 500,
    };
    let input = 200 + rng.next(20_000) as i64;
    let output = 50 + rng.next(4_000) as i64;
    let cost = (input as f64 * 3e-6) + (output as f64 * 15e-6);
    let key = rng.next(ids.keys.len() as u64) as usize;
    let model = MODELS[rng.next(MODELS.len() as u64) as usize];
    NewUsage {
        request_id: format!("bench-{i}"),
        user_id: Some(ids.keys[key].0),
        api_key_id: Some(ids.keys[key].1),
        account_id: Some(ids.accounts[rng.next(ids.accounts.len() as u64) as usize]),
        group_id: Some(ids.groups[rng.next(ids.groups.len() as u64) as usize]),
        requested_model: model.to_owned(),
        upstream_model: model.to_owned(),
        input_tokens: input,
        output_tokens: output,
        cache_creation_tokens: 0,
        cache_creation_5m_tokens: 0,
        cache_creation_1h_tokens: 0,
        cache_read_tokens: rng.next(10_000) as i64,
        input_cost: input as f64 * 3e-6,
        output_cost: output as f64 * 15e-6,
        cache_creation_cost: 0.0,
        cache_read_cost: 0.0,
        total_cost: cost,
        actual_cost: cost,
        rate_multiplier: 1.0,
        stream: rng.next(2) == 0,
        status_code: status,
        error_message: if status == 200 { String::new() } else { format!("upstream answered {status}") },
        duration_ms: 300 + rng.next(20_000) as i64,
        first_token_ms: Some(200 + rng.next(2_000) as i64),
        user_agent: "bench".into(),
        // Spread over the last 30 days, newest last.
        created_at: now - time::Duration::seconds(rng.next(30 * 24 * 3600) as i64),
    }
}

struct Seeded {
    groups: Vec<i64>,
    accounts: Vec<i64>,
    /// (user id, key id)
    keys: Vec<(i64, i64)>,
}

async fn seed(gw: &bench::Gateway, client: &reqwest::Client, accounts: usize) -> anyhow::Result<Seeded> {
    let mut seeded = Seeded { groups: Vec::new(), accounts: Vec::new(), keys: Vec::new() };
    for g in 0..10 {
        let group = gw.admin(client, "/groups", json!({"name": format!("group-{g}"), "platform": "anthropic"})).await?;
        seeded.groups.push(group["id"].as_i64().ok_or_else(|| anyhow!("no group id"))?);
    }
    for a in 0..accounts {
        let group = seeded.groups[a % seeded.groups.len()];
        // Nothing is ever sent to these accounts: port 9 (discard) on loopback.
        let account = gw
            .admin(
                client,
                "/accounts",
                json!({"name": format!("account-{a:04}"), "platform": "anthropic", "type": "apikey",
                       "credentials": {"api_key": format!("sk-ant-bench-{a}"), "base_url": "http://127.0.0.1:9"},
                       "group_ids": [group]}),
            )
            .await?;
        seeded.accounts.push(account["id"].as_i64().ok_or_else(|| anyhow!("no account id"))?);
    }
    for u in 0..50 {
        let user = gw
            .admin(client, "/users", json!({"email": format!("user{u}@bench.test"), "password": "bench-password-1"}))
            .await?;
        let user = user["id"].as_i64().ok_or_else(|| anyhow!("no user id"))?;
        let group = seeded.groups[u % seeded.groups.len()];
        let key = gw.admin(client, &format!("/users/{user}/api-keys"), json!({"name": "k", "group_id": group})).await?;
        seeded.keys.push((user, key["id"].as_i64().ok_or_else(|| anyhow!("no key id in {key}"))?));
    }
    Ok(seeded)
}

/// Signs in through the sign-in form's server function, as a browser without JavaScript.
async fn sign_in(gw: &bench::Gateway, client: &reqwest::Client) -> anyhow::Result<()> {
    let page = client.get(format!("{}/login", gw.base)).send().await?.text().await?;
    let action = page
        .split("action=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .ok_or_else(|| anyhow!("no sign-in form on /login"))?;
    let res = client
        .post(format!("{}{action}", gw.base))
        .header("origin", &gw.base)
        .header("accept", "text/html")
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD), ("next", "/")])
        .send()
        .await?;
    if !res.status().is_redirection() && !res.status().is_success() {
        bail!("sign-in failed: {}", res.status());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = std::env::temp_dir().join(format!("sub2api-admin-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let client = reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build()?;

    let (db_url, pg_name, engine) = match &args.database_url {
        Some(url) => {
            let (db_url, name) = create_database(url).await?;
            (db_url, Some(name), "PostgreSQL")
        }
        None => (format!("sqlite://{}/bench.db", dir.display()), None, "SQLite"),
    };
    let result = run(&args, &dir, &client, &db_url, engine).await;
    if let (Some(url), Some(name)) = (&args.database_url, &pg_name) {
        drop_database(url, name).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(
    args: &Args,
    dir: &std::path::Path,
    client: &reqwest::Client,
    db_url: &str,
    engine: &str,
) -> anyhow::Result<()> {
    let gw = spawn_gateway(&args.gateway_bin, dir, client, &[("DATABASE_URL", db_url.to_owned())]).await?;
    let started = Instant::now();
    let ids = seed(&gw, client, args.accounts).await?;
    let store = Store::connect(db_url, 4).await?;
    // Some accounts in trouble, as on a real dashboard.
    let now = OffsetDateTime::now_utc();
    for (i, id) in ids.accounts.iter().enumerate() {
        match i % 20 {
            0 => store.set_account_status(*id, "error", "upstream answered 401: invalid x-api-key").await?,
            1 => store.set_account_cooldowns(*id, Some(now + time::Duration::minutes(30)), None).await?,
            _ => {}
        }
    }
    let mut rng = Lcg(42);
    let mut batch = Vec::with_capacity(1000);
    for i in 0..args.usage {
        batch.push(usage_row(&mut rng, i, now, &ids));
        if batch.len() == 1000 {
            store.insert_usage(&batch).await?;
            batch.clear();
        }
    }
    store.insert_usage(&batch).await?;
    store.close().await;
    let seeded_in = started.elapsed();

    sign_in(&gw, client).await?;
    println!(
        "### Admin pages, server-side render ({engine}, {} accounts, {} usage rows, seeded in {:.1} s)\n",
        args.accounts,
        args.usage,
        seeded_in.as_secs_f64()
    );
    println!("| page | p50 ms | p99 ms | max ms | HTML KiB |");
    println!("|---|---:|---:|---:|---:|");
    // The default views, then the heaviest variants an operator reaches in one click.
    let pages = [
        ("Accounts", "/accounts"),
        ("Accounts, last page", "/accounts?page=20"),
        ("Accounts, errors only", "/accounts?status=error"),
        ("Usage", "/usage"),
        ("Usage, one model, errors only", "/usage?model=claude-opus-4-1&status=error"),
        ("Dashboard (7-day trend)", "/"),
        ("Dashboard (30-day trend)", "/?range=30"),
    ];
    for (name, path) in pages {
        let url = format!("{}{path}", gw.base);
        let mut times = Vec::with_capacity(args.samples);
        let mut size = 0;
        for round in 0..args.samples + 2 {
            let t = Instant::now();
            let res = client.get(&url).send().await?;
            if res.status() != 200 {
                bail!("GET {path}: {}", res.status());
            }
            size = res.bytes().await?.len();
            // The first two warm caches and connections.
            if round >= 2 {
                times.push(t.elapsed());
            }
        }
        let s = stats(times);
        println!("| {name} | {} | {} | {} | {:.0} |", ms(s.p50), ms(s.p99), ms(s.max), size as f64 / 1024.0);
    }
    drop(gw);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}
