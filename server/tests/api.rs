//! The server over real HTTP: ops endpoints, sign-in, the page guard, the admin REST API.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

mod support;

use serde_json::Value;
use support::{ADMIN_API_KEY, ADMIN_EMAIL, ADMIN_PASSWORD, TestApp};

on_both_databases!(health_ready_and_metrics, |app| {
    let health: Value = app.client.get(app.url("/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, serde_json::json!({"status": "ok"}));

    let ready = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["database"], "ok");
    assert_eq!(ready["redis"], "disabled");

    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    assert!(text.contains(r#"sub2api_http_requests_total{method="GET",route="/health",status="200"} 1"#), "{text}");
    assert!(text.contains("sub2api_http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains("sub2api_db_pool_max_connections"), "{text}");
});

on_both_databases!(head_probes_answer_at_once, |app| {
    for path in ["/", "/v1"] {
        let res = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "HEAD {path}");
    }
    let res = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 303, "GET / is still the signed-in dashboard");
});

on_both_databases!(every_response_has_a_request_id, |app| {
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    let id = res.headers().get("x-request-id").expect("request id").to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let res = app.client.get(app.url("/health")).header("x-request-id", "caller-chosen").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "caller-chosen");
});

on_both_databases!(pages_need_sign_in_and_render_on_the_server, |app| {
    let res = app.client.get(app.url("/usage?page=2")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login?next=/usage%3Fpage%3D2");

    let login_page = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(login_page.status(), 200);
    let html = login_page.text().await.unwrap();
    assert!(html.contains("<form") && html.contains("name=\"password\""), "SSR sign-in form: {html}");
    assert!(html.contains("/pkg/sub2api.js"), "hydration script is referenced");

    let res = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(res.headers()["location"], "/settings", "goes where it was asked to");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("sub2api_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP without secure_cookies: {cookie}");

    let dashboard = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(dashboard.status(), 200);
    let html = dashboard.text().await.unwrap();
    assert!(html.contains("Dashboard"), "{html}");
    assert!(html.contains(ADMIN_EMAIL), "who is signed in is rendered: {html}");
    for page in ["/accounts", "/groups", "/keys", "/users", "/models", "/proxies", "/usage", "/settings"] {
        let res = app.client.get(app.url(page)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{page}");
    }
    let res = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(res.headers()["location"], "/", "signed-in admins skip the sign-in page");

    let res = app.client.get(app.url("/no-such-page")).send().await.unwrap();
    assert_eq!(res.status(), 404);
});

on_both_databases!(dashboard_counts_come_from_the_database, |app| {
    app.login_admin().await;
    let html = app.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"data-testid="stat-users""#), "{html}");
    let users_card = html.split(r#"data-testid="stat-users""#).nth(1).unwrap();
    assert!(users_card.contains(r#"<span class="stat-value">1</span>"#), "one admin: {users_card}");
});

on_both_databases!(wrong_passwords_are_refused_then_throttled, |app| {
    for _ in 0..5 {
        let res = app.login(ADMIN_EMAIL, "wrong-password").await;
        assert_eq!(res.status(), 401);
        assert!(res.text().await.unwrap().contains("BadCredentials"));
    }
    let res = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(res.status(), 429, "locked even with the right password");
    assert!(res.text().await.unwrap().contains("TooManyAttempts"));
    let res = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 303, "no session was created");
});

on_both_databases!(admin_api_key_and_session_both_authenticate, |app| {
    let url = app.url("/api/v1/admin/dashboard/stats");
    let res = app.client.get(&url).header("x-api-key", ADMIN_API_KEY).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], 0);
    assert_eq!(body["message"], "success");
    assert_eq!(body["data"]["total_users"], 1);
    assert_eq!(body["data"]["accounts"]["total"], 0);

    let res = app.client.get(&url).header("x-api-key", "admin-wrong").send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"code": 401, "message": "invalid API key"}));

    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], 401);

    app.login_admin().await;
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 200, "the session cookie works too");

    let res = app.client.get(app.url("/api/v1/admin/nope")).header("x-api-key", ADMIN_API_KEY).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], 404);
});

on_both_databases!(cross_origin_state_changes_are_refused, |app| {
    use leptos::server_fn::ServerFn;
    let res = app
        .client
        .post(app.url(app::api::Login::PATH))
        .header("origin", "https://evil.example")
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("set-cookie").is_none());
});

