//! The Gemini-native routes over real HTTP against the scripted fake upstream: AI Studio
//! API-key accounts serving `/v1beta/models/{model}:{action}` through the same relay as the
//! other platforms — usage from `usageMetadata`, the caller's key kept here, failover and
//! cooldowns, errors in Google's shape, token counting without a usage row, the model list.
//! Every test runs on SQLite and, when `TEST_DATABASE_URL` is set, on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

mod support;

use proxy::testing::{FakeUpstream, Script};
use proxy::usage::Usage;
use serde_json::{Value, json};
use support::{TestApp, admin_at};

fn cred(i: usize) -> String {
    format!("AIza-fake-{i}")
}

/// A Gemini group with API-key accounts on the fake upstream, and one gateway key for it.
struct Gm<'a> {
    app: &'a TestApp,
    fake: FakeUpstream,
    key: String,
    /// Account ids, in creation order (account `i` uses `cred(i)`).
    accounts: Vec<i64>,
}

impl<'a> Gm<'a> {
    async fn start(app: &'a TestApp, accounts: usize, account_json: Value) -> Gm<'a> {
        let fake = FakeUpstream::start().await;
        let group = admin(app, "POST", "/groups", json!({"name": "gemini", "platform": "gemini"})).await["id"].clone();
        let mut ids = Vec::new();
        for i in 0..accounts {
            let mut body = json!({
                "name": format!("gemini-{i}"), "platform": "gemini", "type": "apikey",
                "credentials": {"api_key": cred(i), "base_url": fake.url()},
                "group_ids": [group],
            });
            for (k, v) in account_json.as_object().unwrap() {
                body[k] = v.clone();
            }
            ids.push(admin(app, "POST", "/accounts", body).await["id"].as_i64().unwrap());
        }
        let key = key_for(app, "dev@example.com", &group).await;
        Gm { app, fake, key, accounts: ids }
    }

    /// A `POST` to `path` (with its query) carrying the key as `x-goog-api-key`.
    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.app.client.post(self.app.url(path)).header("x-goog-api-key", &self.key).json(body).send().await.unwrap()
    }

    async fn account(&self, i: usize) -> Value {
        admin(self.app, "GET", &format!("/accounts/{}", self.accounts[i]), Value::Null).await
    }

    async fn rows(&self, n: usize) -> Vec<store::NewUsage> {
        support::usage_rows(&self.app.db.store, n).await
    }
}

async fn admin(app: &TestApp, method: &str, path: &str, body: Value) -> Value {
    admin_at(&app.client, &app.url(""), method, path, body).await
}

/// A new user with a gateway key in `group`.
async fn key_for(app: &TestApp, email: &str, group: &Value) -> String {
    let user = admin(app, "POST", "/users", json!({"email": email, "password": "dev-password-1", "concurrency": 50}))
        .await["id"]
        .as_i64()
        .unwrap();
    admin(app, "POST", &format!("/users/{user}/api-keys"), json!({"name": "gemini-cli", "group_id": group})).await
        ["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

const USAGE: Usage = Usage {
    input_tokens: 700,
    output_tokens: 90,
    cache_creation_tokens: 0,
    cache_creation_5m_tokens: 0,
    cache_creation_1h_tokens: 0,
    cache_read_tokens: 300,
};

fn contents() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 64}})
}

/// A Google error body: `{"error":{"code","message","status"}}`.
async fn google_error(res: reqwest::Response, status: u16, google_status: &str) -> Value {
    assert_eq!(res.status(), status);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], status, "{body}");
    assert_eq!(body["error"]["status"], google_status, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body
}

