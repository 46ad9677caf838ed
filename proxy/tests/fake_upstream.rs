//! Tests of the scripted fake upstream itself, through real HTTP with reqwest: the default
//! answers per protocol (checked with the gateway's own usage extractors, so the fake and the
//! extractors agree), scripted statuses, headers, timing and faults, the journal and the
//! in-flight accounting.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

use std::time::{Duration, Instant};

use proxy::testing::{DEFAULT_DELTAS, DEFAULT_TEXT, DEFAULT_USAGE, FakeUpstream, Protocol, Script};
use proxy::usage::{AnthropicStreamUsage, SseLineBuffer, Usage};
use reqwest::StatusCode;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// POSTs `body` to `path` with `x-api-key: key`.
async fn post(fake: &FakeUpstream, path: &str, key: &str, body: Value) -> reqwest::Response {
    client().post(format!("{}{path}", fake.url())).header("x-api-key", key).json(&body).send().await.unwrap()
}

/// One parsed SSE event: its `event:` name and its data.
#[derive(Debug, Clone)]
struct Event {
    name: Option<String>,
    data: String,
}

impl Event {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", self.data))
    }
}

fn parse_sse(bytes: &[u8]) -> Vec<Event> {
    let mut buffer = SseLineBuffer::default();
    let mut events = Vec::new();
    let mut push = |event: proxy::usage::SseEvent<'_>| {
        events.push(Event {
            name: event.event.map(str::to_owned),
            data: String::from_utf8(event.data.to_vec()).unwrap(),
        });
    };
    buffer.push(bytes, &mut push);
    buffer.finish(&mut push);
    events
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_deref().unwrap_or("")).collect()
}

fn content_type(response: &reqwest::Response) -> &str {
    response.headers().get("content-type").unwrap().to_str().unwrap()
}

/// Reads a body chunk by chunk until it ends or breaks; returns the bytes and whether it
/// broke.
async fn read_until_end_or_error(mut response: reqwest::Response) -> (Vec<u8>, bool) {
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => return (bytes, false),
            Err(_) => return (bytes, true),
        }
    }
}

