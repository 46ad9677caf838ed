//! The gateway over real HTTP: the real server on port 0, accounts pointed at the scripted
//! fake upstream, requests with a gateway key made through the admin REST API. Every test
//! runs on SQLite and, when `TEST_DATABASE_URL` is set, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use http::StatusCode;
use proxy::testing::{FakeUpstream, Script};
use proxy::usage::Usage;
use serde_json::{Value, json};
use server::config::Config;
use store::UsageFilter;
use store::testing::TestDb;
use support::{ADMIN_API_KEY, TestApp, default_env, hello, test_config};

/// The credential of fake account `i`; the fake scripts and journals by it.
fn cred(i: usize) -> String {
    format!("sk-ant-fake-{i}")
}

struct Gw {
    app: TestApp,
    fake: FakeUpstream,
    /// The gateway key of the test user.
    key: String,
    group: i64,
    /// Account ids, in creation order (account `i` uses `cred(i)`).
    accounts: Vec<i64>,
}

fn gateway_config(db: &TestDb) -> Config {
    let mut config = test_config(db);
    config.gateway.ping_interval_seconds = 1;
    config.gateway.max_body_size = 64 * 1024;
    // Admin changes must reach the gateway by themselves, not by a timer.
    config.gateway.snapshot_refresh_seconds = 0;
    config
}

impl Gw {
    async fn start(db: TestDb, accounts: usize, account_json: Value) -> Gw {
        Self::start_with(db, accounts, account_json, |_| {}).await
    }

    async fn start_with(db: TestDb, accounts: usize, account_json: Value, tweak: impl FnOnce(&mut Config)) -> Gw {
        let mut config = gateway_config(&db);
        tweak(&mut config);
        let app = TestApp::spawn_with(db, config, default_env()).await;
        let fake = FakeUpstream::start().await;
        let group =
            admin(&app, "POST", "/groups", json!({"name": "claude", "platform": "anthropic", "rate_multiplier": 1.5}))
                .await["id"]
                .as_i64()
                .unwrap();
        let mut ids = Vec::new();
        for i in 0..accounts {
            let mut body = json!({
                "name": format!("acc-{i}"), "platform": "anthropic", "type": "apikey",
                "credentials": {"api_key": cred(i), "base_url": fake.url()},
                "group_ids": [group],
            });
            for (k, v) in account_json.as_object().unwrap() {
                body[k] = v.clone();
            }
            ids.push(admin(&app, "POST", "/accounts", body).await["id"].as_i64().unwrap());
        }
        let user = admin(
            &app,
            "POST",
            "/users",
            json!({"email": "dev@example.com", "password": "dev-password-1", "concurrency": 100}),
        )
        .await["id"]
            .as_i64()
            .unwrap();
        let key = admin(&app, "POST", &format!("/users/{user}/api-keys"), json!({"name": "cli", "group_id": group}))
            .await["key"]
            .as_str()
            .unwrap()
            .to_owned();
        Gw { app, fake, key, group, accounts: ids }
    }

    async fn send(&self, body: &Value) -> reqwest::Response {
        self.send_with(body, &[]).await
    }

