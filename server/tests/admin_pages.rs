//! The Groups, Users and API Keys pages over real HTTP: what their server-rendered HTML shows,
//! and the server functions their buttons call.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

mod support;

use leptos::server_fn::{Protocol, ServerFn};
use serde_json::{Value, json};
use support::{ADMIN_API_KEY, TestApp, admin_at};
use time::OffsetDateTime;

fn usage_row(user_id: i64, api_key_id: i64, created_at: OffsetDateTime) -> store::NewUsage {
    store::NewUsage {
        request_id: format!("req-{api_key_id}-{}", created_at.unix_timestamp()),
        user_id: Some(user_id),
        api_key_id: Some(api_key_id),
        account_id: None,
        group_id: None,
        requested_model: "claude-sonnet-4-5".into(),
        upstream_model: "claude-sonnet-4-5".into(),
        input_tokens: 100,
        output_tokens: 20,
        cache_creation_tokens: 0,
        cache_creation_5m_tokens: 0,
        cache_creation_1h_tokens: 0,
        cache_read_tokens: 5,
        input_cost: 0.0003,
        output_cost: 0.0003,
        cache_creation_cost: 0.0,
        cache_read_cost: 0.0,
        total_cost: 0.0006,
        actual_cost: 0.0012,
        rate_multiplier: 2.0,
        stream: false,
        status_code: 200,
        error_message: String::new(),
        duration_ms: 100,
        first_token_ms: None,
        user_agent: "test".into(),
        created_at,
    }
}

async fn page(app: &TestApp, path: &str) -> String {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.text().await.unwrap()
}

