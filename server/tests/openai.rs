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
        Oa::start_on(db, "openai", accounts, account_json).await
    }

    /// A group of `platform` with `accounts` API-key accounts on the fake and one key.
    async fn start_on(db: TestDb, platform: &str, accounts: usize, account_json: Value) -> Oa {
        let config = test_config(&db);
        let app = TestApp::spawn_with(db, config, default_env()).await;
        let fake = FakeUpstream::start().await;
        let base = app.url("");
        let admin = |method: &'static str, path: String, body: Value| {
            let (client, base) = (app.client.clone(), base.clone());
            async move { admin_at(&client, &base, method, &path, body).await }
        };
        let group = admin("POST", "/groups".into(), json!({"name": "g", "platform": platform})).await["id"].clone();
        // OpenAI base URLs are written with /v1, as operators often do.
        let base_url = if platform == "openai" { format!("{}/v1", fake.url()) } else { fake.url() };
        for i in 0..accounts {
            let mut body = json!({
                "name": format!("acc-{i}"), "platform": platform, "type": "apikey",
                "credentials": {"api_key": cred(i), "base_url": base_url},
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

/// A chat request with nothing the Messages API lacks (unknown fields are refused there).
fn plain_chat() -> Value {
    json!({"model": "gpt-5.1", "messages": [{"role": "user", "content": "hi"}]})
}

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

    let res = oa.post("/v1/messages/count_tokens", &json!({"model": "gpt-5.1", "messages": []})).await;
    assert_eq!(res.status(), 404, "token counting has no OpenAI counterpart");
    assert_eq!(res.json::<Value>().await.unwrap()["type"], "error", "refused in the caller's (Anthropic) shape");

    let models: Value =
        oa.app.client.get(oa.app.url("/v1/models")).bearer_auth(&oa.key).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["object"], "list");
    assert!(
        models["data"].as_array().unwrap().iter().any(|m| m["id"] == "gpt-5.1" && m["owned_by"] == "openai"),
        "{models}"
    );
    oa.app.shutdown().await;
}

// ---- Translation: OpenAI routes on Anthropic groups, Anthropic routes on OpenAI groups ----

const CLAUDE: &str = "claude-sonnet-4-5-20250929";

fn weather_tool_chat() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }}])
}

/// An Anthropic answer that says a few words, then calls `get_weather`.
fn anthropic_tool_answer() -> Value {
    json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": CLAUDE,
        "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 40, "output_tokens": 15, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 0}
    })
}

fn sse(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The same answer as an Anthropic stream.
fn anthropic_tool_events() -> Vec<String> {
    let mut start = anthropic_tool_answer();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["usage"]["output_tokens"] = json!(1);
    vec![
        sse("message_start", &json!({"type": "message_start", "message": start})),
        sse(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        sse("ping", &json!({"type": "ping"})),
        sse(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}}),
        ),
        sse(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}}),
        ),
        sse("content_block_stop", &json!({"type": "content_block_stop", "index": 0})),
        sse(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}}),
        ),
        sse(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}}),
        ),
        sse(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}}),
        ),
        sse("content_block_stop", &json!({"type": "content_block_stop", "index": 1})),
        sse(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 15}}),
        ),
        sse("message_stop", &json!({"type": "message_stop"})),
    ]
}

/// SSE `data:` payloads of a stream (comments and `[DONE]` left out).
fn data_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn chat_with_tools(stream: bool) -> Value {
    json!({
        "model": CLAUDE, "stream": stream, "max_completion_tokens": 300, "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Weather in Paris?"},
        ],
        "tools": weather_tool_chat(), "tool_choice": "auto",
    })
}