    /// A gateway request to `path` carrying the test key.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.app.client.request(method, self.app.url(path)).header("x-api-key", &self.key)
    }

    async fn send_with(&self, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req =
            self.request(reqwest::Method::POST, "/v1/messages").header("anthropic-version", "2023-06-01").json(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn account(&self, i: usize) -> Value {
        admin(&self.app, "GET", &format!("/accounts/{}", self.accounts[i]), Value::Null).await
    }

    /// Usage rows once `n` exist (the writer is asynchronous), newest first.
    async fn usage_rows(&self, n: usize) -> Vec<store::NewUsage> {
        support::usage_rows(&self.app.db.store, n).await
    }
}

/// An admin REST call with the admin key; returns `data`, asserting success.
async fn admin(app: &TestApp, method: &str, path: &str, body: Value) -> Value {
    support::admin_at(&app.client, &app.url(""), method, path, body).await
}

/// Sticky by Claude Code's JSON `metadata.user_id`.
fn in_session(model: &str, session: &str) -> Value {
    let mut body = hello(model, false);
    body["metadata"] =
        json!({"user_id": json!({"device_id": "d", "account_uuid": "a", "session_id": session}).to_string()});
    body
}

macro_rules! gateway_test {
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

gateway_test!(overloaded_account_fails_over_and_is_skipped, |db| {
    let gw = Gw::start(db, 2, json!({})).await;
    gw.fake.set_default_for(cred(0), Script::status_code(529));
    let res = gw.send(&hello("claude-sonnet-4-5", false)).await;
    assert_eq!(res.status(), 200, "served by the second account");
    assert!(res.headers().contains_key("x-sub2api-overhead-ms"));
    for _ in 0..10 {
        assert_eq!(gw.send(&hello("claude-sonnet-4-5", false)).await.status(), 200);
    }
    assert_eq!(gw.fake.count_for(&cred(0)), 1, "the overloaded account is skipped");
    assert_eq!(gw.fake.count_for(&cred(1)), 11);
    let row = gw.account(0).await;
    let until = time::OffsetDateTime::parse(
        row["overload_until"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ahead = until - time::OffsetDateTime::now_utc();
    assert!(ahead > time::Duration::minutes(9) && ahead <= time::Duration::minutes(10), "{row}");
    gw.app.shutdown().await;
});

gateway_test!(rate_limited_accounts_wait_for_their_reset, |db| {
    let gw = Gw::start(db, 2, json!({})).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    gw.fake.set_default_for(
        cred(0),
        Script::status_code(429).header("anthropic-ratelimit-unified-reset", (now + 90).to_string()),
    );
    for _ in 0..5 {
        assert_eq!(gw.send(&hello("claude-sonnet-4-5", false)).await.status(), 200);
    }
    assert_eq!(gw.fake.count_for(&cred(0)), 1, "not used again before its reset");
    let row = gw.account(0).await;
    assert!(row["rate_limit_reset_at"].is_string(), "{row}");

    // The second account is limited too, for longer: the answer names the earliest reset.
    gw.fake.set_default_for(
        cred(1),
        Script::status_code(429).header("anthropic-ratelimit-unified-reset", (now + 300).to_string()),
    );
    for attempt in 0..2 {
        let res = gw.send(&hello("claude-sonnet-4-5", false)).await;
        assert_eq!(res.status(), 429, "attempt {attempt}");
        let retry: i64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((85..=91).contains(&retry), "retry-after {retry} should match the reset 90 s ahead");
        assert!(res.headers().contains_key("request-id"));
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "rate_limit_error");
    }
    assert_eq!(gw.fake.count_for(&cred(1)), 6, "the second call found every account cooling down");
    gw.app.shutdown().await;
});

gateway_test!(unauthorized_account_is_put_in_error_until_cleared, |db| {
    let gw = Gw::start(db, 2, json!({})).await;
    gw.fake.push_for(cred(0), Script::status_code(401).error_message("invalid x-api-key"));
    for _ in 0..6 {
        assert_eq!(gw.send(&hello("claude-sonnet-4-5", false)).await.status(), 200);
    }
    assert_eq!(gw.fake.count_for(&cred(0)), 1, "never reached again");
    let row = gw.account(0).await;
    assert_eq!(row["status"], "error");
    assert!(row["error_message"].as_str().unwrap().contains("401"), "{row}");

    admin(&gw.app, "POST", &format!("/accounts/{}/clear-error", gw.accounts[0]), Value::Null).await;
    assert_eq!(gw.account(0).await["status"], "active");
    for _ in 0..2 {
        assert_eq!(gw.send(&hello("claude-sonnet-4-5", false)).await.status(), 200);
    }
    assert!(gw.fake.count_for(&cred(0)) > 1, "back in service after clear-error");
    gw.app.shutdown().await;
});

gateway_test!(sticky_sessions_stay_and_move_only_when_the_account_fails, |db| {
    let gw = Gw::start(db, 2, json!({})).await;
    let session = "8d1a3f0c-1111-4222-8333-944455556666";
    for _ in 0..20 {
        assert_eq!(gw.send(&in_session("claude-sonnet-4-5", session)).await.status(), 200);
    }
    let (a, b) = (gw.fake.count_for(&cred(0)), gw.fake.count_for(&cred(1)));
    assert!((a, b) == (20, 0) || (a, b) == (0, 20), "one session, one account: {a}/{b}");
    let (bound, other) = if a == 20 { (0, 1) } else { (1, 0) };
    // Without a session, equal accounts share the load.
    for _ in 0..4 {
        gw.send(&hello("claude-sonnet-4-5", false)).await;
    }
    assert!(gw.fake.count_for(&cred(other)) >= 2, "unbound requests reach the other account too");

    gw.fake.set_default_for(cred(bound), Script::status_code(529));
    assert_eq!(gw.send(&in_session("claude-sonnet-4-5", session)).await.status(), 200);
    gw.fake.set_default_for(cred(bound), Script::ok());
    admin(&gw.app, "POST", &format!("/accounts/{}/clear-rate-limit", gw.accounts[bound]), Value::Null).await;
    gw.fake.clear_journal();
    for _ in 0..5 {
        assert_eq!(gw.send(&in_session("claude-sonnet-4-5", session)).await.status(), 200);
    }
    assert_eq!(
        (gw.fake.count_for(&cred(bound)), gw.fake.count_for(&cred(other))),
        (0, 5),
        "the session moved and stays on its new account, even once the old one is healthy"
    );
    gw.app.shutdown().await;
});

gateway_test!(busy_accounts_make_streams_wait_with_pings, |db| {
    let gw = Gw::start(db, 2, json!({"concurrency": 1})).await;
    gw.fake.set_default(Script::ok().deltas(4).delay_between_events(Duration::from_millis(120)));
    let requests = (0..6).map(|_| async {
        let res = gw.send(&hello("claude-sonnet-4-5", true)).await;
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    });
    let bodies = futures_util::future::join_all(requests).await;
    for body in &bodies {
        assert!(body.contains("event: message_stop"), "every stream completes: {body}");
    }
    assert!(bodies.iter().any(|b| b.contains("event: ping")), "waiting streams were pinged");
    assert_eq!(gw.fake.max_in_flight_for(&cred(0)), 1);
    assert_eq!(gw.fake.max_in_flight_for(&cred(1)), 1);
    assert_eq!(gw.fake.count(), 6);
    gw.app.shutdown().await;
});

gateway_test!(client_disconnect_frees_slots_and_bills_what_was_delivered, |db| {
    let gw = Gw::start(db, 1, json!({"concurrency": 1})).await;
    gw.fake.set_default(Script::ok().deltas(30).delay_between_events(Duration::from_millis(200)));
    let res = gw.send(&hello("claude-sonnet-4-5", true)).await;
    let mut stream = res.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("content_block_delta") {
        seen.push_str(&String::from_utf8_lossy(&stream.next().await.unwrap().unwrap()));
    }
    drop(stream);
    let gone = Instant::now();
    loop {
        let in_flight = gw.account(0).await["in_flight"].as_u64().unwrap();
        if in_flight == 0 && gw.fake.in_flight() == 0 {
            break;
        }
        assert!(gone.elapsed() < Duration::from_secs(1), "slots still held {:?} after the client left", gone.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The slot is free: the next request is served at once.
    gw.fake.set_default(Script::ok());
    assert_eq!(gw.send(&hello("claude-sonnet-4-5", false)).await.status(), 200);

    let rows = gw.usage_rows(2).await;
    let cut = rows.iter().find(|r| r.stream).expect("a row for the abandoned stream");
    assert_eq!(cut.error_message, "client disconnected");
    assert_eq!(cut.input_tokens, 25, "message_start usage was delivered");
    assert!(cut.output_tokens < 12, "only what was delivered: {}", cut.output_tokens);
    assert!(cut.total_cost > 0.0);
    gw.app.shutdown().await;
});

gateway_test!(usage_rows_match_the_upstream_counts_and_prices, |db| {
    let gw = Gw::start(db, 1, json!({})).await;
    let usage = Usage {
        input_tokens: 1000,
        output_tokens: 500,
        cache_creation_tokens: 300,
        cache_creation_5m_tokens: 200,
        cache_creation_1h_tokens: 100,
        cache_read_tokens: 400,
    };
    gw.fake.set_default(Script::ok().usage(usage));
    for stream in [false, true] {
        let res = gw.send(&hello("claude-sonnet-4-5-20250929", stream)).await;
        assert_eq!(res.status(), 200);
        res.text().await.unwrap();
    }
    let prices: domain::pricing::PriceTable =
        serde_json::from_str(include_str!("../../proxy/data/model_prices.json")).unwrap();
    let (_, price) = prices.lookup("claude-sonnet-4-5-20250929").unwrap();
    let tokens = domain::pricing::TokenCounts {
        input: 1000,
        output: 500,
        cache_creation: 300,
        cache_creation_5m: 200,
        cache_creation_1h: 100,
        cache_read: 400,
    };
    let expected = domain::pricing::cost(price, &tokens, 1.5);
    let rows = gw.usage_rows(2).await;
    assert_eq!(rows.len(), 2);
    for row in &rows {
        let counts = (
            row.input_tokens,
            row.output_tokens,
            row.cache_creation_tokens,
            row.cache_creation_5m_tokens,
            row.cache_creation_1h_tokens,
            row.cache_read_tokens,
        );
        assert_eq!(counts, (1000, 500, 300, 200, 100, 400), "stream={}", row.stream);
        assert!((row.total_cost - expected.total).abs() < 1e-12, "{} vs {}", row.total_cost, expected.total);
        assert!((row.actual_cost - expected.actual).abs() < 1e-12);
        assert!(row.total_cost > 0.0 && (row.actual_cost - row.total_cost * 1.5).abs() < 1e-12);
        assert_eq!((row.status_code, row.account_id, row.group_id), (200, Some(gw.accounts[0]), Some(gw.group)));
        assert_eq!(row.requested_model, "claude-sonnet-4-5-20250929");
    }
    assert!(rows.iter().any(|r| r.stream) && rows.iter().any(|r| !r.stream));
    assert!(rows.iter().find(|r| r.stream).unwrap().first_token_ms.is_some());
    gw.app.shutdown().await;
});

gateway_test!(bad_requests_get_anthropic_errors_with_a_request_id, |db| {
    let gw = Gw::start(db, 1, json!({"model_mapping": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}})).await;
    let check = |res: reqwest::Response, status: u16, kind: &'static str| async move {
        assert_eq!(res.status(), status);
        assert!(res.headers().contains_key("request-id"), "request-id header");
        assert!(res.headers().contains_key("x-sub2api-overhead-ms"), "overhead header on errors too");
        let body: Value = res.json().await.unwrap();
        assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some(kind)), "{body}");
        body["error"]["message"].as_str().unwrap().to_owned()
    };
    let big = json!({"model": "claude-sonnet-4-5", "max_tokens": 1, "messages": [{"role": "user", "content": "x".repeat(70_000)}]});
    check(gw.send(&big).await, 413, "request_too_large").await;
    let res = gw
        .request(reqwest::Method::POST, "/v1/messages")
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    check(res, 400, "invalid_request_error").await;
    let message = check(gw.send(&hello("gpt-4o", false)).await, 404, "not_found_error").await;
    assert!(message.contains("gpt-4o"), "{message}");
    let res =
        gw.app.client.post(gw.app.url("/v1/messages")).json(&hello("claude-sonnet-4-5", false)).send().await.unwrap();
    check(res, 401, "authentication_error").await;
    assert_eq!(gw.fake.count(), 0, "nothing reached the upstream");
    gw.app.shutdown().await;
});

gateway_test!(requests_pass_through_with_the_account_credential_and_mapped_model, |db| {
    let gw = Gw::start(db, 1, json!({"model_mapping": {"claude-x": "claude-sonnet-4-5-20250929"}})).await;
    let body = json!({
        "model": "claude-x", "max_tokens": 64, "stream": false,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "tools": [{"name": "t", "input_schema": {"type": "object"}}],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "some_future_field": {"a": [1, 2]},
    });
    let res = gw
        .app
        .client
        .post(gw.app.url("/v1/messages?beta=true"))
        .header("authorization", format!("Bearer {}", gw.key))
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["request-id"], res.headers()["x-request-id"], "request-id is the gateway's own");
    assert!(res.headers().contains_key("x-upstream-request-id"));
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["model"], "claude-x", "the client sees the model it asked for");
    let got = gw.fake.last_request().unwrap();
    assert_eq!(got.uri, "/v1/messages?beta=true");
    assert_eq!(got.credential.as_deref(), Some(cred(0).as_str()));
    assert!(got.header("authorization").is_none(), "the gateway key never goes upstream");
    assert!(!format!("{:?}", got.headers).contains(&gw.key));
    assert_eq!(got.header("anthropic-beta"), Some("interleaved-thinking-2025-05-14"));
    assert_eq!(got.header("anthropic-version"), Some("2023-06-01"));
    let mut expected = body.clone();
    expected["model"] = json!("claude-sonnet-4-5-20250929");
    assert_eq!(got.json.unwrap(), expected, "only the model changed");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let res = gw.send(&streamed).await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let text = res.text().await.unwrap();
    assert!(text.contains("\"model\":\"claude-x\"") && !text.contains("claude-sonnet-4-5-20250929"), "{text}");

    // count_tokens: forwarded, no slot, no usage row.
    let res = gw
        .request(reqwest::Method::POST, "/v1/messages/count_tokens")
        .json(&json!({"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["input_tokens"], 25);
    assert_eq!(gw.fake.last_request().unwrap().path, "/v1/messages/count_tokens");
    assert_eq!(gw.usage_rows(3).await.len(), 2, "count_tokens writes no usage row");

    let models: Value = gw.request(reqwest::Method::GET, "/v1/models").send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec!["claude-x"], "the group's mapped models");
    gw.app.shutdown().await;
});

gateway_test!(upstream_client_errors_pass_through_and_stream_breaks_end_with_one_error, |db| {
    let gw = Gw::start(db, 2, json!({})).await;
    gw.fake.push(Script::status_code(400).error_message("messages: roles must alternate"));
    let res = gw.send(&hello("claude-sonnet-4-5", false)).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["message"], "messages: roles must alternate");
    assert_eq!(gw.fake.count(), 1, "a 400 is the request's fault: no failover");

    gw.fake.push(Script::ok().deltas(6).disconnect_after_events(3));
    let text = gw.send(&hello("claude-sonnet-4-5", true)).await.text().await.unwrap();
    assert_eq!(text.matches("event: error").count(), 1, "{text}");
    assert!(text.trim_end().ends_with('}'), "the error is the last event: {text}");

    gw.fake.push(Script::status_code(500));
    assert_eq!(gw.send(&hello("claude-sonnet-4-5", false)).await.status(), 200, "a 5xx fails over");
    gw.app.shutdown().await;
});

