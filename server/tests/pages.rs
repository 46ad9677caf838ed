//! Every admin page renders its data on the server: the HTML a signed-in browser (or curl)
//! receives already holds the rows, before any JavaScript runs.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

mod support;

use serde_json::{Value, json};
use support::TestApp;

async fn admin(app: &TestApp, method: &str, path: &str, body: Value) -> Value {
    support::admin_at(&app.client, &app.url(""), method, path, body).await
}

async fn page(app: &TestApp, path: &str) -> String {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.text().await.unwrap()
}

on_both_databases!(every_page_renders_its_rows_in_the_server_html, |app| {
    let group = admin(app, "POST", "/groups", json!({"name": "ssr-group", "platform": "anthropic"})).await;
    let group_id = group["id"].as_i64().unwrap();
    let account = admin(
        app,
        "POST",
        "/accounts",
        json!({"name": "ssr-account", "platform": "anthropic", "type": "apikey",
               "credentials": {"api_key": "sk-ant-ssr", "base_url": "http://127.0.0.1:9"},
               "model_mapping": {"ssr-model": "claude-haiku-4-5"}, "group_ids": [group_id]}),
    )
    .await;
    let account_id = account["id"].as_i64().unwrap();
    let user =
        admin(app, "POST", "/users", json!({"email": "ssr-user@example.com", "password": "ssr-password-1"})).await;
    let user_id = user["id"].as_i64().unwrap();
    let key =
        admin(app, "POST", &format!("/users/{user_id}/api-keys"), json!({"name": "ssr-key", "group_id": group_id}))
            .await;
    let key_id = key["id"].as_i64().unwrap();
    admin(app, "PUT", "/settings", json!({"site_name": "ssr-site"})).await;
    app.db
        .store
        .insert_usage(&[store::NewUsage {
            request_id: "ssr-request".into(),
            user_id: Some(user_id),
            api_key_id: Some(key_id),
            account_id: Some(account_id),
            group_id: Some(group_id),
            requested_model: "ssr-model".into(),
            upstream_model: "claude-haiku-4-5".into(),
            input_tokens: 1234,
            output_tokens: 56,
            cache_creation_tokens: 0,
            cache_creation_5m_tokens: 0,
            cache_creation_1h_tokens: 0,
            cache_read_tokens: 0,
            input_cost: 0.001,
            output_cost: 0.0002,
            cache_creation_cost: 0.0,
            cache_read_cost: 0.0,
            total_cost: 0.0012,
            actual_cost: 0.0012,
            rate_multiplier: 1.0,
            stream: false,
            status_code: 200,
            error_message: String::new(),
            duration_ms: 420,
            first_token_ms: None,
            user_agent: "test".into(),
            created_at: time::OffsetDateTime::now_utc(),
        }])
        .await
        .unwrap();

    app.login_admin().await;
    let expectations: &[(&str, &[&str])] = &[
        ("/accounts", &["ssr-account", "ssr-group"]),
        ("/groups", &["ssr-group"]),
        ("/keys", &["ssr-key", "ssr-user@example.com"]),
        ("/users", &["ssr-user@example.com"]),
        ("/models", &["ssr-model", "ssr-account", "claude-sonnet-4-5"]),
        ("/usage", &["ssr-model", "1234"]),
        ("/settings", &["ssr-site"]),
    ];
    for (path, needles) in expectations {
        let html = page(app, path).await;
        for needle in *needles {
            assert!(html.contains(needle), "GET {path} should render `{needle}` on the server");
        }
        assert!(html.contains("/pkg/sub2api.js"), "GET {path} loads the hydration script");
        assert!(!html.contains("sk-ant-ssr"), "GET {path} must never show an upstream credential");
    }
});