#[tokio::test]
async fn chat_completions_on_an_anthropic_group_are_translated_with_tool_calls() {
    let gw = Oa::start_on(TestDb::sqlite().await, "anthropic", 1, json!({})).await;

    // Non-stream: the Messages answer comes back as a chat completion with a tool call.
    gw.fake.push(Script::ok().body(anthropic_tool_answer().to_string()));
    let res = gw.post("/v1/chat/completions", &chat_with_tools(false)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], "Let me check.");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!((call["id"].as_str(), call["function"]["name"].as_str()), (Some("toolu_01"), Some("get_weather")));
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris"}));
    assert_eq!(body["usage"]["prompt_tokens"], 100, "input + cache read");
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 60);

    let sent = gw.fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.credential.as_deref(), Some(cred(0).as_str()));
    assert!(sent.header("anthropic-version").is_some(), "a version header is supplied");
    let upstream = sent.json.unwrap();
    assert_eq!(upstream["max_tokens"], 300);
    assert!(upstream["system"].to_string().contains("You are terse."), "{upstream}");
    assert_eq!(upstream["messages"].as_array().unwrap().len(), 1, "the system message left the list: {upstream}");
    assert_eq!(upstream["messages"][0]["role"], "user");
    assert!(upstream["messages"][0]["content"].to_string().contains("Weather in Paris?"));
    assert_eq!(upstream["temperature"], 0.2);
    assert_eq!(upstream["tools"][0]["name"], "get_weather");
    assert_eq!(upstream["tools"][0]["input_schema"]["required"], json!(["city"]));

    // The tool result goes back: assistant tool call + tool message become tool_use + tool_result.
    let mut follow = chat_with_tools(false);
    follow["messages"].as_array_mut().unwrap().extend([
        json!({"role": "assistant", "content": null, "tool_calls": [call]}),
        json!({"role": "tool", "tool_call_id": "toolu_01", "content": "18°C and sunny"}),
    ]);
    let res = gw.post("/v1/chat/completions", &follow).await;
    assert_eq!(res.status(), 200);
    let upstream = gw.fake.last_request().unwrap().json.unwrap();
    let msgs = upstream["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{upstream}");
    assert_eq!(msgs[1]["content"][0]["type"], "tool_use");
    assert_eq!(msgs[1]["content"][0]["input"], json!({"city": "Paris"}));
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(msgs[2]["content"][0]["type"], "tool_result");
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "toolu_01");

    // Stream, with the usage chunk asked for.
    gw.fake.push(Script::ok().events(anthropic_tool_events()));
    let mut streamed = chat_with_tools(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let res = gw.post("/v1/chat/completions", &streamed).await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(!text.contains("event:"), "chat chunks carry no event names: {text}");
    let chunks = data_lines(&text);
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["model"] == CLAUDE), "{text}");
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "Let me check.");
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city": "Paris"}));
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"), "{text}");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 15);
    assert_eq!(gw.fake.last_request().unwrap().json.unwrap()["stream"], true);

    // Rows bill the Anthropic usage under the Anthropic model.
    let rows = gw.rows(3).await;
    assert_eq!(rows.len(), 3);
    let streamed_row = rows.iter().find(|r| r.stream).unwrap();
    assert_eq!((streamed_row.input_tokens, streamed_row.cache_read_tokens, streamed_row.output_tokens), (40, 60, 15));
    assert!(streamed_row.total_cost > 0.0);
    gw.app.shutdown().await;
}

fn chat_tool_answer() -> Value {
    json!({
        "id": "chatcmpl-9", "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-5.1",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking.",
            "tool_calls": [{"id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]
        }}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, "prompt_tokens_details": {"cached_tokens": 60}}
    })
}

fn chat_tool_chunks() -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        let c = json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-5.1",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    let usage = json!({"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-5.1", "choices": [],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120, "prompt_tokens_details": {"cached_tokens": 60}}});
    vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Checking."}), Value::Null),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_7", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            Value::Null,
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), Value::Null),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Oslo\"}"}}]}), Value::Null),
        chunk(json!({}), json!("tool_calls")),
        format!("data: {usage}\n\n"),
        "data: [DONE]\n\n".to_owned(),
    ]
}

fn messages_with_tools(stream: bool) -> Value {
    json!({
        "model": "gpt-5.1", "max_tokens": 200, "stream": stream,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]}],
        "tools": [{"name": "get_weather", "description": "Weather of a city",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "tool_choice": {"type": "any"},
    })
}

