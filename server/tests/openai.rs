//! The OpenAI-compatible routes over real HTTP against the scripted fake upstream: Chat
//! Completions and Responses passed through to OpenAI API-key accounts, usage (forced
//! `include_usage` and its removal), model mapping, errors in OpenAI shape, failover.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

mod support;

use proxy::testing::{FakeUpstream, Script};
use proxy::usage::Usage;
use serde_json::{Value, json};
use store::testing::TestDb;
use support::{TestApp, admin_at, default_env, test_config};

fn cred(i: usize) -> String {
    format!("sk-openai-fake-{i}")
}

struct Oa {
    app: TestApp,
    fake: FakeUpstream,
    key: String,
}

impl Oa {
    async fn start(db: TestDb, accounts: usize, account_json: Value) -> Oa {
        let config = test_config(&db);
        let app = TestApp::spawn_with(db, config, default_env()).await;
        let fake = FakeUpstream::start().await;
        let base = app.url("");
        let admin = |method: &'static str, path: String, body: Value| {
            let (client, base) = (app.client.clone(), base.clone());
            async move { admin_at(&client, &base, method, &path, body).await }
        };
        let group = admin("POST", "/groups".into(), json!({"name": "gpt", "platform": "openai"})).await["id"].clone();
        for i in 0..accounts {
            let mut body = json!({
                "name": format!("oa-{i}"), "platform": "openai", "type": "apikey",
                // A base URL written with /v1, as operators often do.
                "credentials": {"api_key": cred(i), "base_url": format!("{}/v1", fake.url())},
                "group_ids": [group],
            });
            for (k, v) in account_json.as_object().unwrap() {
                body[k] = v.clone();
            }
            admin("POST", "/accounts".into(), body).await;
        }
        let user = admin("POST", "/users".into(), json!({"email": "dev@example.com", "password": "dev-password-1"}))
            .await["id"]
            .as_i64()
            .unwrap();
        let key =
            admin("POST", format!("/users/{user}/api-keys"), json!({"name": "sdk", "group_id": group})).await["key"]
                .as_str()
                .unwrap()
                .to_owned();
        Oa { app, fake, key }
    }

    async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.app.client.post(self.app.url(path)).bearer_auth(&self.key).json(body).send().await.unwrap()
    }

    async fn rows(&self, n: usize) -> Vec<store::NewUsage> {
        support::usage_rows(&self.app.db.store, n).await
    }
}

const USAGE: Usage = Usage {
    input_tokens: 700,
    output_tokens: 90,
    cache_creation_tokens: 0,
    cache_creation_5m_tokens: 0,
    cache_creation_1h_tokens: 0,
    cache_read_tokens: 300,
};

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-5.1", "stream": stream, "messages": [{"role": "user", "content": "hi"}], "some_new_field": 1})
}

#[tokio::test]
async fn chat_completions_pass_through_with_usage_and_the_mapped_model() {
    let oa = Oa::start(TestDb::sqlite().await, 1, json!({"model_mapping": {"gpt-5.1": "gpt-5.1-2025-11-13"}})).await;
    oa.fake.set_default(Script::ok().usage(USAGE));

    let res = oa.post("/v1/chat/completions", &chat(false)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["model"], "gpt-5.1", "answered under the asked name");
    assert_eq!(body["usage"]["prompt_tokens"], 1000);
    let sent = oa.fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.credential.as_deref(), Some(cred(0).as_str()));
    assert!(!format!("{:?}", sent.headers).contains(&oa.key), "the gateway key stays here");
    let upstream = sent.json.unwrap();
    assert_eq!(
        (upstream["model"].as_str(), upstream["some_new_field"].as_i64()),
        (Some("gpt-5.1-2025-11-13"), Some(1))
    );
    assert!(upstream.get("stream_options").is_none(), "non-stream bodies are not touched beyond the model");

    // Stream without include_usage: forced upstream, the usage chunk removed again.
    let text = oa.post("/chat/completions", &chat(true)).await.text().await.unwrap();
    let upstream = oa.fake.last_request().unwrap().json.unwrap();
    assert_eq!(upstream["stream_options"]["include_usage"], true);
    assert!(text.contains("data: [DONE]") && !text.contains("prompt_tokens"), "{text}");
    assert!(text.contains("\"model\":\"gpt-5.1\"") && !text.contains("2025-11-13"), "{text}");

    // Stream that asked for usage: the chunk stays.
    let mut asked = chat(true);
    asked["stream_options"] = json!({"include_usage": true});
    let text = oa.post("/v1/chat/completions", &asked).await.text().await.unwrap();
    assert!(text.contains("\"prompt_tokens\":1000"), "{text}");

    let rows = oa.rows(3).await;
    assert_eq!(rows.len(), 3);
    for row in &rows {
        let counts = (row.input_tokens, row.cache_read_tokens, row.output_tokens);
        assert_eq!(counts, (700, 300, 90), "stream={}", row.stream);
        assert!(row.total_cost > 0.0, "priced: {}", row.upstream_model);
        assert_eq!(row.requested_model, "gpt-5.1");
    }
    oa.app.shutdown().await;
}