gateway_test!(sigterm_lets_in_flight_streams_finish_and_keeps_every_usage_row, |db| {
    let gw = Gw::start_with(db, 1, json!({"concurrency": 0}), |c| c.server.shutdown_grace_seconds = 20).await;
    gw.fake.set_default(Script::ok().deltas(8).delay_between_events(Duration::from_millis(150)));
    let Gw { app, fake, key, .. } = gw;
    let url = app.url("/v1/messages");
    let client = reqwest::Client::new();
    let streams: Vec<_> = (0..20)
        .map(|_| {
            let req = client.post(&url).header("x-api-key", &key).json(&hello("claude-sonnet-4-5", true));
            tokio::spawn(async move { req.send().await.unwrap().text().await.unwrap() })
        })
        .collect();
    assert!(fake.wait_until(Duration::from_secs(5), |f| f.in_flight() == 20).await, "20 streams in flight");
    let db = app.shutdown_keep_db().await;
    for stream in streams {
        let text = stream.await.unwrap();
        assert!(text.contains("event: message_stop"), "completed within the grace period: {text}");
    }
    let rows: Vec<store::NewUsage> =
        db.store.list_usage(&UsageFilter::default(), 0, 100).await.unwrap().into_iter().map(|r| r.data).collect();
    assert_eq!(rows.len(), 20, "every usage row is in the database after exit");
    assert!(rows.iter().all(|r| r.output_tokens == 12 && r.status_code == 200));
});