on_both_databases!(generate_and_stream_pass_through_and_bill_usage_metadata, |app| {
    let gm = Gm::start(
        app,
        1,
        json!({"model_mapping": {"flash": "gemini-2.5-flash", "gemini-2.5-flash": "gemini-2.5-flash"}}),
    )
    .await;
    gm.fake.set_default(Script::ok().usage(USAGE).deltas(3));

    // Non-stream, key in x-goog-api-key, an alias mapped in the path; unknown fields pass.
    let raw =
        r#"{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"someFutureField":{"x":[1,2]},"safetySettings":[]}"#;
    let res = gm
        .app
        .client
        .post(gm.app.url("/v1beta/models/flash:generateContent"))
        .header("x-goog-api-key", &gm.key)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["modelVersion"], "flash", "the mapped name is answered under the asked one");
    assert_eq!(body["usageMetadata"]["cachedContentTokenCount"], 300);
    let sent = gm.fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(sent.query, None);
    assert_eq!(sent.credential.as_deref(), Some(cred(0).as_str()));
    assert_eq!(sent.headers["x-goog-api-key"], cred(0).as_str());
    assert!(!format!("{:?}", sent.headers).contains(&gm.key), "the gateway key stays here");
    assert_eq!(&sent.body[..], raw.as_bytes(), "the body goes upstream byte for byte");

    // Stream over SSE, key in ?key=: alt=sse goes upstream, the key does not.
    let res = gm
        .app
        .client
        .post(gm.app.url(&format!("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse&key={}", gm.key)))
        .json(&contents())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = res.text().await.unwrap();
    assert_eq!(text.matches("data: ").count(), 3, "{text}");
    assert!(text.contains("\"finishReason\":\"STOP\""), "{text}");
    let sent = gm.fake.last_request().unwrap();
    assert_eq!(sent.query.as_deref(), Some("alt=sse"));
    assert!(!sent.uri.contains(&gm.key) && !format!("{:?}", sent.headers).contains(&gm.key));

    // A stream without alt=sse is one JSON array, billed from its last usage.
    let res = gm.post("/v1beta/models/gemini-2.5-flash:streamGenerateContent", &contents()).await;
    assert_eq!(res.status(), 200);
    let chunks: Value = res.json().await.unwrap();
    assert_eq!(chunks.as_array().map(Vec::len), Some(3), "{chunks}");
    assert_eq!(gm.fake.last_request().unwrap().query, None);

    // The v1 path and a bearer token work too.
    let res = gm
        .app
        .client
        .post(gm.app.url("/v1/models/gemini-2.5-flash:generateContent"))
        .bearer_auth(&gm.key)
        .json(&contents())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(gm.fake.last_request().unwrap().headers.get("authorization").is_none());

    let rows = gm.rows(4).await;
    assert_eq!(rows.len(), 4);
    for row in &rows {
        let counts = (row.input_tokens, row.cache_read_tokens, row.output_tokens, row.cache_creation_tokens);
        assert_eq!(counts, (700, 300, 90, 0), "stream={}: cached tokens counted once", row.stream);
        assert_eq!(row.upstream_model, "gemini-2.5-flash");
        assert!(row.total_cost > 0.0, "priced from the table: {}", row.upstream_model);
        assert!(row.cache_read_cost > 0.0);
        assert_eq!(row.status_code, 200);
    }
    assert_eq!(rows.iter().filter(|r| r.stream).count(), 2);
    assert!(rows.iter().any(|r| r.requested_model == "flash"));
});