/// Calls a server function the way the hydrated page does and returns the JSON it answered.
async fn call<F: ServerFn>(app: &TestApp, body: Option<Value>, form: &[(&str, &str)]) -> (u16, Value) {
    let origin = format!("http://{}", app.addr);
    let req = match (F::Protocol::METHOD.as_str(), body) {
        ("GET", _) => app.client.get(app.url(F::PATH)).query(form),
        (_, Some(json)) => app.client.post(app.url(F::PATH)).json(&json),
        _ => app.client.post(app.url(F::PATH)).form(form),
    };
    let res = req.header("origin", origin).header("accept", "application/json").send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

on_both_databases!(pages_render_groups_users_and_keys_with_todays_usage, |app| {
    let base = app.url("");
    let group = admin_at(
        &app.client,
        &base,
        "POST",
        "/groups",
        json!({"name": "claude-pro", "platform": "anthropic", "rate_multiplier": 1.5}),
    )
    .await;
    let gid = group["id"].as_i64().unwrap();
    let dev = admin_at(
        &app.client,
        &base,
        "POST",
        "/users",
        json!({"email": "dev@example.com", "password": "dev-password-1"}),
    )
    .await;
    let uid = dev["id"].as_i64().unwrap();
    let other = admin_at(
        &app.client,
        &base,
        "POST",
        "/users",
        json!({"email": "ops@example.com", "password": "ops-password-1"}),
    )
    .await;
    let oid = other["id"].as_i64().unwrap();
    let key = admin_at(
        &app.client,
        &base,
        "POST",
        &format!("/users/{uid}/api-keys"),
        json!({"name": "laptop", "group_id": gid}),
    )
    .await;
    let kid = key["id"].as_i64().unwrap();
    let other_key =
        admin_at(&app.client, &base, "POST", &format!("/users/{oid}/api-keys"), json!({"name": "ci-runner"})).await;
    let now = OffsetDateTime::now_utc();
    let yesterday = now - time::Duration::days(1);
    let rows = [
        usage_row(uid, kid, now),
        usage_row(uid, kid, now - time::Duration::seconds(1)),
        usage_row(uid, kid, yesterday),
    ];
    app.db.store.insert_usage(&rows).await.unwrap();

    app.login_admin().await;
    let html = page(app, "/groups").await;
    assert!(html.contains(&format!("data-testid=\"group-row-{gid}\"")), "{html}");
    assert!(html.contains("claude-pro") && html.contains("1.5×"), "{html}");
    assert!(html.contains(&format!("href=\"/keys?group={gid}\">1<")), "one key in the group: {html}");

    let html = page(app, "/users").await;
    assert!(html.contains(&format!("data-testid=\"user-row-{uid}\"")) && html.contains("dev@example.com"), "{html}");
    assert!(html.contains(&format!("href=\"/keys?user={uid}\">1<")), "{html}");
    // Yesterday's row is not today's usage: 2 requests of 125 tokens each.
    assert!(html.contains("2 req · 250 tok · $0.0024"), "{html}");

    let html = page(app, "/keys").await;
    assert!(html.contains(&format!("data-testid=\"key-row-{kid}\"")), "{html}");
    assert!(html.contains(&format!("data-testid=\"key-row-{}\"", other_key["id"])), "{html}");
    assert!(html.contains("2 req · 250 tok · $0.0024"), "{html}");
    assert!(html.contains(&format!("<option value=\"{gid}\" selected")), "the key's group is selected: {html}");
    assert!(!html.contains(key["key"].as_str().unwrap()), "the full key is shown only once");

    let html = page(app, &format!("/keys?user={oid}")).await;
    assert!(html.contains("ci-runner") && !html.contains(&format!("key-row-{kid}\"")), "filtered by owner: {html}");
    let html = page(app, "/keys?group=none").await;
    assert!(html.contains("ci-runner") && !html.contains(">laptop<"), "ungrouped keys only: {html}");
    let html = page(app, "/keys?status=disabled").await;
    assert!(html.contains("No API keys match."), "{html}");
});

on_both_databases!(key_server_functions_create_move_disable_and_delete, |app| {
    use app::api::users::{CreateApiKey, DeleteApiKey, GetPublicBaseUrl, ListApiKeys, SetApiKeyGroup, SetApiKeyStatus};
    let base = app.url("");
    let (status, body) = call::<ListApiKeys>(app, None, &[]).await;
    assert_ne!(status, 200, "needs a signed-in admin: {body}");

    let group = admin_at(&app.client, &base, "POST", "/groups", json!({"name": "gpt", "platform": "openai"})).await;
    let gid = group["id"].as_i64().unwrap();
    let dev = admin_at(
        &app.client,
        &base,
        "POST",
        "/users",
        json!({"email": "dev@example.com", "password": "dev-password-1"}),
    )
    .await;
    let uid = dev["id"].as_i64().unwrap();
    app.login_admin().await;

    let (status, created) =
        call::<CreateApiKey>(app, Some(json!({"user_id": uid, "input": {"name": "laptop", "group_id": gid}})), &[])
            .await;
    assert_eq!(status, 200, "{created}");
    let full = created["key"].as_str().unwrap();
    assert!(full.starts_with("sk-") && full.len() == 67, "{created}");
    let kid = created["id"].as_i64().unwrap();
    assert_eq!(created["group_id"], gid);

    let (status, url) = call::<GetPublicBaseUrl>(app, None, &[]).await;
    assert_eq!((status, url), (200, json!(format!("http://{}", app.addr))), "falls back to the Host header");
    app.db.store.put_setting("site.public_base_url", "https://gw.example.com/").await.unwrap();
    let (_, url) = call::<GetPublicBaseUrl>(app, None, &[]).await;
    assert_eq!(url, json!("https://gw.example.com"));

    let (status, disabled) =
        call::<SetApiKeyStatus>(app, None, &[("id", &kid.to_string()), ("status", "disabled")]).await;
    assert_eq!((status, &disabled["status"]), (200, &json!("disabled")), "{disabled}");
    assert_eq!(disabled["group_id"], gid, "a status change leaves the group alone");

    let (status, moved) = call::<SetApiKeyGroup>(app, None, &[("id", &kid.to_string())]).await;
    assert_eq!((status, &moved["group_id"]), (200, &Value::Null), "{moved}");
    assert_eq!(moved["status"], "disabled");
    let (status, refused) = call::<SetApiKeyGroup>(app, None, &[("id", &kid.to_string()), ("group_id", "4242")]).await;
    assert_ne!(status, 200);
    assert!(refused.to_string().contains("group_id: group 4242 does not exist"), "{refused}");

    let (status, listed) = call::<ListApiKeys>(app, None, &[("user_id", &uid.to_string())]).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed[0]["user_email"], "dev@example.com");
    assert_eq!(listed[0]["key"]["status"], "disabled");
    assert!(!listed.to_string().contains(full), "the full key is shown only once");

    let (status, _) = call::<DeleteApiKey>(app, None, &[("id", &kid.to_string())]).await;
    assert_eq!(status, 200);
    assert!(app.db.store.find_api_key(kid).await.unwrap().is_none());
    let key_header = app.client.get(app.url("/api/v1/admin/api-keys")).header("x-api-key", ADMIN_API_KEY);
    let all: Value = key_header.send().await.unwrap().json().await.unwrap();
    assert_eq!(all["data"], json!([]));
});