#[tokio::test]
async fn messages_on_an_openai_group_are_translated_with_tool_calls() {
    let gw = Oa::start(TestDb::sqlite().await, 1, json!({})).await;
    let post = |body: Value| {
        let req = gw.app.client.post(gw.app.url("/v1/messages")).header("x-api-key", &gw.key);
        async move { req.header("anthropic-version", "2023-06-01").json(&body).send().await.unwrap() }
    };

    gw.fake.push(Script::ok().body(chat_tool_answer().to_string()));
    let res = post(messages_with_tools(false)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["type"].as_str(), body["model"].as_str()), (Some("message"), Some("gpt-5.1")));
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(body["content"][0], json!({"type": "text", "text": "Checking."}));
    assert_eq!(body["content"][1]["type"], "tool_use");
    assert_eq!(body["content"][1]["id"], "call_7");
    assert_eq!(body["content"][1]["input"], json!({"city": "Oslo"}));
    assert_eq!(
        (body["usage"]["input_tokens"].as_u64(), body["usage"]["cache_read_input_tokens"].as_u64()),
        (Some(40), Some(60))
    );

    let sent = gw.fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert!(sent.header("anthropic-version").is_none(), "Anthropic headers stay here");
    let upstream = sent.json.unwrap();
    assert_eq!(upstream["messages"][0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(upstream["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(upstream["tool_choice"], "required");

    gw.fake.push(Script::ok().events(chat_tool_chunks()));
    let res = post(messages_with_tools(true)).await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().await.unwrap();
    let upstream = gw.fake.last_request().unwrap().json.unwrap();
    assert_eq!(upstream["stream_options"]["include_usage"], true, "usage is asked for upstream");
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{text}");
    assert_eq!(names.last(), Some(&"message_stop"), "{text}");
    let events = data_lines(&text);
    let text_out: String = events.iter().filter_map(|e| e["delta"]["text"].as_str()).collect();
    assert_eq!(text_out, "Checking.");
    let tool_start = events.iter().find(|e| e["content_block"]["type"] == "tool_use").expect("a tool_use block");
    assert_eq!(tool_start["content_block"]["name"], "get_weather");
    let json_out: String = events.iter().filter_map(|e| e["delta"]["partial_json"].as_str()).collect();
    assert_eq!(serde_json::from_str::<Value>(&json_out).unwrap(), json!({"city": "Oslo"}));
    let delta = events.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 20);

    let rows = gw.rows(2).await;
    for row in &rows {
        assert_eq!((row.input_tokens, row.cache_read_tokens, row.output_tokens), (40, 60, 20), "stream={}", row.stream);
    }
    gw.app.shutdown().await;
}

#[tokio::test]
async fn responses_on_an_anthropic_group_are_translated() {
    let gw = Oa::start_on(TestDb::sqlite().await, "anthropic", 1, json!({})).await;
    let request = |stream: bool| {
        json!({
            "model": CLAUDE, "stream": stream, "instructions": "You are Codex.", "store": false,
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Use tools."}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
            ],
            "tools": [{"type": "function", "name": "get_weather", "strict": false,
                       "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
                      {"type": "web_search", "external_web_access": false}],
            "tool_choice": "auto", "parallel_tool_calls": true, "prompt_cache_key": "s-1",
        })
    };

    gw.fake.push(Script::ok().body(anthropic_tool_answer().to_string()));
    let res = gw.post("/v1/responses", &request(false)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["object"].as_str(), body["status"].as_str()), (Some("response"), Some("completed")));
    let output = body["output"].as_array().unwrap();
    assert_eq!(output[0]["type"], "message");
    assert_eq!(output[0]["content"][0]["text"], "Let me check.");
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(output[1]["call_id"], "toolu_01");
    assert_eq!(
        serde_json::from_str::<Value>(output[1]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(body["usage"]["input_tokens_details"]["cached_tokens"], 60);
    let upstream = gw.fake.last_request().unwrap().json.unwrap();
    assert!(
        upstream["system"].to_string().contains("You are Codex.")
            && upstream["system"].to_string().contains("Use tools.")
    );
    assert_eq!(upstream["tools"].as_array().unwrap().len(), 1, "the hosted web_search tool is left out: {upstream}");

    gw.fake.push(Script::ok().events(anthropic_tool_events()));
    let text = gw.post("/v1/responses", &request(true)).await.text().await.unwrap();
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(names.first(), Some(&"response.created"), "{text}");
    assert_eq!(names.last(), Some(&"response.completed"), "{text}");
    assert!(names.contains(&"response.output_text.delta") && names.contains(&"response.function_call_arguments.delta"));
    let events = data_lines(&text);
    let completed = &events.last().unwrap()["response"];
    // The streamed arguments are the upstream's JSON text as it came; compare them parsed.
    let parsed = |output: &Value| {
        let mut output = output.clone();
        let args = output[1]["arguments"].as_str().map(|a| serde_json::from_str::<Value>(a).unwrap());
        output[1]["arguments"] = args.unwrap_or(Value::Null);
        output
    };
    assert_eq!(
        parsed(&completed["output"]),
        parsed(&body["output"]),
        "the stream ends in the same output as the whole answer"
    );
    assert_eq!(completed["model"], CLAUDE);

    let rows = gw.rows(2).await;
    assert!(rows.iter().all(|r| (r.input_tokens, r.cache_read_tokens, r.output_tokens) == (40, 60, 15)), "{rows:?}");
    gw.app.shutdown().await;
}

#[tokio::test]
async fn translation_refusals_and_upstream_errors_speak_the_callers_protocol() {
    let gw = Oa::start_on(TestDb::sqlite().await, "anthropic", 2, json!({})).await;

    // Something the Messages API cannot do: 400 naming the field, before any upstream call.
    let mut body = plain_chat();
    body["n"] = json!(3);
    let res = gw.post("/v1/chat/completions", &body).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["x-should-retry"], "false");
    let err: Value = res.json().await.unwrap();
    assert_eq!(
        (err["error"]["type"].as_str(), err["error"]["param"].as_str()),
        (Some("invalid_request_error"), Some("n"))
    );
    let res =
        gw.post("/v1/responses", &json!({"model": CLAUDE, "input": "hi", "previous_response_id": "resp_1"})).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["param"], "previous_response_id");
    assert_eq!(gw.fake.count(), 0, "refused before any upstream call");

    // An upstream 400 passes through, reshaped for the OpenAI client.
    gw.fake.push(
        Script::status_code(400).body(
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long"}})
                .to_string(),
        ),
    );
    let res = gw.post("/v1/chat/completions", &plain_chat()).await;
    assert_eq!(res.status(), 400);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["message"], "prompt is too long");
    assert_eq!(err["error"]["type"], "invalid_request_error");

    // 500 and 429 fail over to the other account, as on the native routes.
    gw.fake.clear_journal();
    gw.fake.push(Script::status_code(500));
    assert_eq!(gw.post("/v1/chat/completions", &plain_chat()).await.status(), 200, "a 500 fails over");
    gw.fake.push(Script::status_code(429).header("retry-after", "30"));
    assert_eq!(gw.post("/v1/chat/completions", &plain_chat()).await.status(), 200, "a 429 fails over");
    assert_eq!(gw.fake.count(), 4, "one failed and one successful call each");
    gw.app.shutdown().await;
}

/// The account test of an OpenAI API-key account is a streamed Responses request (the
/// account's own protocol), and its text is read from `response.output_text.delta`.
#[tokio::test]
async fn account_test_speaks_the_responses_api() {
    let oa = Oa::start(TestDb::sqlite().await, 1, json!({})).await;
    let id = oa.app.db.store.list_accounts().await.unwrap()[0].id;
    let tested = admin_at(&oa.app.client, &oa.app.url(""), "POST", &format!("/accounts/{id}/test"), json!({})).await;
    assert_eq!((tested["success"].as_bool(), tested["model"].as_str()), (Some(true), Some("gpt-5.1")), "{tested}");
    assert!(!tested["text"].as_str().unwrap().is_empty(), "{tested}");
    let sent = oa.fake.last_request().unwrap();
    assert_eq!((sent.path.as_str(), sent.credential.as_deref()), ("/v1/responses", Some(cred(0).as_str())));
    assert_eq!(sent.json.unwrap()["stream"], true);
}
