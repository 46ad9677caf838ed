//! Outbound proxies over real HTTP: the real server on port 0, proxies and accounts made
//! through the admin REST API, a counting forward proxy in front of the scripted fake
//! upstream. Every test runs on SQLite and, when `TEST_DATABASE_URL` is set, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

mod support;

use leptos::server_fn::{Protocol, ServerFn};
use proxy::testing::{FakeUpstream, ForwardProxy};
use serde_json::{Value, json};
use store::testing::TestDb;
use support::{ADMIN_API_KEY, TestApp, default_env, hello, test_config};

const PROXY_USER: &str = "relay";
const PROXY_PASSWORD: &str = "pr0xy-s3cret-pw";

/// The server, the fake upstream, a gateway key and a group to put accounts in.
struct Setup {
    app: TestApp,
    fake: FakeUpstream,
    key: String,
    group: i64,
}

impl Setup {
    async fn start(db: TestDb) -> Setup {
        let mut config = test_config(&db);
        // Admin changes must reach the gateway by themselves, not by a timer.
        config.gateway.snapshot_refresh_seconds = 0;
        let app = TestApp::spawn_with(db, config, default_env()).await;
        let fake = FakeUpstream::start().await;
        let group = admin(&app, "POST", "/groups", json!({"name": "claude", "platform": "anthropic"})).await["id"]
            .as_i64()
            .unwrap();
        let user = admin(&app, "POST", "/users", json!({"email": "dev@example.com", "password": "dev-password-1"}))
            .await["id"]
            .as_i64()
            .unwrap();
        let key = admin(&app, "POST", &format!("/users/{user}/api-keys"), json!({"name": "cli", "group_id": group}))
            .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        Setup { app, fake, key, group }
    }

    /// An account on the fake upstream with credential `api_key`, through `proxy_id`.
    async fn account(&self, api_key: &str, proxy_id: Option<i64>, priority: i32) -> i64 {
        let body = json!({
            "name": api_key, "platform": "anthropic", "type": "apikey",
            "credentials": {"api_key": api_key, "base_url": self.fake.url()},
            "group_ids": [self.group], "proxy_id": proxy_id, "priority": priority,
        });
        admin(&self.app, "POST", "/accounts", body).await["id"].as_i64().unwrap()
    }

    async fn send(&self) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url("/v1/messages"))
            .header("x-api-key", &self.key)
            .header("anthropic-version", "2023-06-01")
            .json(&hello("claude-sonnet-4-5", false))
            .send()
            .await
            .unwrap()
    }
}

/// An admin REST call; returns the status and the envelope. No answer may ever carry a proxy
/// password.
async fn rest(app: &TestApp, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let req = app.client.request(method, app.url(&format!("/api/v1/admin{path}"))).header("x-api-key", ADMIN_API_KEY);
    let req = if body.is_null() { req } else { req.json(&body) };
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert!(!text.contains(PROXY_PASSWORD), "{path} leaked a proxy password: {text}");
    (status, serde_json::from_str(&text).unwrap())
}

/// An admin REST call that must succeed; returns `data`.
async fn admin(app: &TestApp, method: &str, path: &str, body: Value) -> Value {
    let (status, envelope) = rest(app, method.parse().unwrap(), path, body).await;
    assert_eq!((status, &envelope["code"]), (200, &json!(0)), "{method} {path}: {envelope}");
    envelope["data"].clone()
}

async fn create_proxy(app: &TestApp, port: u16, password: &str) -> Value {
    let body = json!({
        "name": "office", "protocol": "http", "host": "127.0.0.1", "port": port,
        "username": PROXY_USER, "password": password,
    });
    admin(app, "POST", "/proxies", body).await
}

/// A port with nothing listening on it.
fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

macro_rules! proxy_test {
    ($name:ident, |$db:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn run($db: TestDb) $body

            #[tokio::test]
            async fn sqlite() {
                run(TestDb::sqlite().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                match TestDb::postgres().await {
                    Some(db) => run(db).await,
                    None => eprintln!("TEST_DATABASE_URL not set: PostgreSQL variant not run"),
                }
            }
        }
    };
}

