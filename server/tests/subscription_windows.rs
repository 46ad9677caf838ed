//! ChatGPT (Codex) subscription accounts and the usage windows of subscription accounts,
//! over real HTTP against the fake upstream playing OpenAI's sign-in, the ChatGPT Codex
//! backend and the Anthropic API: the sign-in through `/openai/*`, requests shaped for the
//! Codex backend (streamed and whole), Codex and Anthropic window headers shown on the
//! account, a 429 cooling the account until the reset of the window that is used up, and the
//! threshold that benches an account before that. SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

mod support;

use proxy::testing::Script;
use proxy::testing::oauth_identity::{CHATGPT_ACCOUNT_ID, EMAIL};
use serde_json::{Value, json};
use support::TestApp;
use support::subscription::{admin, query_of, sign_in, sign_in_on};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A Responses request as the OpenAI Python SDK sends it.
async fn responses(app: &TestApp, key: &str, stream: bool) -> reqwest::Response {
    let body = json!({"model": "gpt-5.1", "input": "hi", "stream": stream, "max_output_tokens": 100});
    app.client
        .post(app.url("/v1/responses"))
        .header("authorization", format!("Bearer {key}"))
        .header("user-agent", "OpenAI/Python 2.0.0")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn account(app: &TestApp, id: i64) -> Value {
    admin(app, "GET", &format!("/accounts/{id}"), Value::Null).await
}

fn at(text: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(text.as_str().unwrap_or_else(|| panic!("not a time: {text}")), &Rfc3339).unwrap()
}

fn window<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .unwrap_or_else(|| panic!("no {name}: {view}"))
}