on_both_databases!(group_and_user_server_functions, |app| {
    use app::api::groups::{CreateGroup, DeleteGroup, ListGroups, UpdateGroup};
    use app::api::users::{CreateUser, DeleteUser, ListUsers, UpdateUser};
    app.login_admin().await;

    let (status, group) = call::<CreateGroup>(
        app,
        Some(json!({"input": {"name": "claude", "platform": "anthropic", "rate_multiplier": 0.8}})),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{group}");
    let gid = group["id"].as_i64().unwrap();
    let (_, dup) =
        call::<CreateGroup>(app, Some(json!({"input": {"name": "claude", "platform": "openai"}})), &[]).await;
    assert!(dup.to_string().contains("name: a group with this name already exists"), "{dup}");

    // A group's platform is fixed while accounts of that platform belong to it.
    let base = app.url("");
    admin_at(
        &app.client,
        &base,
        "POST",
        "/accounts",
        json!({"name": "a1", "platform": "anthropic", "type": "apikey", "credentials": {"api_key": "sk-ant-x"}, "group_ids": [gid]}),
    )
    .await;
    let (status, refused) =
        call::<UpdateGroup>(app, Some(json!({"id": gid, "input": {"platform": "openai"}})), &[]).await;
    assert_ne!(status, 200);
    assert!(refused.to_string().contains("platform: the group has 1 anthropic accounts"), "{refused}");
    let (status, renamed) = call::<UpdateGroup>(
        app,
        Some(json!({"id": gid, "input": {"name": "claude-max", "rate_multiplier": 2.0}})),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!((renamed["name"].as_str(), renamed["account_count"].as_i64()), (Some("claude-max"), Some(1)));
    let (_, listed) = call::<ListGroups>(app, None, &[]).await;
    assert_eq!(listed[0]["rate_multiplier"], 2.0);
    let (status, _) = call::<DeleteGroup>(app, None, &[("id", &gid.to_string())]).await;
    assert_eq!(status, 200);

    let (status, user) = call::<CreateUser>(
        app,
        Some(json!({"input": {"email": "New@Example.com", "password": "long-enough-1", "concurrency": 3}})),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{user}");
    let uid = user["id"].as_i64().unwrap();
    let (status, updated) =
        call::<UpdateUser>(app, Some(json!({"id": uid, "input": {"status": "disabled", "concurrency": 0}})), &[]).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!((updated["email"].as_str(), updated["status"].as_str()), (Some("new@example.com"), Some("disabled")));
    let (_, users) = call::<ListUsers>(app, None, &[]).await;
    let listing = users.as_array().unwrap().iter().find(|u| u["user"]["id"] == uid).unwrap().clone();
    assert_eq!((listing["api_key_count"].as_i64(), listing["today"]["requests"].as_i64()), (Some(0), Some(0)));
    let (status, short) =
        call::<CreateUser>(app, Some(json!({"input": {"email": "x@y", "password": "short"}})), &[]).await;
    assert_ne!(status, 200);
    assert!(short.to_string().contains("password"), "{short}");
    let (status, _) = call::<DeleteUser>(app, None, &[("id", &uid.to_string())]).await;
    assert_eq!(status, 200);
});

// What the browser sends for an all-empty filter, an emptied text field and an emptied
// mapping: each must mean "no filter" and "clear it", not a missing argument or "unchanged".
on_both_databases!(browser_encodings_carry_empty_filters_and_cleared_fields, |app| {
    use app::api::models::SaveModelMapping;
    use app::api::settings::SaveSettings;
    use app::api::usage::{GetUsageTotals, ListUsage};
    use domain::settings::SettingsInput;
    app.login_admin().await;

    // A query with every filter empty encodes to no URL arguments at all.
    let (status, totals) = call::<GetUsageTotals>(app, None, &[]).await;
    assert_eq!((status, totals["requests"].as_i64()), (200, Some(0)), "{totals}");
    let (status, rows) = call::<ListUsage>(app, None, &[]).await;
    assert_eq!((status, rows["total"].as_i64()), (200, Some(0)), "{rows}");

    let settings = |url: &str| SaveSettings {
        input: SettingsInput { public_base_url: Some(url.to_owned()), ..SettingsInput::default() },
    };
    let body = |s: SaveSettings| Some(serde_json::to_value(s).unwrap());
    let (status, saved) = call::<SaveSettings>(app, body(settings("https://gw.example")), &[]).await;
    assert_eq!((status, saved["public_base_url"].as_str()), (200, Some("https://gw.example")), "{saved}");
    let (status, saved) = call::<SaveSettings>(app, body(settings("")), &[]).await;
    assert_eq!((status, saved["public_base_url"].as_str()), (200, Some("")), "emptied means cleared: {saved}");

    let base = app.url("");
    let group = admin_at(&app.client, &base, "POST", "/groups", json!({"name": "g", "platform": "anthropic"})).await;
    let account = admin_at(
        &app.client,
        &base,
        "POST",
        "/accounts",
        json!({"name": "a", "platform": "anthropic", "type": "apikey", "credentials": {"api_key": "sk-ant-x"},
               "group_ids": [group["id"]], "model_mapping": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}}),
    )
    .await;
    let id = account["id"].as_i64().unwrap();
    let cleared = SaveModelMapping { account_id: id, mapping: Default::default() };
    let (status, res) = call::<SaveModelMapping>(app, Some(serde_json::to_value(cleared).unwrap()), &[]).await;
    assert_eq!(status, 200, "{res}");
    let after = admin_at(&app.client, &base, "GET", &format!("/accounts/{id}"), Value::Null).await;
    assert_eq!(after["model_mapping"], json!({}), "{after}");
});