#[tokio::test]
async fn anthropic_non_stream_default_answer() {
    let fake = FakeUpstream::start().await;
    let response = post(&fake, "/v1/messages", "k", json!({"model": "claude-test-1", "max_tokens": 10})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "application/json");
    assert!(response.headers().contains_key("request-id"));
    let body = response.bytes().await.unwrap();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["type"], "message");
    assert_eq!(json["role"], "assistant");
    assert_eq!(json["model"], "claude-test-1");
    assert!(json["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(json["content"], json!([{"type": "text", "text": DEFAULT_TEXT}]));
    assert_eq!(json["stop_reason"], "end_turn");
    assert_eq!(json["stop_sequence"], Value::Null);
    assert_eq!(json["usage"]["cache_creation"]["ephemeral_1h_input_tokens"], DEFAULT_USAGE.cache_creation_1h_tokens);
    assert_eq!(Usage::from_anthropic_response(&body), Some(DEFAULT_USAGE));
}

#[tokio::test]
async fn anthropic_stream_default_answer() {
    let fake = FakeUpstream::start().await;
    let response = post(&fake, "/v1/messages?beta=true", "k", json!({"model": "claude-test-2", "stream": true})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "text/event-stream");
    let body = response.bytes().await.unwrap();
    let events = parse_sse(&body);

    let mut want = vec!["message_start", "content_block_start"];
    want.extend(std::iter::repeat_n("content_block_delta", DEFAULT_DELTAS));
    want.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names(&events), want);
    for event in &events {
        assert_eq!(event.json()["type"], event.name.as_deref().unwrap(), "event name and data type agree");
        assert!(event.data.starts_with(r#"{"type":""#), "`type` leads, as Anthropic sends it: {}", event.data);
    }
    // Each event is framed exactly as `event: X\ndata: {json}\n\n`.
    assert!(std::str::from_utf8(&body).unwrap().starts_with("event: message_start\ndata: {"));

    let start = events[0].json();
    assert_eq!(start["message"]["model"], "claude-test-2");
    assert_eq!(start["message"]["usage"]["output_tokens"], 1);
    let text: String = events
        .iter()
        .filter(|e| e.name.as_deref() == Some("content_block_delta"))
        .map(|e| e.json()["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, DEFAULT_TEXT);
    assert_eq!(events[events.len() - 2].json()["delta"]["stop_reason"], "end_turn");

    let mut usage = AnthropicStreamUsage::new();
    for event in &events {
        usage.feed(event.data.as_bytes());
    }
    assert_eq!(usage.usage(), DEFAULT_USAGE);
    assert_eq!(fake.last_request().unwrap().uri, "/v1/messages?beta=true");
}

#[tokio::test]
async fn scripted_text_usage_and_deltas() {
    let fake = FakeUpstream::start().await;
    let usage = Usage {
        input_tokens: 7,
        output_tokens: 40,
        cache_creation_tokens: 0,
        cache_creation_5m_tokens: 0,
        cache_creation_1h_tokens: 0,
        cache_read_tokens: 9,
    };
    fake.push(Script::ok().text("abcdefghij").deltas(2).usage(usage));
    let body = post(&fake, "/v1/messages", "k", json!({"model": "m", "stream": true})).await.bytes().await.unwrap();
    let events = parse_sse(&body);
    let deltas: Vec<String> = events
        .iter()
        .filter(|e| e.name.as_deref() == Some("content_block_delta"))
        .map(|e| e.json()["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deltas, ["abcde", "fghij"]);
    let mut extracted = AnthropicStreamUsage::new();
    events.iter().for_each(|e| _ = extracted.feed(e.data.as_bytes()));
    assert_eq!(extracted.usage(), usage, "explicit zero cache fields come through as zero");
}

#[tokio::test]
async fn count_tokens_and_models() {
    let fake = FakeUpstream::start().await;
    fake.push(Script::ok().usage(Usage { input_tokens: 321, ..DEFAULT_USAGE }));
    let response = post(&fake, "/v1/messages/count_tokens", "k", json!({"model": "m", "messages": []})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({"input_tokens": 321}));

    let models = client()
        .get(format!("{}/v1/models", fake.url()))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["type"], "model");
    assert_eq!(models["has_more"], false);

    let models = client()
        .get(format!("{}/v1/models", fake.url()))
        .bearer_auth("sk-openai")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["object"], "model");
}

#[tokio::test]
async fn openai_chat_default_answers() {
    let fake = FakeUpstream::start().await;
    let want = Protocol::OpenAiChat.reported_usage(DEFAULT_USAGE);
    assert_eq!(want.cache_creation_tokens, 0);

    let response = post(&fake, "/v1/chat/completions", "k", json!({"model": "gpt-test", "messages": []})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-request-id"));
    let body = response.bytes().await.unwrap();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["object"], "chat.completion");
    assert_eq!(json["model"], "gpt-test");
    assert_eq!(json["choices"][0]["message"]["content"], DEFAULT_TEXT);
    assert_eq!(json["choices"][0]["finish_reason"], "stop");
    let usage = &json["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], DEFAULT_USAGE.cache_read_tokens);
    assert_eq!(Usage::from_openai_chat(&body), Some(want));

    // Without include_usage: no usage chunk at all.
    let response = post(&fake, "/v1/chat/completions", "k", json!({"model": "gpt-test", "stream": true})).await;
    assert_eq!(content_type(&response), "text/event-stream");
    let events = parse_sse(&response.bytes().await.unwrap());
    assert_eq!(events.len(), DEFAULT_DELTAS + 3, "role chunk, deltas, finish chunk, [DONE]");
    assert!(events.iter().all(|e| e.name.is_none()));
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert!(events.iter().all(|e| Usage::from_openai_chat(e.data.as_bytes()).is_none()));
    let text: String = events[..events.len() - 1]
        .iter()
        .filter_map(|e| e.json()["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, DEFAULT_TEXT);

    // With include_usage: one final chunk with empty choices and the usage, then [DONE].
    let response = post(
        &fake,
        "/v1/chat/completions",
        "k",
        json!({"model": "gpt-test", "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    let events = parse_sse(&response.bytes().await.unwrap());
    assert_eq!(events.len(), DEFAULT_DELTAS + 4);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let usage_chunk = events[events.len() - 2].json();
    assert_eq!(usage_chunk["choices"], json!([]));
    let found: Vec<Usage> = events.iter().filter_map(|e| Usage::from_openai_chat(e.data.as_bytes())).collect();
    assert_eq!(found, [want]);
    assert_eq!(events[0].json()["usage"], Value::Null, "earlier chunks carry usage: null");
}

#[tokio::test]
async fn openai_responses_default_answers() {
    let fake = FakeUpstream::start().await;
    let want = Protocol::OpenAiResponses.reported_usage(DEFAULT_USAGE);

    let response = post(&fake, "/v1/responses", "k", json!({"model": "gpt-5", "input": "hi"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.bytes().await.unwrap();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["object"], "response");
    assert_eq!(json["status"], "completed");
    assert_eq!(json["model"], "gpt-5");
    assert_eq!(json["output"][0]["content"][0]["text"], DEFAULT_TEXT);
    assert_eq!(Usage::from_openai_responses(&body), Some(want));

    let response = post(&fake, "/v1/responses", "k", json!({"model": "gpt-5", "stream": true})).await;
    assert_eq!(content_type(&response), "text/event-stream");
    let events = parse_sse(&response.bytes().await.unwrap());
    let names = names(&events);
    assert_eq!(names.first(), Some(&"response.created"));
    assert_eq!(names.last(), Some(&"response.completed"));
    assert_eq!(names.iter().filter(|n| **n == "response.output_text.delta").count(), DEFAULT_DELTAS);
    for (position, event) in events.iter().enumerate() {
        let data = event.json();
        assert_eq!(data["type"], event.name.as_deref().unwrap());
        assert_eq!(data["sequence_number"], position);
        assert!(event.data.starts_with(r#"{"type":""#), "`type` leads: {}", event.data);
    }
    let text: String = events
        .iter()
        .filter(|e| e.name.as_deref() == Some("response.output_text.delta"))
        .map(|e| e.json()["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, DEFAULT_TEXT);
    let found: Vec<Usage> =
        events.iter().filter_map(|e| Usage::from_openai_responses_event(e.data.as_bytes())).collect();
    assert_eq!(found, [want]);
}

#[tokio::test]
async fn scripted_errors_carry_headers_and_provider_bodies() {
    let fake = FakeUpstream::start().await;
    fake.push(
        Script::status(StatusCode::TOO_MANY_REQUESTS)
            .header("retry-after", "2")
            .header("anthropic-ratelimit-unified-reset", "1767225600")
            .header("x-multi", "one")
            .header("x-multi", "two"),
    );
    fake.push(Script::status_code(529));
    fake.push(Script::status(StatusCode::TOO_MANY_REQUESTS));
    fake.push(Script::status(StatusCode::BAD_REQUEST).error_type("invalid_request_error").error_message("bad thing"));
    fake.push(
        Script::status(StatusCode::BAD_GATEWAY).body("<html>bad gateway</html>").header("content-type", "text/html"),
    );

    // Anthropic 429 with the scripted headers, even for a streaming request.
    let response = post(&fake, "/v1/messages", "k", json!({"model": "m", "stream": true})).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(content_type(&response), "application/json");
    assert_eq!(response.headers()["retry-after"], "2");
    assert_eq!(response.headers()["anthropic-ratelimit-unified-reset"], "1767225600");
    let multi: Vec<_> = response.headers().get_all("x-multi").iter().collect();
    assert_eq!(multi, ["one", "two"]);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(body["error"]["message"].is_string());

    let response = post(&fake, "/v1/messages", "k", json!({"model": "m"})).await;
    assert_eq!(response.status().as_u16(), 529);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["type"], "overloaded_error");

    // OpenAI error shape.
    let response = post(&fake, "/v1/chat/completions", "k", json!({"model": "m"})).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["param"], Value::Null);
    assert!(body["error"]["message"].is_string());
    assert!(body["error"]["type"].is_string());

    let response = post(&fake, "/v1/messages", "k", json!({"model": "m"})).await;
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad thing"}})
    );

    let response = post(&fake, "/v1/responses", "k", json!({"model": "m"})).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(content_type(&response), "text/html");
    assert_eq!(response.text().await.unwrap(), "<html>bad gateway</html>");
    assert_eq!(fake.queued(), 0);
}

#[tokio::test]
async fn scripts_can_be_keyed_by_credential() {
    let fake = FakeUpstream::start().await;
    fake.push_for("key-a", Script::status(StatusCode::TOO_MANY_REQUESTS));
    fake.set_default_for("key-dead", Script::status(StatusCode::UNAUTHORIZED));
    fake.push(Script::status(StatusCode::SERVICE_UNAVAILABLE));
    let body = json!({"model": "m"});

    // key-b has no queue of its own: it takes the shared queue, then the default.
    assert_eq!(post(&fake, "/v1/messages", "key-b", body.clone()).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(post(&fake, "/v1/messages", "key-b", body.clone()).await.status(), StatusCode::OK);
    // key-a's own queue, sent as a Bearer token this time.
    let response = client()
        .post(format!("{}/v1/chat/completions", fake.url()))
        .bearer_auth("key-a")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(post(&fake, "/v1/messages", "key-a", body.clone()).await.status(), StatusCode::OK);
    // A per-credential default applies every time.
    for _ in 0..2 {
        assert_eq!(post(&fake, "/v1/messages", "key-dead", body.clone()).await.status(), StatusCode::UNAUTHORIZED);
    }

    assert_eq!(fake.count(), 6);
    assert_eq!((fake.count_for("key-a"), fake.count_for("key-b"), fake.count_for("key-dead")), (2, 2, 2));
    let a = fake.requests_for("key-a");
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].status, Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(a[0].header("authorization"), Some("Bearer key-a"));
    assert_eq!(a[1].status, Some(StatusCode::OK));
}

#[tokio::test]
async fn delay_before_headers_holds_the_response() {
    let fake = FakeUpstream::start().await;
    let delay = Duration::from_millis(300);
    fake.push(Script::ok().delay_before_headers(delay));
    let started = Instant::now();
    let request = tokio::spawn({
        let url = format!("{}/v1/messages", fake.url());
        async move { client().post(url).json(&json!({"model": "m"})).send().await.unwrap().status() }
    });
    assert!(fake.wait_until(WAIT, |f| f.in_flight() == 1).await, "counted in flight while waiting");
    assert_eq!(request.await.unwrap(), StatusCode::OK);
    assert!(started.elapsed() >= delay, "headers came after {:?}", started.elapsed());
    assert!(fake.wait_until(WAIT, |f| f.in_flight() == 0).await);
}

#[tokio::test]
async fn delay_between_events_paces_the_stream() {
    let fake = FakeUpstream::start().await;
    let gap = Duration::from_millis(40);
    fake.push(Script::ok().deltas(3).delay_between_events(gap));
    let response = post(&fake, "/v1/messages", "k", json!({"model": "m", "stream": true})).await;
    let started = Instant::now();
    let mut arrivals = Vec::new();
    let mut response = response;
    while let Some(chunk) = response.chunk().await.unwrap() {
        arrivals.push((started.elapsed(), chunk));
    }
    let events = 3 + 5;
    assert!(arrivals.len() > 1, "events arrive as separate chunks, not in one burst");
    assert!(
        started.elapsed() >= gap * (events - 2),
        "{events} events with {gap:?} gaps took only {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn disconnect_after_events_breaks_the_body() {
    let fake = FakeUpstream::start().await;
    fake.push(Script::ok().disconnect_after_events(3));
    let response = post(&fake, "/v1/messages", "k", json!({"model": "m", "stream": true})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (bytes, broke) = read_until_end_or_error(response).await;
    assert!(broke, "the client must see a broken body, not a clean end");
    assert_eq!(
        names(&parse_sse(&bytes)),
        ["message_start", "content_block_start", "content_block_delta"],
        "exactly 3 complete events before the break"
    );

    // A non-streaming answer is cut in the middle of its body.
    fake.push(Script::ok().disconnect_after_events(0));
    let response = post(&fake, "/v1/chat/completions", "k", json!({"model": "m"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    let (bytes, broke) = read_until_end_or_error(response).await;
    assert!(broke);
    assert!(serde_json::from_slice::<Value>(&bytes).is_err(), "the body is torn");
    assert!(fake.wait_until(WAIT, |f| f.in_flight() == 0).await);
    assert!(fake.requests().iter().all(|r| r.ended.is_some()));
}

#[tokio::test]
async fn error_event_after_ends_with_a_provider_error() {
    let fake = FakeUpstream::start().await;
    fake.push(Script::ok().error_event_after(2));
    fake.push(Script::ok().error_event_after(1).error_message("try later"));
    fake.push(Script::ok().error_event_after(3));

    let response = post(&fake, "/v1/messages", "k", json!({"model": "m", "stream": true})).await;
    let (bytes, broke) = read_until_end_or_error(response).await;
    assert!(!broke, "an error event ends the stream cleanly");
    let events = parse_sse(&bytes);
    assert_eq!(names(&events), ["message_start", "content_block_start", "error"]);
    assert_eq!(
        events[2].json(),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );
    assert!(std::str::from_utf8(&bytes).unwrap().ends_with("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"));

    let response = post(&fake, "/v1/chat/completions", "k", json!({"model": "m", "stream": true})).await;
    let (bytes, broke) = read_until_end_or_error(response).await;
    assert!(!broke);
    let events = parse_sse(&bytes);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].json()["error"]["message"], "try later");
    assert!(events.iter().all(|e| e.data != "[DONE]"));

    let response = post(&fake, "/v1/responses", "k", json!({"model": "m", "stream": true})).await;
    let events = parse_sse(&response.bytes().await.unwrap());
    assert_eq!(
        names(&events),
        ["response.created", "response.in_progress", "response.output_item.added", "response.failed"]
    );
    assert_eq!(events[3].json()["response"]["status"], "failed");
}

#[tokio::test]
async fn journal_records_method_uri_headers_and_body() {
    let fake = FakeUpstream::start().await;
    let body = json!({"model": "claude-j", "stream": false, "messages": [{"role": "system", "content": "kept"}]});
    let response = client()
        .post(format!("{}/claude/v1/messages?beta=true", fake.url()))
        .header("x-api-key", "sk-account")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "oauth-2025-04-20,claude-code-20250219")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "a path prefix still reaches /v1/messages");
    response.bytes().await.unwrap();
    client().head(format!("{}/", fake.url())).send().await.unwrap();

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(first.seq, 0);
    assert_eq!(first.method, reqwest::Method::POST);
    assert_eq!(first.uri, "/claude/v1/messages?beta=true");
    assert_eq!(first.path, "/claude/v1/messages");
    assert_eq!(first.query.as_deref(), Some("beta=true"));
    assert_eq!(first.credential.as_deref(), Some("sk-account"));
    assert_eq!(first.header("x-api-key"), Some("sk-account"));
    assert_eq!(first.header("anthropic-beta"), Some("oauth-2025-04-20,claude-code-20250219"));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.json.as_ref(), Some(&body));
    assert_eq!(serde_json::from_slice::<Value>(&first.body).unwrap(), body);
    assert_eq!(first.model(), Some("claude-j"));
    assert!(!first.is_stream());
    assert_eq!(first.status, Some(StatusCode::OK));
    assert!(first.ended.unwrap() >= first.started);
    assert!(first.duration().is_some());

    // Unknown routes are answered 404 and journaled, without taking a script.
    let head = &requests[1];
    assert_eq!(head.method, reqwest::Method::HEAD);
    assert_eq!(head.status, Some(StatusCode::NOT_FOUND));
    assert_eq!(head.json, None);

    fake.push(Script::status(StatusCode::FORBIDDEN));
    fake.clear_journal();
    assert_eq!((fake.count(), fake.requests().len()), (0, 0));
    assert_eq!(fake.queued(), 1, "clear_journal keeps scripts");
    fake.reset();
    assert_eq!(fake.queued(), 0, "reset drops scripts");
    assert_eq!(post(&fake, "/v1/messages", "k", json!({})).await.status(), StatusCode::OK);
    assert_eq!(fake.last_request().unwrap().seq, 0);
}

#[tokio::test]
async fn in_flight_counts_hanging_requests_until_the_client_drops_them() {
    let fake = FakeUpstream::start().await;
    fake.push_for("key-a", Script::ok().hang());
    fake.push_for("key-b", Script::ok().hang_after_events(2));

    // A hangs after its headers; B streams two events and stalls.
    let a = post(&fake, "/v1/messages", "key-a", json!({"model": "m", "stream": true})).await;
    assert_eq!(a.status(), StatusCode::OK);
    let mut b = post(&fake, "/v1/messages", "key-b", json!({"model": "m", "stream": true})).await;
    let first = b.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"event: message_start"));

    assert_eq!(fake.in_flight(), 2);
    assert_eq!(fake.max_in_flight(), 2);
    assert_eq!((fake.in_flight_for("key-a"), fake.max_in_flight_for("key-a")), (1, 1));
    assert_eq!(fake.in_flight_for("key-b"), 1);
    assert!(fake.requests().iter().all(|r| r.ended.is_none()));

    // No byte of A's body arrives while it hangs.
    let mut a = a;
    let waited = tokio::time::timeout(Duration::from_millis(200), a.chunk()).await;
    assert!(waited.is_err(), "a hanging body sends nothing");

    // The client drops both; the fake counts them out.
    drop(a);
    drop(b);
    assert!(fake.wait_until(WAIT, |f| f.in_flight() == 0).await, "in flight after drop: {}", fake.in_flight());
    assert_eq!(fake.in_flight_for("key-a"), 0);
    assert_eq!(fake.max_in_flight(), 2, "the peak is kept");
    assert!(fake.requests().iter().all(|r| r.ended.is_some()));

    // Sequential requests on one key never overlap.
    for _ in 0..3 {
        post(&fake, "/v1/messages", "key-c", json!({"model": "m", "stream": true})).await.bytes().await.unwrap();
    }
    assert_eq!(fake.max_in_flight_for("key-c"), 1);
    assert_eq!(fake.count_for("key-c"), 3);
}

#[tokio::test]
async fn shutdown_breaks_open_streams_and_stops_listening() {
    let fake = FakeUpstream::start().await;
    fake.push(Script::ok().hang_after_events(1));
    let response = post(&fake, "/v1/messages", "k", json!({"model": "m", "stream": true})).await;
    let reader = tokio::spawn(read_until_end_or_error(response));
    assert!(fake.wait_until(WAIT, |f| f.in_flight() == 1).await);

    tokio::time::timeout(WAIT, fake.shutdown()).await.expect("shutdown finishes while a stream hangs");
    let (bytes, broke) = reader.await.unwrap();
    assert!(broke, "an open stream breaks on shutdown");
    assert_eq!(names(&parse_sse(&bytes)), ["message_start"]);
    assert_eq!(fake.in_flight(), 0);
    assert!(client().get(format!("{}/v1/models", fake.url())).send().await.is_err(), "no longer listening");
    fake.shutdown().await;
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_server() {
    let fake = FakeUpstream::start().await;
    let url = format!("{}/v1/models", fake.url());
    let clone = fake.clone();
    drop(fake);
    assert_eq!(client().get(&url).send().await.unwrap().status(), StatusCode::OK, "a clone keeps it running");
    drop(clone);
    let deadline = Instant::now() + WAIT;
    while client().get(&url).send().await.is_ok() {
        assert!(Instant::now() < deadline, "still serving after the last handle was dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn verbatim_events_and_recording_off() {
    let fake = FakeUpstream::start().await;
    fake.set_recording(false);
    fake.push(Script::ok().events(["data: {\"a\":1}\n\n", "data: [DONE]\n\n"]).header("x-upstream", "scripted"));
    // Verbatim events are streamed even to a request that did not ask for a stream.
    let response = post(&fake, "/v1/chat/completions", "k", json!({"model": "m"})).await;
    assert_eq!(content_type(&response), "text/event-stream");
    assert_eq!(response.headers()["x-upstream"], "scripted");
    assert_eq!(response.text().await.unwrap(), "data: {\"a\":1}\n\ndata: [DONE]\n\n");
    assert_eq!(fake.count(), 1, "counted although not recorded");
    assert!(fake.requests().is_empty());
    assert!(fake.wait_until(WAIT, |f| f.in_flight() == 0).await);
}