on_both_databases!(failover_cooldowns_and_errors_in_google_shape, |app| {
    let gm = Gm::start(app, 2, json!({})).await;
    let generate = "/v1beta/models/gemini-2.5-pro:generateContent";

    gm.fake.push_for(cred(0), Script::status_code(500));
    assert_eq!(gm.post(generate, &contents()).await.status(), 200, "a 500 fails over");
    assert_eq!(gm.account(0).await["status"], "active", "a 500 does not mark the account");

    let exhausted = r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"120s"}]}}"#;
    gm.fake.push_for(cred(0), Script::status_code(429).body(exhausted));
    assert_eq!(gm.post(generate, &contents()).await.status(), 200, "a 429 fails over");
    for _ in 0..4 {
        assert_eq!(gm.post(generate, &contents()).await.status(), 200);
    }
    assert_eq!(gm.fake.count_for(&cred(0)), 2, "the rate-limited account rests for its retryDelay");
    let reset = gm.account(0).await["rate_limit_reset_at"].as_str().unwrap().to_owned();
    let reset = time::OffsetDateTime::parse(&reset, &time::format_description::well_known::Rfc3339).unwrap();
    let ahead = reset - time::OffsetDateTime::now_utc();
    assert!(ahead > time::Duration::seconds(100) && ahead <= time::Duration::seconds(120), "{ahead}");

    // An upstream 400 is the caller's problem: passed through as Google sent it.
    gm.fake.push_for(cred(1), Script::status_code(400).error_message("Invalid JSON payload received."));
    let body = google_error(gm.post(generate, &contents()).await, 400, "INVALID_ARGUMENT").await;
    assert_eq!(body["error"]["message"], "Invalid JSON payload received.");

    // The only other account fails too: one Google-shaped 502.
    gm.fake.push_for(cred(1), Script::status_code(503));
    google_error(gm.post(generate, &contents()).await, 502, "BAD_GATEWAY").await;

    // Every account cooling down: our own 429, with a retry hint.
    gm.fake.push_for(cred(1), Script::status_code(429).header("retry-after", "60"));
    let res = gm.post(generate, &contents()).await;
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=120).contains(&retry), "retry-after {retry}");
    google_error(res, 429, "RESOURCE_EXHAUSTED").await;
    let stream = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse";
    google_error(gm.post(stream, &contents()).await, 429, "RESOURCE_EXHAUSTED").await;

    // A refused upstream key puts its account in the error state.
    admin(gm.app, "POST", &format!("/accounts/{}/clear-rate-limit", gm.accounts[1]), Value::Null).await;
    gm.fake.push_for(cred(1), Script::status_code(403).error_message("API key not valid."));
    google_error(gm.post(generate, &contents()).await, 502, "BAD_GATEWAY").await;
    let row = gm.account(1).await;
    assert_eq!(row["status"], "error", "{row}");
    assert!(row["error_message"].as_str().unwrap().contains("403"), "{row}");

    // Our own refusals speak Google too.
    let res = gm
        .app
        .client
        .post(gm.app.url("/v1beta/models/gemini-2.5-pro:generateContent?key=sk-wrong"))
        .json(&contents())
        .send()
        .await
        .unwrap();
    google_error(res, 401, "UNAUTHENTICATED").await;
    let res = gm.app.client.post(gm.app.url(generate)).json(&contents()).send().await.unwrap();
    google_error(res, 401, "UNAUTHENTICATED").await;
    google_error(gm.post("/v1beta/models/gemini-2.5-pro:embedContent", &contents()).await, 404, "NOT_FOUND").await;
    let res = gm
        .app
        .client
        .post(gm.app.url(generate))
        .header("x-goog-api-key", &gm.key)
        .body("not json")
        .send()
        .await
        .unwrap();
    google_error(res, 400, "INVALID_ARGUMENT").await;
});