#[tokio::test]
async fn responses_pass_through_stream_and_not() {
    let oa = Oa::start(TestDb::sqlite().await, 1, json!({})).await;
    oa.fake.set_default(Script::ok().usage(USAGE));
    let body = json!({"model": "gpt-5.1-codex", "input": "say hi", "stream": false, "prompt_cache_key": "abc"});
    let res = oa.post("/v1/responses", &body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(oa.fake.last_request().unwrap().json.unwrap()["prompt_cache_key"], "abc");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let text = oa.post("/backend-api/codex/responses", &streamed).await.text().await.unwrap();
    assert!(text.contains("response.completed"), "{text}");
    assert_eq!(oa.fake.last_request().unwrap().path, "/v1/responses");

    let rows = oa.rows(2).await;
    assert!(rows.iter().all(|r| (r.input_tokens, r.cache_read_tokens, r.output_tokens) == (700, 300, 90)), "{rows:?}");

    let socket = oa
        .app
        .client
        .get(oa.app.url("/v1/responses"))
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .send()
        .await
        .unwrap();
    assert_eq!(socket.status(), 426, "Codex falls back to HTTP at once");
    oa.app.shutdown().await;
}

#[tokio::test]
async fn openai_errors_failover_and_models() {
    let oa = Oa::start(TestDb::sqlite().await, 2, json!({})).await;
    oa.fake.push_for(cred(0), Script::status_code(500));
    assert_eq!(oa.post("/v1/chat/completions", &chat(false)).await.status(), 200, "a 500 fails over");
    oa.fake.push_for(cred(0), Script::status_code(429).header("x-ratelimit-reset-requests", "30s"));
    assert_eq!(oa.post("/v1/chat/completions", &chat(false)).await.status(), 200, "a 429 fails over");
    assert_eq!(oa.post("/v1/chat/completions", &chat(false)).await.status(), 200);
    assert_eq!(oa.fake.count_for(&cred(0)), 2, "the rate-limited account rests for its reset");
    assert_eq!(oa.fake.count_for(&cred(1)), 3);

    let res = oa
        .app
        .client
        .post(oa.app.url("/v1/chat/completions"))
        .bearer_auth("sk-wrong")
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error", "OpenAI shape: {body}");
    assert!(body["error"].get("param").is_some() && body["error"].get("code").is_some());

    let res = oa.post("/v1/messages", &json!({"model": "gpt-5.1", "max_tokens": 5, "messages": []})).await;
    assert_eq!(res.status(), 404, "Anthropic routes on an OpenAI group are not translated yet");
    assert_eq!(res.json::<Value>().await.unwrap()["type"], "error");

    let models: Value =
        oa.app.client.get(oa.app.url("/v1/models")).bearer_auth(&oa.key).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["object"], "list");
    assert!(
        models["data"].as_array().unwrap().iter().any(|m| m["id"] == "gpt-5.1" && m["owned_by"] == "openai"),
        "{models}"
    );
    oa.app.shutdown().await;
}