on_both_databases!(password_reset_ends_existing_sessions, |app| {
    app.login_admin().await;
    assert_eq!(app.client.get(app.url("/")).send().await.unwrap().status(), 200);
    server::bootstrap::reset_password(&app.db.store, ADMIN_EMAIL, Some("another-password".into()), false)
        .await
        .unwrap();
    assert_eq!(app.client.get(app.url("/")).send().await.unwrap().status(), 303);
    let res = app.login(ADMIN_EMAIL, "another-password").await;
    assert!(res.status().is_redirection());
});

on_both_databases!(logout_ends_the_session, |app| {
    use leptos::server_fn::ServerFn;
    app.login_admin().await;
    let res = app
        .client
        .post(app.url(app::api::Logout::PATH))
        .header("origin", format!("http://{}", app.addr))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    assert_eq!(app.client.get(app.url("/")).send().await.unwrap().status(), 303);
});

#[tokio::test]
async fn secure_cookie_behind_tls_proxy() {
    let app = TestApp::spawn(store::testing::TestDb::sqlite().await).await;
    use leptos::server_fn::ServerFn;
    let res = app
        .client
        .post(app.url(app::api::Login::PATH))
        .header("x-forwarded-proto", "https")
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    app.shutdown().await;
}

#[tokio::test]
async fn readiness_reports_redis() {
    // A configured Redis that cannot be reached stops startup (quickly, naming it) rather
    // than running instances that silently do not share their limits.
    let db = store::testing::TestDb::sqlite().await;
    let mut config = support::test_config(&db);
    config.redis.url = "redis://127.0.0.1:1".into();
    let started = std::time::Instant::now();
    let Err(error) = server::startup::Application::build(&config, &support::default_env()).await else {
        panic!("startup must fail without its Redis");
    };
    assert!(format!("{error:#}").contains("Redis"), "{error:#}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "failed fast: {:?}", started.elapsed());

    let Some(redis_url) = std::env::var("TEST_REDIS_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("TEST_REDIS_URL not set: live Redis readiness not checked");
        return;
    };
    let db = store::testing::TestDb::sqlite().await;
    let mut config = support::test_config(&db);
    config.redis.url = redis_url;
    let app = TestApp::spawn_with(db, config, support::default_env()).await;
    let res = app.client.get(app.url("/ready")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["redis"], "ok");
    app.shutdown().await;
}

#[tokio::test]
async fn generated_bootstrap_password_is_reported_once() {
    let db = store::testing::TestDb::sqlite().await;
    let outcome = server::bootstrap::ensure_admin(&db.store, &Default::default()).await.unwrap();
    let server::bootstrap::AdminBootstrap::Created { email, generated_password: Some(password) } = outcome else {
        panic!("expected a generated password, got {outcome:?}");
    };
    assert_eq!(email, "admin@localhost");
    assert!(password.len() >= 16);
    let user = db.store.find_user_by_email("admin@localhost").await.unwrap().unwrap();
    assert!(store::secret::verify_password(&password, &user.password_hash));
    assert!(user.password_hash.starts_with("$argon2id$"));
    let again = server::bootstrap::ensure_admin(&db.store, &Default::default()).await.unwrap();
    assert_eq!(again, server::bootstrap::AdminBootstrap::Existing);
}

on_both_databases!(groups_rest_crud_with_validation, |app| {
    let url = app.url("/api/v1/admin/groups");
    let post = |body: Value| app.client.post(&url).header("x-api-key", ADMIN_API_KEY).json(&body).send();
    let res =
        post(serde_json::json!({"name": "claude-pro", "platform": "anthropic", "rate_multiplier": 1.5})).await.unwrap();
    assert_eq!(res.status(), 200);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["code"], 0);
    let id = created["data"]["id"].as_i64().unwrap();
    assert_eq!(created["data"]["platform"], "anthropic");
    assert_eq!(created["data"]["rate_multiplier"], 1.5);

    let res = post(serde_json::json!({"name": "claude-pro", "platform": "openai"})).await.unwrap();
    assert_eq!(res.status(), 400, "duplicate name");
    assert!(res.json::<Value>().await.unwrap()["message"].as_str().unwrap().starts_with("name:"));
    let res = post(serde_json::json!({"name": "x"})).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["message"], "platform: is required");
    let res = post(serde_json::json!({"name": "x", "platform": "azure"})).await.unwrap();
    assert_eq!(res.status(), 400, "unknown platform");
    let body = res.json::<Value>().await.unwrap();
    assert_eq!(body["code"], 400);
    assert!(body["message"].as_str().unwrap().contains("platform"), "{body}");
    let res = app
        .client
        .post(&url)
        .header("x-api-key", ADMIN_API_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "malformed JSON");
    assert_eq!(res.json::<Value>().await.unwrap()["code"], 400);

    let one = app.url(&format!("/api/v1/admin/groups/{id}"));
    let res = app
        .client
        .put(&one)
        .header("x-api-key", ADMIN_API_KEY)
        .json(&serde_json::json!({"rate_multiplier": 2.0}))
        .send()
        .await
        .unwrap();
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["data"]["rate_multiplier"], 2.0);
    assert_eq!(updated["data"]["name"], "claude-pro", "fields not sent are kept");

    let list: Value =
        app.client.get(&url).header("x-api-key", ADMIN_API_KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    let res = app.client.delete(&one).header("x-api-key", ADMIN_API_KEY).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app.client.get(&one).header("x-api-key", ADMIN_API_KEY).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.json::<Value>().await.unwrap(), serde_json::json!({"code": 404, "message": "group not found"}));
    let res = app.client.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401, "groups need admin auth");
});

