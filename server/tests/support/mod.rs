//! Test harness: the real server on 127.0.0.1 port 0 over a throw-away database, driven over
//! HTTP with a cookie-keeping client that does not follow redirects.

#![allow(dead_code, reason = "each test binary uses a different part of the harness")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use leptos::server_fn::ServerFn;
use reqwest::redirect::Policy;
use server::config::Config;
use server::startup::Application;
use store::testing::TestDb;
use tokio::sync::oneshot;

pub mod subscription;

pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "correct-horse-battery";
pub const ADMIN_API_KEY: &str = "admin-0123456789abcdef0123456789abcdef0123456789abcdef";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub db: TestDb,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn default_env() -> BTreeMap<String, String> {
    [
        ("SUB2API_ADMIN_EMAIL", ADMIN_EMAIL),
        ("SUB2API_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("SUB2API_ADMIN_API_KEY", ADMIN_API_KEY),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub fn test_config(db: &TestDb) -> Config {
    let mut config = Config::default();
    config.database.url = db.url.clone();
    config.server.host = "127.0.0.1".into();
    config.server.port = 0;
    config.server.shutdown_grace_seconds = 5;
    config.security.encryption_key = "ab".repeat(32);
    config
}

impl TestApp {
    pub async fn spawn(db: TestDb) -> TestApp {
        let config = test_config(&db);
        Self::spawn_with(db, config, default_env()).await
    }

    pub async fn spawn_with(db: TestDb, config: Config, env: BTreeMap<String, String>) -> TestApp {
        let app = Application::build(&config, &env).await.expect("build the application");
        let addr = app.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().expect("client");
        TestApp { addr, client, db, stop: Some(stop), server: Some(server) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Posts the sign-in form the way a browser without JavaScript would.
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url(app::api::Login::PATH))
            .header("origin", format!("http://{}", self.addr))
            .header("accept", "text/html,application/xhtml+xml")
            .form(&[("email", email), ("password", password), ("next", "/settings")])
            .send()
            .await
            .expect("login request")
    }

    pub async fn login_admin(&self) {
        let res = self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let status = res.status();
        assert!(
            status.is_redirection(),
            "sign-in should redirect, got {status}: {}",
            res.text().await.unwrap_or_default()
        );
    }

    /// Stops the server the way SIGTERM would and waits for it.
    pub async fn shutdown(self) {
        self.shutdown_keep_db().await;
    }

    /// Like `shutdown`, but hands back the database for checks after the exit.
    pub async fn shutdown_keep_db(mut self) -> TestDb {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
        let TestApp { db, .. } = self;
        db
    }
}

/// Runs `body` against a fresh app on SQLite, and on PostgreSQL when `TEST_DATABASE_URL` is set.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, |$app:ident| $body:block) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let app = TestApp::spawn(store::testing::TestDb::sqlite().await).await;
                {
                    let $app = &app;
                    $body
                }
                app.shutdown().await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = store::testing::TestDb::postgres().await else {
                    eprintln!("TEST_DATABASE_URL not set: PostgreSQL variant not run");
                    return;
                };
                let app = TestApp::spawn(db).await;
                {
                    let $app = &app;
                    $body
                }
                app.shutdown().await;
            }
        }
    };
}

/// An admin REST call to the server at `base` with the admin key; returns `data`, asserting
/// success.
pub async fn admin_at(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let url = format!("{base}/api/v1/admin{path}");
    let req = match method {
        "GET" => client.get(url),
        "POST" => client.post(url),
        "PUT" => client.put(url),
        other => panic!("method {other}"),
    };
    let req = req.header("x-api-key", ADMIN_API_KEY);
    let req = if body.is_null() { req } else { req.json(&body) };
    let res: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
    assert_eq!(res["code"], 0, "{method} {path}: {res}");
    res["data"].clone()
}

/// A minimal Messages request.
pub fn hello(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({"model": model, "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// Usage rows once `n` exist (the writer is asynchronous, within 5 s), newest first.
pub async fn usage_rows(store: &store::Store, n: usize) -> Vec<store::NewUsage> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let rows: Vec<store::NewUsage> = store
            .list_usage(&store::UsageFilter::default(), 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.data)
            .collect();
        if rows.len() >= n || std::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
