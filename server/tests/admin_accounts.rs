//! Accounts over real HTTP: the search, bulk import and bulk status routes of the admin REST
//! API, the server functions the Accounts page calls, and the page's server-rendered HTML.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

mod support;

use leptos::server_fn::{Protocol, ServerFn};
use serde_json::{Value, json};
use support::{ADMIN_API_KEY, TestApp, admin_at};

/// An admin REST call that may fail: (HTTP status, whole envelope).
async fn rest(app: &TestApp, method: &str, path: &str, body: Value) -> (u16, Value) {
    let url = app.url(&format!("/api/v1/admin{path}"));
    let req = match method {
        "GET" => app.client.get(url),
        "POST" => app.client.post(url),
        other => panic!("method {other}"),
    };
    let req = req.header("x-api-key", ADMIN_API_KEY);
    let req = if body.is_null() { req } else { req.json(&body) };
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn data(app: &TestApp, method: &str, path: &str, body: Value) -> Value {
    admin_at(&app.client, &app.url(""), method, path, body).await
}

async fn group(app: &TestApp, name: &str, platform: &str) -> i64 {
    data(app, "POST", "/groups", json!({"name": name, "platform": platform})).await["id"].as_i64().unwrap()
}

fn names(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_owned()).collect()
}

/// Calls a server function the way the hydrated page does and returns the JSON it answered.
async fn call<F: ServerFn>(app: &TestApp, body: Option<Value>, query: &[(&str, &str)]) -> (u16, Value) {
    let origin = format!("http://{}", app.addr);
    let req = match (F::Protocol::METHOD.as_str(), body) {
        ("GET", _) => app.client.get(app.url(F::PATH)).query(query),
        (_, Some(json)) => app.client.post(app.url(F::PATH)).json(&json),
        _ => app.client.post(app.url(F::PATH)).form(query),
    };
    let res = req.header("origin", origin).header("accept", "application/json").send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

on_both_databases!(bulk_import_creates_one_account_per_line_and_reports_the_rest, |app| {
    let gid = group(app, "claude", "anthropic").await;
    let keys = ["sk-ant-one", "", "sk-ant-two", "sk-ant-one", "has a space", "  sk-ant-three  "];
    let body = json!({
        "platform": "anthropic", "name_prefix": "team", "api_keys": keys,
        "base_url": "https://relay.example/", "group_ids": [gid], "concurrency": 2, "priority": 7
    });
    let (status, res) = rest(app, "POST", "/accounts/bulk-import", body).await;
    assert_eq!(status, 200, "{res}");
    let text = res.to_string();
    assert!(!text.contains("sk-ant"), "keys never come back: {text}");
    let result = &res["data"];
    assert_eq!(result["created"], 3);
    assert_eq!(
        result["errors"],
        json!([
            {"line": 4, "message": "the same key as line 1"},
            {"line": 5, "message": "credentials.api_key: must be a non-empty key without spaces"}
        ])
    );
    let ids: Vec<i64> = result["account_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    let first = data(app, "GET", &format!("/accounts/{}", ids[0]), Value::Null).await;
    assert_eq!(
        (&first["name"], &first["base_url"], &first["group_ids"], &first["concurrency"], &first["priority"]),
        (&json!("team-1"), &json!("https://relay.example"), &json!([gid]), &json!(2), &json!(7))
    );
    let secrets = store::cipher::SecretBox::from_key_text(&"ab".repeat(32)).unwrap();
    let row = app.db.store.find_account(ids[2]).await.unwrap().unwrap();
    assert_eq!(app::service::accounts::open_api_key(&secrets, &row).unwrap(), "sk-ant-three", "trimmed, sealed");

    let page = data(app, "GET", "/accounts/search?q=team-", Value::Null).await;
    assert_eq!(names(&page), ["team-1", "team-2", "team-3"], "a failed line does not use up a number");
    let again = json!({"platform": "anthropic", "name_prefix": "team", "api_keys": ["sk-ant-four"]});
    let result = data(app, "POST", "/accounts/bulk-import", again).await;
    let id = result["account_ids"][0].as_i64().unwrap();
    let fourth = data(app, "GET", &format!("/accounts/{id}"), Value::Null).await;
    assert_eq!(fourth["name"], "team-4", "numbering continues after earlier imports");

    // Shared settings are refused once, for the whole import.
    let wrong_group = json!({"platform": "openai", "name_prefix": "gpt", "api_keys": ["sk-1"], "group_ids": [gid]});
    let (status, res) = rest(app, "POST", "/accounts/bulk-import", wrong_group).await;
    assert_eq!(status, 400);
    assert!(res["message"].as_str().unwrap().starts_with("group_ids:"), "{res}");
    let bad_url = json!({"platform": "openai", "name_prefix": "gpt", "api_keys": ["sk-1"], "base_url": "ftp://x"});
    let (status, res) = rest(app, "POST", "/accounts/bulk-import", bad_url).await;
    assert_eq!(
        (status, res["message"].as_str()),
        (400, Some("credentials.base_url: must be an http:// or https:// URL"))
    );
    let no_keys = json!({"platform": "openai", "name_prefix": "gpt", "api_keys": ["", " "]});
    let (status, res) = rest(app, "POST", "/accounts/bulk-import", no_keys).await;
    assert_eq!((status, res["message"].as_str()), (400, Some("api_keys: paste at least one key, one per line")));
    let oauth = json!({"platform": "anthropic", "type": "oauth", "name_prefix": "x", "api_keys": ["k"]});
    assert_eq!(rest(app, "POST", "/accounts/bulk-import", oauth).await.0, 400);
    assert_eq!(app.db.store.list_accounts().await.unwrap().len(), 4, "nothing was created by refused imports");
});

on_both_databases!(bulk_status_enables_and_disables_many_accounts, |app| {
    let body = json!({"platform": "openai", "name_prefix": "gpt", "api_keys": ["k1", "k2", "k3"]});
    let result = data(app, "POST", "/accounts/bulk-import", body).await;
    let ids: Vec<i64> = result["account_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    app.db.store.set_account_status(ids[2], "error", "401: invalid key").await.unwrap();

    let res = data(
        app,
        "POST",
        "/accounts/bulk-status",
        json!({"ids": [ids[0], ids[1], ids[0], 999_999], "status": "disabled"}),
    )
    .await;
    assert_eq!(res["updated"], 2, "duplicates count once, unknown ids not at all");
    let page = data(app, "GET", "/accounts/search?status=disabled", Value::Null).await;
    assert_eq!(names(&page), ["gpt-1", "gpt-2"]);
    assert_eq!(page["items"][0]["state"], "disabled");

    let res = data(app, "POST", "/accounts/bulk-status", json!({"ids": ids, "status": "active"})).await;
    assert_eq!(res["updated"], 3);
    let page = data(app, "GET", "/accounts/search?status=active", Value::Null).await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"][2]["error_message"], "", "enabling clears the recorded error");

    let (status, res) = rest(app, "POST", "/accounts/bulk-status", json!({"ids": [ids[0]], "status": "error"})).await;
    assert_eq!((status, res["message"].as_str()), (400, Some("status: must be `active` or `disabled`")));
    let (status, _) = rest(app, "POST", "/accounts/bulk-status", json!({"ids": [], "status": "active"})).await;
    assert_eq!(status, 400);
    let (status, _) = rest(app, "POST", "/accounts/bulk-status", json!({"ids": [1], "status": "paused"})).await;
    assert_eq!(status, 400);
});

on_both_databases!(search_filters_and_pages_a_thousand_accounts, |app| {
    let claude = group(app, "claude", "anthropic").await;
    let keys: Vec<String> = (0..1000).map(|i| format!("sk-{i}")).collect();
    let (anthropic, openai) = keys.split_at(600);
    let body = json!({"platform": "anthropic", "name_prefix": "claude", "api_keys": anthropic, "group_ids": [claude]});
    assert_eq!(data(app, "POST", "/accounts/bulk-import", body).await["created"], 600);
    let body = json!({"platform": "openai", "name_prefix": "gpt", "api_keys": openai});
    assert_eq!(data(app, "POST", "/accounts/bulk-import", body).await["created"], 400);

    let page = data(app, "GET", "/accounts/search", Value::Null).await;
    assert_eq!(
        (&page["total"], &page["pages"], &page["page"], &page["page_size"]),
        (&json!(1000), &json!(20), &json!(1), &json!(50))
    );
    assert_eq!(page["items"].as_array().unwrap().len(), 50);
    assert!(!page.to_string().contains("sk-"), "no credential in the listing");
    let last = data(app, "GET", "/accounts/search?platform=openai&page=8", Value::Null).await;
    assert_eq!((&last["total"], &last["pages"]), (&json!(400), &json!(8)));
    assert_eq!(names(&last).first().map(String::as_str), Some("gpt-351"));
    assert_eq!(names(&last).last().map(String::as_str), Some("gpt-400"));
    let beyond = data(app, "GET", "/accounts/search?platform=openai&page=9", Value::Null).await;
    assert_eq!(beyond["items"], json!([]));

    let in_group = data(app, "GET", &format!("/accounts/search?group_id={claude}&page_size=500"), Value::Null).await;
    assert_eq!((in_group["total"].as_i64(), in_group["items"].as_array().unwrap().len()), (Some(600), 500));
    let by_kind = data(app, "GET", "/accounts/search?type=oauth", Value::Null).await;
    assert_eq!(by_kind["total"], 0);

    let target = app.db.store.list_accounts().await.unwrap().into_iter().find(|a| a.name == "gpt-7").unwrap();
    let update = json!({"notes": "Shared with the Data Team"});
    data(app, "PUT", &format!("/accounts/{}", target.id), update).await;
    for q in ["data team", "GPT-7", &target.id.to_string()] {
        let found = data(app, "GET", &format!("/accounts/search?q={}", q.replace(' ', "+")), Value::Null).await;
        assert!(names(&found).contains(&"gpt-7".to_owned()), "q={q}: {found}");
    }
    let found = data(app, "GET", "/accounts/search?q=data+team", Value::Null).await;
    assert_eq!(found["total"], 1);

    let until = time::OffsetDateTime::now_utc() + time::Duration::minutes(5);
    app.db.store.set_account_cooldowns(target.id, Some(until), None).await.unwrap();
    let past = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    let other = app.db.store.list_accounts().await.unwrap().into_iter().find(|a| a.name == "gpt-8").unwrap();
    app.db.store.set_account_cooldowns(other.id, Some(past), None).await.unwrap();
    let limited = data(app, "GET", "/accounts/search?status=rate_limited", Value::Null).await;
    assert_eq!(names(&limited), ["gpt-7"], "a cooldown that has passed no longer counts");
    assert_eq!(limited["items"][0]["state"], "rate_limited");
    assert_eq!(limited["items"][0]["status"], "active");

    let (status, res) = rest(app, "GET", "/accounts/search?colour=red", Value::Null).await;
    assert_eq!(status, 400, "{res}");
    let (status, _) = rest(app, "GET", "/accounts/search?platform=azure", Value::Null).await;
    assert_eq!(status, 400);
});

on_both_databases!(accounts_page_renders_filtered_rows_and_server_functions_answer, |app| {
    let body = json!({"platform": "anthropic", "name_prefix": "claude", "api_keys": ["k1", "k2"]});
    let ids = data(app, "POST", "/accounts/bulk-import", body).await["account_ids"].clone();
    let (broken, limited) = (ids[0].as_i64().unwrap(), ids[1].as_i64().unwrap());
    let body = json!({"platform": "openai", "name_prefix": "gpt", "api_keys": ["k3"]});
    let paused = data(app, "POST", "/accounts/bulk-import", body).await["account_ids"][0].as_i64().unwrap();
    app.db.store.set_account_status(broken, "error", "401: invalid x-api-key").await.unwrap();
    let until = time::OffsetDateTime::now_utc() + time::Duration::minutes(5);
    app.db.store.set_account_cooldowns(limited, Some(until), None).await.unwrap();
    app.db.store.set_account_schedulable(paused, false).await.unwrap();

    app.login_admin().await;
    let res = app.client.get(app.url("/accounts")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    for id in [broken, limited, paused] {
        assert!(html.contains(&format!("data-testid=\"account-row-{id}\"")), "row {id} rendered on the server: {html}");
    }
    let badge = |id: i64| {
        let after = html.split(&format!("data-testid=\"account-status-{id}\"")).nth(1).unwrap();
        after.split("</span>").next().unwrap().to_owned()
    };
    assert!(
        badge(broken).contains("title=\"401: invalid x-api-key\"") && badge(broken).ends_with(">error"),
        "{}",
        badge(broken)
    );
    assert!(badge(limited).ends_with(">rate limited"), "{}", badge(limited));
    assert!(badge(paused).ends_with(">active"), "{}", badge(paused));
    assert!(html.contains(&format!("data-testid=\"account-error-{broken}\"")), "the error is visible text");
    assert!(html.contains(&format!("data-testid=\"account-until-{limited}\"")), "until when");
    assert!(html.contains(&format!("data-testid=\"account-unschedulable-{paused}\"")));
    assert!(html.contains(&format!("data-testid=\"clear-error-{broken}\"")));
    assert!(html.contains("Page 1 of 1 · 3 account(s)"), "{html}");
    let next = html.split("data-testid=\"page-next\"").nth(1).unwrap().split("</button>").next().unwrap();
    assert!(next.contains("disabled") && next.ends_with(">Next"), "one page only: {next}");

    let html = app.client.get(app.url("/accounts?platform=openai")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(&format!("data-testid=\"account-row-{paused}\"")), "{html}");
    assert!(!html.contains(&format!("data-testid=\"account-row-{broken}\"")), "filtered out: {html}");
    let html = app.client.get(app.url("/accounts?q=nothing-like-this")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("No accounts match these filters."), "{html}");

    // The hydrated page's reads (GET, nested query) and writes (JSON bodies).
    let (status, page) = call::<app::api::accounts::QueryAccounts>(
        app,
        None,
        &[("query[platform]", "anthropic"), ("query[status]", "error")],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(names(&page), ["claude-1"]);
    let import = json!({"input": {"platform": "gemini", "name_prefix": "gem", "api_keys": ["g1", "g1"]}});
    let (status, result) = call::<app::api::accounts::BulkImportAccounts>(app, Some(import), &[]).await;
    assert_eq!(status, 200, "{result}");
    assert_eq!((&result["created"], &result["errors"][0]["line"]), (&json!(1), &json!(2)));
    let disable = json!({"input": {"ids": [broken, limited], "status": "disabled"}});
    let (status, result) = call::<app::api::accounts::SetAccountsStatus>(app, Some(disable), &[]).await;
    assert_eq!((status, &result["updated"]), (200, &json!(2)));
    let create = json!({"input": {"name": "solo", "platform": "openai", "credentials": {"api_key": ""}}});
    let (_, error) = call::<app::api::accounts::CreateAccount>(app, Some(create), &[]).await;
    assert_eq!(error, json!({"Invalid": "credentials.api_key: must be a non-empty key without spaces"}));
});