#[tokio::test]
async fn the_body_may_arrive_gzip_compressed() {
    let gw = Gw::start(TestDb::sqlite().await, 1, json!({})).await;
    let raw = serde_json::to_vec(&hello("claude-sonnet-4-5", false)).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, &raw).unwrap();
    let res = gw
        .request(reqwest::Method::POST, "/v1/messages")
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(encoder.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(gw.fake.last_request().unwrap().model(), Some("claude-sonnet-4-5"));
    gw.app.shutdown().await;
}

gateway_test!(key_limits_queue_requests_and_last_use_is_recorded, |db| {
    let gw = Gw::start(db, 1, json!({"concurrency": 0})).await;
    let uid = admin(&gw.app, "GET", "/users", Value::Null)
        .await
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "dev@example.com")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let created = admin(
        &gw.app,
        "POST",
        &format!("/users/{uid}/api-keys"),
        json!({"name": "one-at-a-time", "group_id": gw.group, "concurrency": 1}),
    )
    .await;
    assert_eq!(created["concurrency"], 1);
    let key = created["key"].as_str().unwrap().to_owned();
    gw.fake.set_default(Script::ok().deltas(3).delay_between_events(Duration::from_millis(100)));
    let requests = (0..3).map(|_| async {
        let res = gw
            .app
            .client
            .post(gw.app.url("/v1/messages"))
            .bearer_auth(&key)
            .json(&hello("claude-sonnet-4-5", true))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    });
    for body in futures_util::future::join_all(requests).await {
        assert!(body.contains("message_stop"), "{body}");
    }
    assert_eq!(gw.fake.max_in_flight(), 1, "the key's limit of 1 holds though the account is unlimited");

    let rows = gw.usage_rows(3).await;
    assert_eq!(rows.len(), 3);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let account = gw.account(0).await;
        let keys = admin(&gw.app, "GET", &format!("/users/{uid}/api-keys"), Value::Null).await;
        let used =
            keys.as_array().unwrap().iter().find(|k| k["name"] == "one-at-a-time").unwrap()["last_used_at"].is_string();
        if account["last_used_at"].is_string() && used {
            break;
        }
        assert!(Instant::now() < deadline, "last use stamped on the account and the key: {account}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.app.shutdown().await;
});