proxy_test!(traffic_goes_through_the_proxy_until_it_is_deleted, |db| {
    let s = Setup::start(db).await;
    let forward = ForwardProxy::start(Some((PROXY_USER, PROXY_PASSWORD))).await;
    let created = create_proxy(&s.app, forward.port(), PROXY_PASSWORD).await;
    assert_eq!((created["has_password"].as_bool(), created["username"].as_str()), (Some(true), Some(PROXY_USER)));
    let proxy_id = created["id"].as_i64().unwrap();
    let account = s.account("sk-ant-proxied", Some(proxy_id), 50).await;

    let res = s.send().await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
    assert_eq!((forward.count(), forward.refused(), s.fake.count()), (1, 0, 1), "one request, through the proxy");

    let listed = admin(&s.app, "GET", "/proxies", Value::Null).await;
    assert_eq!(listed[0]["account_count"], 1);
    assert_eq!(listed[0]["accounts"][0], json!({"id": account, "name": "sk-ant-proxied"}));

    // An edit without a password keeps the stored one.
    let renamed = admin(&s.app, "PUT", &format!("/proxies/{proxy_id}"), json!({"name": "office 2"})).await;
    assert_eq!((renamed["name"].as_str(), renamed["has_password"].as_bool()), (Some("office 2"), Some(true)));
    assert_eq!(s.send().await.status(), 200);
    assert_eq!((forward.count(), s.fake.count()), (2, 2), "still through the proxy, still authenticated");

    admin(&s.app, "DELETE", &format!("/proxies/{proxy_id}"), Value::Null).await;
    let row = admin(&s.app, "GET", &format!("/accounts/{account}"), Value::Null).await;
    assert_eq!(row["proxy_id"], Value::Null, "the account lost its proxy");
    assert_eq!(s.send().await.status(), 200);
    assert_eq!((forward.count(), s.fake.count()), (2, 3), "the account now goes direct");
    let (status, _) = rest(&s.app, reqwest::Method::GET, &format!("/proxies/{proxy_id}"), Value::Null).await;
    assert_eq!(status, 404);
    s.app.shutdown().await;
});

proxy_test!(a_proxy_refusing_its_credentials_fails_over_without_marking_the_account, |db| {
    let s = Setup::start(db).await;
    let forward = ForwardProxy::start(Some((PROXY_USER, PROXY_PASSWORD))).await;
    let proxy_id = create_proxy(&s.app, forward.port(), "wrong-password").await["id"].as_i64().unwrap();
    // The proxied account comes first (lower priority value), the direct one backs it up.
    let proxied = s.account("sk-ant-proxied", Some(proxy_id), 1).await;
    s.account("sk-ant-direct", None, 100).await;

    let res = s.send().await;
    assert_eq!(res.status(), 200, "served by the direct account");
    assert_eq!(forward.refused(), 1, "the proxy answered 407");
    assert_eq!((s.fake.count_for("sk-ant-proxied"), s.fake.count_for("sk-ant-direct")), (0, 1));
    let row = admin(&s.app, "GET", &format!("/accounts/{proxied}"), Value::Null).await;
    assert_eq!((row["status"].as_str(), row["error_message"].as_str()), (Some("active"), Some("")), "{row}");
    assert_eq!(row["rate_limit_reset_at"], Value::Null);
    assert_eq!(row["overload_until"], Value::Null);

    // Once the password is right, the proxied account serves again.
    admin(&s.app, "PUT", &format!("/proxies/{proxy_id}"), json!({"password": PROXY_PASSWORD})).await;
    assert_eq!(s.send().await.status(), 200);
    assert_eq!(s.fake.count_for("sk-ant-proxied"), 1, "through the proxy with its new password");
    s.app.shutdown().await;
});

proxy_test!(the_test_reports_latency_or_the_error_and_uses_the_probe_url, |db| {
    let s = Setup::start(db).await;
    let probe = admin(&s.app, "GET", "/proxies/probe-url", Value::Null).await;
    assert_eq!(probe["url"], "https://api.anthropic.com", "the default");
    let (status, envelope) =
        rest(&s.app, reqwest::Method::PUT, "/proxies/probe-url", json!({"url": "ftp://example.com"})).await;
    assert_eq!(status, 400, "{envelope}");
    let probe_url = format!("{}/", s.fake.url());
    assert_eq!(admin(&s.app, "PUT", "/proxies/probe-url", json!({"url": probe_url})).await["url"], probe_url);

    let forward = ForwardProxy::start(Some((PROXY_USER, PROXY_PASSWORD))).await;
    let working = create_proxy(&s.app, forward.port(), PROXY_PASSWORD).await["id"].as_i64().unwrap();
    let result = admin(&s.app, "POST", &format!("/proxies/{working}/test"), Value::Null).await;
    assert_eq!((result["ok"].as_bool(), result["error"].as_str()), (Some(true), None), "{result}");
    assert!(result["latency_ms"].is_u64() && result["status"].is_u64(), "{result}");
    assert_eq!(result["probe_url"], probe_url);
    assert_eq!((forward.count(), s.fake.count()), (1, 1), "the probe went through the proxy");

    let refused = create_proxy(&s.app, forward.port(), "wrong-password").await["id"].as_i64().unwrap();
    let result = admin(&s.app, "POST", &format!("/proxies/{refused}/test"), Value::Null).await;
    assert_eq!((result["ok"].as_bool(), result["status"].as_u64()), (Some(false), Some(407)), "{result}");

    let dead = create_proxy(&s.app, dead_port(), PROXY_PASSWORD).await["id"].as_i64().unwrap();
    let result = admin(&s.app, "POST", &format!("/proxies/{dead}/test"), Value::Null).await;
    assert_eq!(result["ok"], false, "{result}");
    assert!(!result["error"].as_str().unwrap_or_default().is_empty(), "{result}");
    s.app.shutdown().await;
});