subscription_scenario!(codex_accounts_sign_in_and_serve_the_responses_api, |_| {}, |app, fake| {
    // The OpenAI route of the flow, with the callback address pasted whole.
    let group = admin(app, "POST", "/groups", json!({"name": "codex", "platform": "openai"})).await["id"].clone();
    let started = admin(app, "POST", "/openai/generate-auth-url", Value::Null).await;
    let q = query_of(started["auth_url"].as_str().unwrap());
    assert_eq!(
        (q["scope"].as_str(), q["codex_cli_simplified_flow"].as_str()),
        ("openid profile email offline_access", "true")
    );
    let callback = format!("http://localhost:1455/auth/callback?code=abc&scope=x&state={}", q["state"]);
    let body = json!({"session_id": started["session_id"], "code": callback, "name": "plus", "group_ids": [group]});
    let view = admin(app, "POST", "/openai/exchange-code", body).await;
    assert_eq!((view["platform"].as_str(), view["type"].as_str()), (Some("openai"), Some("oauth")));
    assert_eq!(
        (view["oauth"]["account_id"].as_str(), view["oauth"]["email"].as_str()),
        (Some(CHATGPT_ACCOUNT_ID), Some(EMAIL))
    );
    let grant = fake.token_requests().pop().unwrap();
    assert_eq!((grant.field("grant_type"), grant.field("code")), (Some("authorization_code"), Some("abc")));
    assert!(grant.field("code_verifier").is_some_and(|v| v.len() >= 43));

    let user =
        admin(app, "POST", "/users", json!({"email": "c@example.com", "password": "dev-password-1"})).await["id"]
            .as_i64()
            .unwrap();
    let key =
        admin(app, "POST", &format!("/users/{user}/api-keys"), json!({"name": "k", "group_id": group})).await["key"]
            .as_str()
            .unwrap()
            .to_owned();

    // Streamed: passed through from the Codex endpoint.
    let res = responses(app, &key, true).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("response.completed"), "{text}");
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.path, "/backend-api/codex/responses");
    let h = |n: &str| sent.headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!((h("authorization"), h("chatgpt-account-id")), ("Bearer fake-at-1".into(), CHATGPT_ACCOUNT_ID.into()));
    assert!(h("user-agent").starts_with("codex_cli_rs/") && h("originator") == "codex_cli_rs");
    let b = sent.json.clone().unwrap();
    assert_eq!((b["store"].as_bool(), b["stream"].as_bool()), (Some(false), Some(true)));
    assert!(b["instructions"].is_string() && b.get("max_output_tokens").is_none(), "{b}");

    // Whole: the backend still streams; the client gets the final response object.
    let res = responses(app, &key, false).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let whole: Value = res.json().await.unwrap();
    assert_eq!((whole["object"].as_str(), whole["status"].as_str()), (Some("response"), Some("completed")), "{whole}");
    let rows = support::usage_rows(&app.db.store, 2).await;
    assert!(rows.iter().all(|r| r.status_code == 200 && r.input_tokens > 0 && r.account_id == view["id"].as_i64()));

    // The account test speaks to the Codex backend too.
    let id = view["id"].as_i64().unwrap();
    let tested = admin(app, "POST", &format!("/accounts/{id}/test"), json!({})).await;
    assert_eq!(tested["success"], true, "{tested}");
    assert!(!tested["text"].as_str().unwrap().is_empty(), "{tested}");
    assert_eq!(fake.last_request().unwrap().path, "/backend-api/codex/responses");

    // Chat Completions cannot go to the Codex backend: no account of the group serves it.
    let res = app
        .client
        .post(app.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {key}"))
        .json(&json!({"model": "gpt-5.1", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(fake.count_for("fake-at-1"), 3, "nothing more went upstream");

    // Refreshing a ChatGPT token: OpenAI's form grant, and the next request on the new token.
    let refreshed = admin(app, "POST", &format!("/openai/accounts/{id}/refresh"), Value::Null).await;
    assert!(refreshed["oauth"]["refreshed_at"].is_string());
    let grant = fake.token_requests().pop().unwrap();
    assert_eq!((grant.path.as_str(), grant.field("grant_type")), ("/oauth/token", Some("refresh_token")));
    assert_eq!((grant.field("refresh_token"), grant.field("scope")), (Some("fake-rt-1"), Some("openid profile email")));
    assert_eq!(responses(app, &key, true).await.status(), 200);
    assert_eq!(fake.count_for("fake-at-2"), 1);
    assert_eq!(fake.last_request().unwrap().headers["chatgpt-account-id"], CHATGPT_ACCOUNT_ID);
});

subscription_scenario!(codex_windows_and_a_429_on_the_exhausted_window, |_| {}, |app, fake| {
    let (id, key, _) = sign_in_on(app, "openai", "oauth").await;
    fake.push_for(
        "fake-at-1",
        Script::ok()
            .header("x-codex-primary-used-percent", "12")
            .header("x-codex-primary-window-minutes", "300")
            .header("x-codex-primary-reset-after-seconds", "3600")
            .header("x-codex-secondary-used-percent", "55")
            .header("x-codex-secondary-window-minutes", "10080")
            .header("x-codex-secondary-reset-after-seconds", "200000"),
    );
    assert_eq!(responses(app, &key, true).await.status(), 200);
    let view = account(app, id).await;
    assert_eq!(
        (window(&view, "primary")["used_percent"].as_f64(), window(&view, "secondary")["used_percent"].as_f64()),
        (Some(12.0), Some(55.0))
    );
    assert_eq!(view["state"], "active");

    // Primary at 40 % and secondary used up: cooled until the secondary's reset.
    let now = OffsetDateTime::now_utc();
    fake.push_for(
        "fake-at-1",
        Script::status_code(429)
            .error_message("usage limit reached")
            .header("x-codex-primary-used-percent", "40")
            .header("x-codex-primary-reset-after-seconds", "1800")
            .header("x-codex-secondary-used-percent", "100")
            .header("x-codex-secondary-reset-after-seconds", "300000"),
    );
    let res = responses(app, &key, true).await;
    assert_eq!(res.status(), 429);
    let view = account(app, id).await;
    assert_eq!(view["state"], "rate_limited");
    let until = at(&view["rate_limit_reset_at"]) - now;
    assert!((until.whole_seconds() - 300_000).abs() < 30, "cooled {until} instead of the secondary's 300000 s");
    assert_eq!(window(&view, "secondary")["used_percent"].as_f64(), Some(100.0));
});

subscription_scenario!(anthropic_windows_threshold_and_the_rejected_window, |_| {}, |app, fake| {
    let (id, key, _) = sign_in(app, "oauth").await;
    let send = || async {
        app.client
            .post(app.url("/v1/messages"))
            .header("x-api-key", &key)
            .json(&support::hello("claude-sonnet-4-5", false))
            .send()
            .await
            .unwrap()
            .status()
    };
    let soon = (OffsetDateTime::now_utc().unix_timestamp() + 3600).to_string();
    let later = (OffsetDateTime::now_utc().unix_timestamp() + 5 * 86_400).to_string();
    let windows = |five: &str, seven: &str, status: &str| {
        Script::ok()
            .header("anthropic-ratelimit-unified-5h-status", status)
            .header("anthropic-ratelimit-unified-5h-utilization", five)
            .header("anthropic-ratelimit-unified-5h-reset", soon.clone())
            .header("anthropic-ratelimit-unified-7d-status", "allowed")
            .header("anthropic-ratelimit-unified-7d-utilization", seven)
            .header("anthropic-ratelimit-unified-7d-reset", later.clone())
    };
    fake.push_for("fake-at-1", windows("0.5", "0.2", "allowed"));
    assert_eq!(send().await, 200);
    let view = account(app, id).await;
    assert_eq!(
        (window(&view, "5h")["used_percent"].as_f64(), window(&view, "7d")["used_percent"].as_f64()),
        (Some(50.0), Some(20.0))
    );
    assert_eq!(window(&view, "5h")["status"], "allowed");

    // Above the threshold (set at run time): the account waits for the 5-hour reset.
    admin(app, "PUT", "/settings", json!({"window_threshold_percent": 90})).await;
    fake.push_for("fake-at-1", windows("0.95", "0.3", "allowed_warning"));
    assert_eq!(send().await, 200, "the request that crossed it is still served");
    let view = account(app, id).await;
    assert_eq!(view["state"], "rate_limited");
    assert_eq!(at(&view["rate_limit_reset_at"]).unix_timestamp().to_string(), soon);
    assert_eq!(send().await, 429, "the group's only account waits");

    // A 429 naming the weekly window as rejected cools until the weekly reset.
    admin(app, "POST", &format!("/accounts/{id}/clear-rate-limit"), Value::Null).await;
    admin(app, "PUT", "/settings", json!({"window_threshold_percent": 0})).await;
    fake.push_for(
        "fake-at-1",
        Script::status_code(429)
            .header("anthropic-ratelimit-unified-reset", soon.clone())
            .header("anthropic-ratelimit-unified-5h-status", "allowed")
            .header("anthropic-ratelimit-unified-5h-reset", soon.clone())
            .header("anthropic-ratelimit-unified-7d-status", "rejected")
            .header("anthropic-ratelimit-unified-7d-reset", later.clone()),
    );
    assert_eq!(send().await, 429);
    let view = account(app, id).await;
    assert_eq!(at(&view["rate_limit_reset_at"]).unix_timestamp().to_string(), later);
    assert_eq!(window(&view, "7d")["status"], "rejected");
});