on_both_databases!(accounts_rest_never_returns_the_credential, |app| {
    let key = |req: reqwest::RequestBuilder| req.header("x-api-key", ADMIN_API_KEY);
    let group: Value = key(app.client.post(app.url("/api/v1/admin/groups")))
        .json(&serde_json::json!({"name": "claude", "platform": "anthropic"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gid = group["data"]["id"].as_i64().unwrap();
    let body = serde_json::json!({
        "name": "primary", "platform": "anthropic", "type": "apikey",
        "credentials": {"api_key": "sk-ant-very-secret", "base_url": "http://127.0.0.1:9/"},
        "model_mapping": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"},
        "group_ids": [gid], "concurrency": 1
    });
    let res = key(app.client.post(app.url("/api/v1/admin/accounts"))).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(!text.contains("sk-ant-very-secret"), "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    let id = created["data"]["id"].as_i64().unwrap();
    assert_eq!(created["data"]["base_url"], "http://127.0.0.1:9");
    assert_eq!(created["data"]["group_ids"], serde_json::json!([gid]));
    assert_eq!(created["data"]["status"], "active");
    assert_eq!(created["data"]["type"], "apikey");

    let row = app.db.store.find_account(id).await.unwrap().unwrap();
    assert!(!row.credentials_encrypted.contains("sk-ant"), "encrypted at rest");
    let secrets = store::cipher::SecretBox::from_key_text(&"ab".repeat(32)).unwrap();
    assert_eq!(app::service::accounts::open_api_key(&secrets, &row).unwrap(), "sk-ant-very-secret");

    let wrong_group =
        serde_json::json!({"name": "x", "platform": "openai", "credentials": {"api_key": "k"}, "group_ids": [gid]});
    let res = key(app.client.post(app.url("/api/v1/admin/accounts"))).json(&wrong_group).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.json::<Value>().await.unwrap()["message"].as_str().unwrap().starts_with("group_ids:"));
    let res = key(app.client.post(app.url("/api/v1/admin/accounts")))
        .json(&serde_json::json!({"name": "x", "platform": "anthropic"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["message"], "credentials.api_key: is required");

    let one = app.url(&format!("/api/v1/admin/accounts/{id}"));
    let updated: Value =
        key(app.client.put(&one)).json(&serde_json::json!({"priority": 5})).send().await.unwrap().json().await.unwrap();
    assert_eq!(updated["data"]["priority"], 5);
    assert_eq!(updated["data"]["group_ids"], serde_json::json!([gid]), "memberships kept when not sent");

    app.db.store.set_account_status(id, "error", "401: invalid x-api-key").await.unwrap();
    let until = time::OffsetDateTime::now_utc() + time::Duration::seconds(90);
    app.db.store.set_account_cooldowns(id, Some(until), None).await.unwrap();
    let got: Value = key(app.client.get(&one)).send().await.unwrap().json().await.unwrap();
    assert_eq!(got["data"]["status"], "error");
    assert!(got["data"]["rate_limit_reset_at"].is_string());
    let cleared: Value = key(app.client.post(format!("{one}/clear-error"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (cleared["data"]["status"].as_str(), cleared["data"]["error_message"].as_str()),
        (Some("active"), Some(""))
    );
    let cleared: Value =
        key(app.client.post(format!("{one}/clear-rate-limit"))).send().await.unwrap().json().await.unwrap();
    assert!(cleared["data"]["rate_limit_reset_at"].is_null());
    let paused: Value = key(app.client.post(format!("{one}/schedulable")))
        .json(&serde_json::json!({"schedulable": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(paused["data"]["schedulable"], false);

    let list: Value =
        key(app.client.get(app.url("/api/v1/admin/accounts"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("sk-ant"));
    assert_eq!(key(app.client.delete(&one)).send().await.unwrap().status(), 200);
    assert_eq!(key(app.client.get(&one)).send().await.unwrap().status(), 404);
});

on_both_databases!(users_and_api_keys_rest, |app| {
    let key = |req: reqwest::RequestBuilder| req.header("x-api-key", ADMIN_API_KEY);
    let res = key(app.client.post(app.url("/api/v1/admin/users")))
        .json(&serde_json::json!({"email": "Dev@Example.com", "password": "dev-password-1", "concurrency": 2}))
        .send()
        .await
        .unwrap();
    let user: Value = res.json().await.unwrap();
    assert_eq!(user["data"]["email"], "dev@example.com");
    assert_eq!(user["data"]["role"], "user");
    assert!(!user.to_string().contains("dev-password-1") && !user.to_string().contains("argon2"));
    let uid = user["data"]["id"].as_i64().unwrap();
    let res = key(app.client.post(app.url("/api/v1/admin/users")))
        .json(&serde_json::json!({"email": "dev@example.com", "password": "dev-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.json::<Value>().await.unwrap()["message"].as_str().unwrap().starts_with("email:"));

    let created: Value = key(app.client.post(app.url(&format!("/api/v1/admin/users/{uid}/api-keys"))))
        .json(&serde_json::json!({"name": "laptop", "expires_at": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let full = created["data"]["key"].as_str().unwrap().to_owned();
    assert!(full.starts_with("sk-") && full.len() == 67, "{full}");
    assert_eq!(created["data"]["key_prefix"], &full[..10]);
    let kid = created["data"]["id"].as_i64().unwrap();
    let row = app.db.store.find_api_key(kid).await.unwrap().unwrap();
    assert_eq!(row.key_hash, store::secret::sha256_hex(&full), "stored as SHA-256 only");

    let listed: Value = key(app.client.get(app.url(&format!("/api/v1/admin/users/{uid}/api-keys"))))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&full), "the full key is shown only once");

    let res = key(app.client.put(app.url(&format!("/api/v1/admin/api-keys/{kid}"))))
        .json(&serde_json::json!({"group_id": 4242}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "unknown group");
    let res = key(app.client.put(app.url(&format!("/api/v1/admin/api-keys/{kid}"))))
        .json(&serde_json::json!({"expires_at": "tomorrow"}))
        .send()
        .await
        .unwrap();
    assert!(res.json::<Value>().await.unwrap()["message"].as_str().unwrap().starts_with("expires_at:"));
    let disabled: Value = key(app.client.put(app.url(&format!("/api/v1/admin/api-keys/{kid}"))))
        .json(&serde_json::json!({"status": "disabled"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disabled["data"]["status"], "disabled");
    assert_eq!(disabled["data"]["name"], "laptop");

    let admin_id = app.db.store.find_user_by_email(support::ADMIN_EMAIL).await.unwrap().unwrap().id;
    let res = key(app.client.delete(app.url(&format!("/api/v1/admin/users/{admin_id}")))).send().await.unwrap();
    assert_eq!(res.status(), 400, "the last admin stays");
    let res = key(app.client.put(app.url(&format!("/api/v1/admin/users/{admin_id}"))))
        .json(&serde_json::json!({"role": "user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "the last admin cannot be demoted");

    assert_eq!(
        key(app.client.delete(app.url(&format!("/api/v1/admin/users/{uid}")))).send().await.unwrap().status(),
        200
    );
    assert_eq!(key(app.client.get(app.url(&format!("/api/v1/admin/users/{uid}")))).send().await.unwrap().status(), 404);
    assert!(app.db.store.find_api_key(kid).await.unwrap().is_none());
});

on_both_databases!(accounts_refuse_unknown_proxies, |app| {
    let body =
        serde_json::json!({"name": "p", "platform": "anthropic", "credentials": {"api_key": "k"}, "proxy_id": 77});
    let res = app
        .client
        .post(app.url("/api/v1/admin/accounts"))
        .header("x-api-key", ADMIN_API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["message"], "proxy_id: proxy 77 does not exist");
    let body =
        serde_json::json!({"name": "p", "platform": "anthropic", "credentials": {"api_key": "k"}, "proxy_id": null});
    let res = app
        .client
        .post(app.url("/api/v1/admin/accounts"))
        .header("x-api-key", ADMIN_API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
});

#[tokio::test]
async fn reset_password_can_restore_an_administrator() {
    let db = store::testing::TestDb::sqlite().await;
    let user = store::repo::NewUser {
        email: "ops@example.com".into(),
        password_hash: "x".into(),
        role: domain::UserRole::User,
        status: domain::UserStatus::Disabled,
        concurrency: 5,
    };
    db.store.create_user(&user).await.unwrap();
    let env = [("SUB2API_ADMIN_EMAIL".to_owned(), "ops@example.com".to_owned())].into_iter().collect();
    let err = server::bootstrap::ensure_admin(&db.store, &env).await.err().unwrap().to_string();
    assert!(err.contains("--make-admin"), "{err}");
    let password = server::bootstrap::reset_password(&db.store, "ops@example.com", None, true).await.unwrap();
    let row = db.store.find_user_by_email("ops@example.com").await.unwrap().unwrap();
    assert!(row.is_active_admin());
    assert!(store::secret::verify_password(&password, &row.password_hash));
    assert_eq!(
        server::bootstrap::ensure_admin(&db.store, &env).await.unwrap(),
        server::bootstrap::AdminBootstrap::Existing
    );
}

on_both_databases!(usage_rest_pages_filters_and_totals, |app| {
    let t0 = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let rows: Vec<store::NewUsage> = (0..3)
        .map(|i| store::NewUsage {
            request_id: format!("req-{i}"),
            user_id: Some(7),
            api_key_id: Some(70 + i),
            account_id: Some(1),
            group_id: None,
            requested_model: "claude-sonnet-4-5".into(),
            upstream_model: "claude-sonnet-4-5-20250929".into(),
            input_tokens: 10,
            output_tokens: 5,
            cache_creation_tokens: 0,
            cache_creation_5m_tokens: 0,
            cache_creation_1h_tokens: 0,
            cache_read_tokens: 0,
            input_cost: 0.00003,
            output_cost: 0.000075,
            cache_creation_cost: 0.0,
            cache_read_cost: 0.0,
            total_cost: 0.000105,
            actual_cost: 0.000105,
            rate_multiplier: 1.0,
            stream: i % 2 == 0,
            status_code: 200,
            error_message: String::new(),
            duration_ms: 100,
            first_token_ms: Some(20),
            user_agent: String::new(),
            created_at: t0 + time::Duration::minutes(i),
        })
        .collect();
    app.db.store.insert_usage(&rows).await.unwrap();
    let get =
        |q: &str| app.client.get(app.url(&format!("/api/v1/admin/usage{q}"))).header("x-api-key", ADMIN_API_KEY).send();
    let page: Value = get("?page=2&page_size=2").await.unwrap().json().await.unwrap();
    assert_eq!(page["data"]["total"], 3);
    assert_eq!(page["data"]["pages"], 2);
    assert_eq!(page["data"]["items"][0]["request_id"], "req-0", "newest first, second page");
    let one: Value = get("?api_key_id=71").await.unwrap().json().await.unwrap();
    assert_eq!(one["data"]["items"].as_array().unwrap().len(), 1);
    let stats: Value = get("/stats?user_id=7&model=claude-sonnet-4-5").await.unwrap().json().await.unwrap();
    assert_eq!((stats["data"]["requests"].as_i64(), stats["data"]["output_tokens"].as_i64()), (Some(3), Some(15)));
    let res = get("?start=yesterday").await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.json::<Value>().await.unwrap()["message"].as_str().unwrap().starts_with("start:"));
    assert_eq!(get("?page_size=100000").await.unwrap().status(), 400);
    assert_eq!(get("?bogus=1").await.unwrap().status(), 400, "unknown filters are refused");
});