gateway_test!(account_test_reports_the_answer_and_recovers_an_errored_account, |db| {
    let gw = Gw::start(db, 1, json!({})).await;
    let id = gw.accounts[0];
    gw.fake.push_for(cred(0), Script::status_code(401).error_message("invalid x-api-key"));
    let failed = admin(&gw.app, "POST", &format!("/accounts/{id}/test"), Value::Null).await;
    assert_eq!((failed["success"].as_bool(), failed["status"].as_u64()), (Some(false), Some(401)), "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("invalid x-api-key"), "{failed}");

    gw.fake.push_for(cred(0), Script::status_code(401));
    assert_eq!(gw.send(&hello("claude-sonnet-4-5", false)).await.status(), 502, "the only account failed auth");
    assert_eq!(gw.account(0).await["status"], "error");

    let ok = admin(&gw.app, "POST", &format!("/accounts/{id}/test"), json!({"model": "claude-haiku-4-5"})).await;
    assert_eq!(ok["success"], true, "{ok}");
    assert_eq!(ok["model"], "claude-haiku-4-5");
    assert_eq!(ok["text"], proxy::testing::DEFAULT_TEXT);
    assert_eq!(gw.account(0).await["status"], "active", "a passing test returns the account to service");
    assert_eq!(gw.send(&hello("claude-sonnet-4-5", false)).await.status(), 200);

    let res = gw
        .app
        .client
        .post(gw.app.url("/api/v1/admin/accounts/999999/test"))
        .header("x-api-key", ADMIN_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    gw.app.shutdown().await;
});

gateway_test!(a_success_saying_the_window_is_open_lifts_a_stale_rate_limit, |db| {
    let gw = Gw::start_with(db, 1, json!({}), |c| c.rate_limit.fallback_cooldown_seconds = 1).await;
    gw.fake.push(Script::status_code(429));
    let res = gw.send(&hello("claude-sonnet-4-5", false)).await;
    assert_eq!(res.status(), 429, "the only account is rate-limited");
    assert!(gw.account(0).await["rate_limit_reset_at"].is_string());
    let rows = gw.usage_rows(1).await;
    assert_eq!(
        (rows[0].status_code, rows[0].total_cost, rows[0].input_tokens),
        (429, 0.0, 0),
        "failed: a row, no cost"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    gw.fake.push(Script::ok().header("anthropic-ratelimit-unified-5h-status", "allowed"));
    assert_eq!(gw.send(&hello("claude-sonnet-4-5", false)).await.status(), 200);
    assert!(gw.account(0).await["rate_limit_reset_at"].is_null(), "the stored limit is gone");
    gw.app.shutdown().await;
});

gateway_test!(a_session_waits_for_its_busy_account_instead_of_moving, |db| {
    let gw = Gw::start(db, 2, json!({"concurrency": 1})).await;
    let session = "0b7e2a50-2222-4333-8444-955566667777";
    assert_eq!(gw.send(&in_session("claude-sonnet-4-5", session)).await.status(), 200);
    let bound = if gw.fake.count_for(&cred(0)) == 1 { 0 } else { 1 };
    gw.fake.set_default(Script::ok().deltas(4).delay_between_events(Duration::from_millis(150)));
    let mut streaming = in_session("claude-sonnet-4-5", session);
    streaming["stream"] = json!(true);
    let both = (0..2).map(|_| async { gw.send(&streaming).await.text().await.unwrap() });
    for body in futures_util::future::join_all(both).await {
        assert!(body.contains("message_stop"), "{body}");
    }
    assert_eq!(gw.fake.count_for(&cred(bound)), 3, "both parallel requests of the session used its account");
    assert_eq!(gw.fake.count_for(&cred(1 - bound)), 0);
    gw.app.shutdown().await;
});

gateway_test!(settings_change_the_relay_without_a_restart, |db| {
    let gw = Gw::start(db, 2, json!({})).await;
    let settings = admin(&gw.app, "GET", "/settings", Value::Null).await;
    assert_eq!(settings["max_account_switches"], 3, "the configured value until one is stored: {settings}");
    assert_eq!(settings["public_base_url"], "");

    // A 5xx fails over, within the switch budget.
    gw.fake.set_default(Script::status_code(500));
    assert_eq!(gw.send(&hello("claude-sonnet-4-5", false)).await.status(), 502, "every account failed");
    assert_eq!(gw.fake.count(), 2, "both accounts were tried");

    let saved = admin(
        &gw.app,
        "PUT",
        "/settings",
        json!({"max_account_switches": 0, "public_base_url": "https://gw.example.com/", "site_name": " Team "}),
    )
    .await;
    assert_eq!(saved["max_account_switches"], 0);
    assert_eq!(saved["public_base_url"], "https://gw.example.com", "normalised");
    assert_eq!(saved["site_name"], "Team");
    gw.fake.clear_journal();
    assert_eq!(gw.send(&hello("claude-sonnet-4-5", false)).await.status(), 502);
    assert_eq!(gw.fake.count(), 1, "no switch allowed any more, and no restart needed");

    let res = gw
        .app
        .client
        .put(gw.app.url("/api/v1/admin/settings"))
        .header("x-api-key", support::ADMIN_API_KEY)
        .json(&json!({"max_account_switches": 99}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().starts_with("max_account_switches:"), "{body}");
    let unknown = gw
        .app
        .client
        .put(gw.app.url("/api/v1/admin/settings"))
        .header("x-api-key", support::ADMIN_API_KEY)
        .json(&json!({"max_switches": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400, "unknown fields are refused, not ignored");

    admin(&gw.app, "PUT", "/settings", json!({"default_user_concurrency": 7})).await;
    let user =
        admin(&gw.app, "POST", "/users", json!({"email": "new@example.com", "password": "new-password-1"})).await;
    assert_eq!(user["concurrency"], 7, "a user created without a concurrency gets the default from Settings");
    gw.app.shutdown().await;
});

gateway_test!(the_models_page_lists_what_v1_models_returns, |db| {
    let gw = Gw::start(db, 1, json!({})).await;
    let listed = |body: Value| -> Vec<String> {
        body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
    };
    let overview_models = |overview: &Value, group: i64| -> (Vec<String>, bool) {
        let g = overview["groups"].as_array().unwrap().iter().find(|g| g["group_id"] == group).unwrap().clone();
        let models = g["models"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect();
        (models, g["built_in"].as_bool().unwrap())
    };
    let models =
        |gw: &Gw| gw.request(reqwest::Method::GET, "/v1/models").header("anthropic-version", "2023-06-01").send();

    let overview = admin(&gw.app, "GET", "/models", Value::Null).await;
    let (built_in, is_built_in) = overview_models(&overview, gw.group);
    assert!(is_built_in && !built_in.is_empty(), "{overview}");
    assert_eq!(listed(models(&gw).await.unwrap().json().await.unwrap()), built_in);

    admin(
        &gw.app,
        "PUT",
        &format!("/accounts/{}", gw.accounts[0]),
        json!({"model_mapping": {"team-fast": "claude-haiku-4-5", "claude-*": "claude-sonnet-4-5"}}),
    )
    .await;
    let overview = admin(&gw.app, "GET", "/models", Value::Null).await;
    assert_eq!(overview_models(&overview, gw.group), (vec!["team-fast".to_owned()], false), "wildcards are not listed");
    assert_eq!(listed(models(&gw).await.unwrap().json().await.unwrap()), vec!["team-fast"]);
    let account = overview["accounts"].as_array().unwrap().iter().find(|a| a["account_id"] == gw.accounts[0]).unwrap();
    assert_eq!(account["mapping"]["team-fast"], "claude-haiku-4-5");
    assert!(overview["price_count"].as_u64().unwrap() > 100, "{overview}");

    let prices = admin(&gw.app, "GET", "/models/prices?q=SONNET-4-5", Value::Null).await;
    let prices = prices.as_array().unwrap();
    assert!(!prices.is_empty() && prices.iter().all(|p| p["model"].as_str().unwrap().contains("sonnet-4-5")));
    let sonnet = prices.iter().find(|p| p["model"] == "claude-sonnet-4-5").expect("the bundled catalogue prices it");
    assert!(
        sonnet["input"].as_f64().unwrap() > 0.0
            && sonnet["output"].as_f64().unwrap() > sonnet["input"].as_f64().unwrap()
    );
    gw.app.shutdown().await;
});