proxy_test!(invalid_input_names_the_field, |db| {
    let s = Setup::start(db).await;
    let bad = [
        (json!({"name": "p", "protocol": "http", "host": "127.0.0.1", "port": 70000}), "port"),
        (json!({"name": "p", "protocol": "http", "host": "http://x", "port": 8080}), "host"),
        (json!({"name": "p", "protocol": "socks4", "host": "x", "port": 1080}), "socks4"),
        (json!({"name": "p", "protocol": "http", "host": "x", "port": 1, "secret": PROXY_PASSWORD}), "secret"),
        (json!({"name": "p", "protocol": "http", "host": "x", "port": 1, "password": PROXY_PASSWORD}), "password"),
    ];
    for (body, field) in bad {
        let (status, envelope) = rest(&s.app, reqwest::Method::POST, "/proxies", body).await;
        assert_eq!(status, 400, "{envelope}");
        assert!(envelope["message"].as_str().unwrap().contains(field), "{field}: {envelope}");
    }
    let (status, _) = rest(
        &s.app,
        reqwest::Method::POST,
        "/accounts",
        json!({
            "name": "a", "platform": "anthropic", "type": "apikey", "credentials": {"api_key": "k"}, "proxy_id": 999,
        }),
    )
    .await;
    assert_eq!(status, 400, "an account cannot name a proxy that does not exist");
    s.app.shutdown().await;
});

/// Calls a server function the way the hydrated page does; returns the status and the JSON.
async fn call<F: ServerFn>(app: &TestApp, body: Option<Value>, form: &[(&str, &str)]) -> (u16, Value) {
    let req = match (F::Protocol::METHOD.as_str(), body) {
        ("GET", _) => app.client.get(app.url(F::PATH)).query(form),
        (_, Some(json)) => app.client.post(app.url(F::PATH)).json(&json),
        _ => app.client.post(app.url(F::PATH)).form(form),
    };
    let res = req.header("origin", format!("http://{}", app.addr)).header("accept", "application/json");
    let res = res.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert!(!text.contains(PROXY_PASSWORD), "{} leaked a proxy password: {text}", F::PATH);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

proxy_test!(the_page_and_its_server_functions_work_for_admins_only, |db| {
    use app::api::accounts::TestAccount;
    use app::api::proxies::{CreateProxy, DeleteProxy, ListProxies, SetProbeUrl, TestProxy, UpdateProxy};

    let s = Setup::start(db).await;
    let (status, error) = call::<ListProxies>(&s.app, None, &[]).await;
    assert_eq!((status, error), (401, json!("Unauthorized")), "signed out");
    s.app.login_admin().await;

    let port = dead_port();
    let input = json!({"input": {
        "name": "office", "protocol": "socks5h", "host": "127.0.0.1", "port": port,
        "username": PROXY_USER, "password": PROXY_PASSWORD,
    }});
    let (status, created) = call::<CreateProxy>(&s.app, Some(input), &[]).await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (status, error) = call::<UpdateProxy>(&s.app, Some(json!({"id": id, "input": {"port": 0}})), &[]).await;
    assert_eq!(status, 400, "validation errors are the caller's to fix");
    assert!(error["Invalid"].as_str().unwrap().starts_with("port:"), "{error}");
    let account = s.account("sk-ant-proxied", Some(id), 50).await;

    let html = s.app.client.get(s.app.url("/proxies")).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains(PROXY_PASSWORD), "the page never carries the password");
    for needle in [
        format!("proxy-row-{id}"),
        format!("test-proxy-{id}"),
        format!("socks5h://127.0.0.1:{port}"),
        "1: sk-ant-proxied".to_owned(),
        "https://api.anthropic.com".to_owned(),
    ] {
        assert!(html.contains(&needle), "server-rendered page lacks {needle}");
    }

    let (status, listed) = call::<ListProxies>(&s.app, None, &[]).await;
    assert_eq!((status, listed[0]["account_count"].as_i64()), (200, Some(1)));
    let (status, url) = call::<SetProbeUrl>(&s.app, None, &[("url", &s.fake.url())]).await;
    assert_eq!((status, url.as_str()), (200, Some(s.fake.url().as_str())));
    // Nothing listens there: the test reports an error, not a server failure.
    let (status, result) = call::<TestProxy>(&s.app, None, &[("id", &id.to_string())]).await;
    assert_eq!((status, result["ok"].as_bool()), (200, Some(false)), "{result}");
    // A disabled proxy takes its accounts out of service; testing one says so.
    let disable = json!({"id": id, "input": {"status": "disabled"}});
    assert_eq!(call::<UpdateProxy>(&s.app, Some(disable), &[]).await.0, 200);
    let (status, error) = call::<TestAccount>(&s.app, None, &[("id", &account.to_string())]).await;
    assert_eq!(status, 400, "{error}");
    assert!(error["Invalid"].as_str().unwrap().contains("proxy is disabled or missing"), "{error}");
    let (status, _) = call::<DeleteProxy>(&s.app, None, &[("id", &id.to_string())]).await;
    assert_eq!(status, 200);
    let (status, listed) = call::<ListProxies>(&s.app, None, &[]).await;
    assert_eq!((status, listed), (200, json!([])));
    s.app.shutdown().await;
});
