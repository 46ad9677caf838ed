//! What the benchmark tools share: starting the real `sub2api` binary on a throw-away
//! database, calling its admin REST API, and summarising timings.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

pub const ADMIN_KEY: &str = "admin-bench0123456789abcdef0123456789abcdef0123456789";
pub const ADMIN_EMAIL: &str = "bench@example.com";
pub const ADMIN_PASSWORD: &str = "bench-password-1";
const ENCRYPTION_KEY: &str = "5ab0f1e2d3c4b5a6978877665544332211000ffeeddccbbaa99887766554433f";

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// The running gateway.
pub struct Gateway {
    pub proc: Proc,
    pub base: String,
}

/// Starts `bin` in `dir` (its log goes to `dir/gateway.log`) with the bench admin and key,
/// plus `env` (at least `DATABASE_URL`), and waits until it is healthy.
pub async fn spawn_gateway(
    bin: &PathBuf,
    dir: &Path,
    client: &reqwest::Client,
    env: &[(&str, String)],
) -> anyhow::Result<Gateway> {
    let port = free_port()?;
    let log = std::fs::File::create(dir.join("gateway.log"))?;
    let mut command = Command::new(std::fs::canonicalize(bin)?);
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command
        .current_dir(dir)
        .env("SUB2API__SERVER__HOST", "127.0.0.1")
        .env("SUB2API__SERVER__PORT", port.to_string())
        .env("SUB2API__SECURITY__ENCRYPTION_KEY", ENCRYPTION_KEY)
        .env("SUB2API__LOG__LEVEL", "warn")
        .env("SUB2API_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("SUB2API_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("SUB2API_ADMIN_API_KEY", ADMIN_KEY)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let gateway = Gateway { proc: Proc { child }, base: format!("http://127.0.0.1:{port}") };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client.get(format!("{}/health", gateway.base)).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(gateway);
        }
        if Instant::now() > deadline {
            bail!("the gateway did not become healthy; see {}", dir.join("gateway.log").display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Gateway {
    /// `POST /api/v1/admin{path}` with the admin key; returns `data`.
    pub async fn admin(&self, client: &reqwest::Client, path: &str, body: Value) -> anyhow::Result<Value> {
        let res: Value = client
            .post(format!("{}/api/v1/admin{path}", self.base))
            .header("x-api-key", ADMIN_KEY)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        if res["code"] != 0 {
            bail!("POST {path}: {res}");
        }
        Ok(res["data"].clone())
    }
}

pub struct Stats {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

pub fn stats(mut v: Vec<Duration>) -> Stats {
    if v.is_empty() {
        return Stats { p50: Duration::ZERO, p99: Duration::ZERO, max: Duration::ZERO };
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    Stats { p50: at(0.50), p99: at(0.99), max: v[v.len() - 1] }
}

pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}
