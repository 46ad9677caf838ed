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

/// The HTML of one account's row on the Accounts page.
fn account_row(html: &str, id: i64) -> &str {
    let start = html.find(&format!("data-testid=\"account-row-{id}\"")).unwrap_or_else(|| panic!("row {id} in {html}"));
    let end = html[start..].find("</tr>").map_or(html.len(), |n| start + n);
    &html[start..end]
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.replace_nanosecond(0).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap()
}

// A Claude account added by signing in (the REST flow, against the fake upstream playing the
// OAuth provider) shows its token state, its usage windows and the Refresh token action in
// the server HTML; an API-key account shows none of them. A refused refresh shows its reason.
subscription_scenario!(oauth_account_rows_show_their_token_state, |_| {}, |app, fake| {
    let (id, _, _) = support::subscription::sign_in(app, "oauth").await;
    let plain = admin(
        app,
        "POST",
        "/accounts",
        json!({"name": "ssr-plain", "platform": "anthropic", "credentials": {"api_key": "sk-ant-ssr"}}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let windows = json!([
        {"name": "5h", "status": "allowed", "used_percent": 42.0, "resets_at": rfc3339(now + time::Duration::hours(2)),
         "window_minutes": 300, "updated_at": rfc3339(now)},
        {"name": "7d", "status": "rejected", "used_percent": 100.0, "resets_at": rfc3339(now + time::Duration::days(3)),
         "window_minutes": 10080, "updated_at": rfc3339(now)},
    ]);
    app.db.store.set_account_windows(id, &windows.to_string()).await.unwrap();

    app.login_admin().await;
    let html = page(app, "/accounts").await;
    let row = account_row(&html, id);
    assert!(row.contains(&format!("data-testid=\"account-type-{id}\"")) && row.contains(">oauth<"), "{row}");
    assert!(row.contains(proxy::testing::oauth_identity::EMAIL), "the signed-in identity: {row}");
    // The fake's tokens live 8 hours; the expiry is stored in whole seconds.
    assert!(row.contains("token expires in 7 h") || row.contains("token expires in 8 h"), "{row}");
    assert!(row.contains("title=\"Access token expires "), "the absolute time in a title: {row}");
    assert!(row.contains(&format!("data-testid=\"refresh-token-{id}\"")), "{row}");
    assert!(row.contains("5h 42% · resets "), "{row}");
    assert!(row.contains("7d 100% · resets "), "{row}");
    let exhausted = &row[row.find("data-testid=\"window-7d\"").unwrap()..];
    assert!(exhausted.starts_with("data-testid=\"window-7d\" data-exhausted=\"true\""), "{exhausted}");
    assert!(row.contains("data-testid=\"window-5h\" data-exhausted=\"false\""), "{row}");
    let plain_row = account_row(&html, plain);
    for absent in ["account-token-", "refresh-token-", "account-windows-"] {
        assert!(!plain_row.contains(absent), "an API-key account has no {absent}: {plain_row}");
    }

    // The provider refuses the next refresh: the row says why, in the error colour.
    fake.revoke_refresh_tokens();
    let res = app
        .client
        .post(app.url(&format!("/api/v1/admin/accounts/{id}/refresh")))
        .header("x-api-key", support::ADMIN_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let html = page(app, "/accounts").await;
    let row = account_row(&html, id);
    let error = &row[row.find(&format!("data-testid=\"account-token-error-{id}\"")).unwrap()..];
    assert!(error.contains("refresh failed: ") && error.contains("invalid_grant"), "{row}");
    assert!(row.contains("class=\"error small account-error\""), "{row}");
});