on_both_databases!(count_tokens_take_no_usage_row_and_models_are_listed, |app| {
    let gm = Gm::start(app, 1, json!({})).await;
    gm.fake.set_default(Script::ok().usage(USAGE));

    let res = gm.post("/v1beta/models/gemini-2.5-flash:countTokens", &contents()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["totalTokens"], 1000);
    assert_eq!(gm.fake.last_request().unwrap().path, "/v1beta/models/gemini-2.5-flash:countTokens");
    assert_eq!(gm.post("/v1beta/models/gemini-2.5-flash:generateContent", &contents()).await.status(), 200);
    let rows = gm.rows(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let rows_later = gm.rows(1).await;
    assert_eq!((rows.len(), rows_later.len()), (1, 1), "token counting writes no usage row");
    assert_eq!(rows[0].output_tokens, 90);

    // No account names a model: the built-in list, in Gemini's shape; ?key= works here too.
    let list: Value = gm
        .app
        .client
        .get(gm.app.url(&format!("/v1beta/models?key={}", gm.key)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"models/gemini-2.5-pro") && names.contains(&"models/gemini-2.5-flash"), "{list}");
    assert!(list["models"][0]["supportedGenerationMethods"].as_array().unwrap().contains(&json!("generateContent")));

    let model = gm
        .app
        .client
        .get(gm.app.url("/v1beta/models/gemini-2.5-flash"))
        .header("x-goog-api-key", &gm.key)
        .send()
        .await
        .unwrap();
    assert_eq!(model.status(), 200);
    assert_eq!(model.json::<Value>().await.unwrap()["name"], "models/gemini-2.5-flash");

    // With a mapping, the group lists exactly the mapped names and serves nothing else.
    admin(
        gm.app,
        "PUT",
        &format!("/accounts/{}", gm.accounts[0]),
        json!({"model_mapping": {"my-flash": "gemini-2.5-flash"}}),
    )
    .await;
    let list: Value = gm
        .app
        .client
        .get(gm.app.url("/v1beta/models"))
        .header("x-goog-api-key", &gm.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["models"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["models"][0]["name"], "models/my-flash");
    let res = gm
        .app
        .client
        .get(gm.app.url("/v1beta/models/gemini-2.5-pro"))
        .header("x-goog-api-key", &gm.key)
        .send()
        .await
        .unwrap();
    google_error(res, 404, "NOT_FOUND").await;
    google_error(gm.post("/v1beta/models/gemini-2.5-pro:generateContent", &contents()).await, 404, "NOT_FOUND").await;
});

on_both_databases!(account_test_speaks_gemini_and_recovers_the_account, |app| {
    let gm = Gm::start(app, 1, json!({})).await;
    let id = gm.accounts[0];
    gm.fake.push_for(cred(0), Script::status_code(403).error_message("API key not valid."));
    google_error(gm.post("/v1beta/models/gemini-2.5-flash:generateContent", &contents()).await, 502, "BAD_GATEWAY")
        .await;
    assert_eq!(gm.account(0).await["status"], "error");

    let ok = admin(app, "POST", &format!("/accounts/{id}/test"), Value::Null).await;
    assert_eq!(ok["success"], true, "{ok}");
    assert_eq!(ok["model"], "gemini-2.5-flash");
    assert_eq!(ok["text"], proxy::testing::DEFAULT_TEXT);
    let sent = gm.fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent");
    assert_eq!((sent.query.as_deref(), sent.credential.as_deref()), (Some("alt=sse"), Some(cred(0).as_str())));
    assert_eq!(gm.account(0).await["status"], "active", "a passing test returns the account to service");

    gm.fake.push_for(cred(0), Script::status_code(429));
    let failed = admin(app, "POST", &format!("/accounts/{id}/test"), Value::Null).await;
    assert_eq!((failed["success"].as_bool(), failed["status"].as_u64()), (Some(false), Some(429)), "{failed}");
});

on_both_databases!(keys_of_other_platforms_are_refused, |app| {
    let gm = Gm::start(app, 1, json!({})).await;
    let claude = admin(app, "POST", "/groups", json!({"name": "claude", "platform": "anthropic"})).await["id"].clone();
    let claude_key = key_for(app, "claude@example.com", &claude).await;

    let res = app
        .client
        .post(app.url("/v1beta/models/gemini-2.5-pro:generateContent"))
        .header("x-goog-api-key", &claude_key)
        .json(&contents())
        .send()
        .await
        .unwrap();
    let body = google_error(res, 404, "NOT_FOUND").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("anthropic"), "{body}");
    let res = app.client.get(app.url("/v1beta/models")).header("x-goog-api-key", &claude_key).send().await.unwrap();
    google_error(res, 404, "NOT_FOUND").await;

    // And the Gemini key is not served by the Anthropic route.
    let res = app
        .client
        .post(app.url("/v1/messages"))
        .header("x-api-key", &gm.key)
        .json(&support::hello("claude-sonnet-4-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], "error", "Anthropic shape on the Anthropic route: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("gemini"), "{body}");
    assert_eq!(gm.fake.count(), 0, "nothing reached the upstream");
});
