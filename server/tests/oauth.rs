//! Claude subscription accounts over real HTTP, against the fake upstream playing both the
//! OAuth provider (token endpoint) and the Messages API: the sign-in flow through the admin
//! REST API, Claude Code identity shaping on the wire, a 401 recovered by one refresh, a
//! refused refresh (`invalid_grant`) putting the account in error, and the background
//! refresh ahead of expiry. Every test runs on SQLite and, when `TEST_DATABASE_URL` is set,
//! on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

mod support;

use std::time::Duration;

use proxy::testing::oauth_identity::{ACCOUNT_UUID, BAD_CODE, EMAIL};
use proxy::testing::{RecordedRequest, Script};
use serde_json::{Value, json};
use server::config::Config;
use support::TestApp;
use support::subscription::{admin, admin_err, query_of, sign_in};

const SYSTEM_PROMPT: &str = "You are Claude Code, Anthropic's official CLI for Claude.";

/// A Messages request as the Python SDK sends it.
async fn sdk_request(app: &TestApp, key: &str, text: &str) -> reqwest::Response {
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "system": "Be terse.",
        "messages": [{"role": "user", "content": text}], "metadata": {"user_id": "client-user-7"}});
    app.client
        .post(app.url("/v1/messages"))
        .header("authorization", format!("Bearer {key}"))
        .header("anthropic-version", "2023-06-01")
        .header("user-agent", "Anthropic/Python 2.14.0")
        .header("x-stainless-lang", "python")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn header<'a>(req: &'a RecordedRequest, name: &str) -> &'a str {
    req.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

subscription_scenario!(sign_in_stores_sealed_tokens_and_shapes_requests, |_| {}, |app, fake| {
    let (id, key, q) = sign_in(app, "oauth").await;
    assert_eq!((q["code_challenge_method"].as_str(), q["response_type"].as_str()), ("S256", "code"));
    assert!(q["scope"].contains("user:inference") && q["scope"].contains("user:profile"), "{q:?}");

    // The exchange carried the code, the state and the verifier of the challenge.
    let grants = fake.token_requests();
    assert_eq!(grants.len(), 1);
    let g = &grants[0];
    assert_eq!((g.field("grant_type"), g.field("code")), (Some("authorization_code"), Some("the-code")));
    assert_eq!(g.field("state"), Some(q["state"].as_str()));
    assert_eq!(proxy::oauth::challenge(g.field("code_verifier").unwrap()), q["code_challenge"], "PKCE S256");

    let view = admin(app, "GET", &format!("/accounts/{id}"), Value::Null).await;
    assert_eq!((view["type"].as_str(), view["status"].as_str()), (Some("oauth"), Some("active")));
    assert_eq!(
        (view["oauth"]["email"].as_str(), view["oauth"]["account_id"].as_str()),
        (Some(EMAIL), Some(ACCOUNT_UUID))
    );
    assert!(view["oauth"]["expires_at"].is_string() && view["oauth"]["refreshable"] == true, "{view}");
    let row = app.db.store.find_account(id).await.unwrap().unwrap();
    assert!(!row.credentials_encrypted.contains("fake-at-1") && !row.extra.contains("fake-rt-1"), "tokens sealed");
    assert!(!view.to_string().contains("fake-at-"), "never returned");

    // An SDK request goes out as Claude Code would send it, on the account's token.
    for text in ["hi", "hi", "something else"] {
        let res = sdk_request(app, &key, text).await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
    let sent = fake.requests_for("fake-at-1");
    assert_eq!(sent.len(), 3);
    let first = &sent[0];
    assert_eq!((first.path.as_str(), first.query.as_deref()), ("/v1/messages", Some("beta=true")));
    assert!(first.headers.get("x-api-key").is_none());
    assert!(header(first, "anthropic-beta").split(',').any(|b| b == "oauth-2025-04-20"), "{:?}", first.headers);
    assert!(header(first, "user-agent").starts_with("claude-cli/"));
    assert_eq!(header(first, "x-stainless-lang"), "js");
    let body = first.json.clone().unwrap();
    assert_eq!(body["system"][0]["text"], SYSTEM_PROMPT);
    assert_eq!(body["system"][1]["text"], "Be terse.");
    let user_id: Value = serde_json::from_str(body["metadata"]["user_id"].as_str().unwrap()).unwrap();
    assert_eq!(user_id["account_uuid"], ACCOUNT_UUID);
    let ids: Vec<Value> = sent.iter().map(|r| r.json.clone().unwrap()["metadata"]["user_id"].clone()).collect();
    assert_eq!(ids[0], ids[1], "one conversation keeps its id");
    assert_ne!(ids[0], ids[2], "another conversation gets another");
    let agents: Vec<&str> = sent.iter().map(|r| header(r, "x-stainless-package-version")).collect();
    assert!(agents.iter().all(|a| *a == agents[0] && !a.is_empty()), "stable fingerprint: {agents:?}");

    // The account test goes out shaped like any SDK request on the account.
    let tested = admin(app, "POST", &format!("/accounts/{id}/test"), json!({})).await;
    assert_eq!(tested["success"], true, "{tested}");
    let probe = fake.last_request().unwrap();
    assert_eq!((probe.query.as_deref(), header(&probe, "authorization")), (Some("beta=true"), "Bearer fake-at-1"));
    assert_eq!(probe.json.unwrap()["system"][0]["text"], SYSTEM_PROMPT);

    // Editing the account keeps its grant.
    admin(app, "PUT", &format!("/accounts/{id}"), json!({"priority": 7})).await;
    let view = admin(app, "GET", &format!("/accounts/{id}"), Value::Null).await;
    assert_eq!((view["priority"].as_i64(), view["oauth"]["email"].as_str()), (Some(7), Some(EMAIL)));
    assert_eq!(sdk_request(app, &key, "hi").await.status(), 200);
    let (status, message) =
        admin_err(app, reqwest::Method::PUT, &format!("/accounts/{id}"), json!({"credentials": {"api_key": "sk-x"}}))
            .await;
    assert!(status == 400 && message.contains("credentials"), "{status} {message}");
});

subscription_scenario!(setup_tokens_and_bad_codes, |_| {}, |app, fake| {
    let (id, _, q) = sign_in(app, "setup-token").await;
    assert_eq!(q["scope"], "user:inference");
    let g = fake.token_requests().pop().unwrap();
    assert_eq!(g.fields["expires_in"], json!(31_536_000), "a long-lived token is asked for");
    let view = admin(app, "GET", &format!("/accounts/{id}"), Value::Null).await;
    assert_eq!(view["type"], "setup-token");

    let started = admin(app, "POST", "/accounts/generate-setup-token-url", Value::Null).await;
    let session = started["session_id"].clone();
    let state = query_of(started["auth_url"].as_str().unwrap())["state"].clone();
    let exchange = |code: String| json!({"session_id": session, "code": code, "name": "x"});
    let (status, message) =
        admin_err(app, reqwest::Method::POST, "/accounts/exchange-code", exchange(format!("c#{state}-other"))).await;
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("another sign-in"), "{message}");
    let (status, message) =
        admin_err(app, reqwest::Method::POST, "/accounts/exchange-code", exchange(format!("{BAD_CODE}#{state}"))).await;
    assert_eq!(status, 400, "{message}");
    assert!(message.contains("invalid_grant"), "{message}");
    let tampered = json!({"session_id": "v1:AAAA", "code": "c", "name": "x"});
    assert_eq!(admin_err(app, reqwest::Method::POST, "/accounts/exchange-code", tampered).await.0, 400);
    // The callback address pasted whole works too.
    let url = format!("https://console.anthropic.com/oauth/code/callback?code=c2&state={state}");
    let view = admin(app, "POST", "/accounts/exchange-code", exchange(url)).await;
    assert_eq!(view["type"], "setup-token");
});

subscription_scenario!(a_rejected_token_is_refreshed_once_and_the_request_retried, |_| {}, |app, fake| {
    let (id, key, _) = sign_in(app, "oauth").await;
    fake.push_for("fake-at-1", Script::status_code(401).error_message("OAuth token has expired"));
    let res = sdk_request(app, &key, "hi").await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!((fake.count_for("fake-at-1"), fake.count_for("fake-at-2")), (1, 1), "retried on the new token");
    let refresh = fake.token_requests().pop().unwrap();
    assert_eq!(
        (refresh.field("grant_type"), refresh.field("refresh_token")),
        (Some("refresh_token"), Some("fake-rt-1"))
    );
    let view = admin(app, "GET", &format!("/accounts/{id}"), Value::Null).await;
    assert_eq!(view["status"], "active");
    let rows = support::usage_rows(&app.db.store, 1).await;
    assert_eq!((rows[0].status_code, rows[0].account_id), (200, Some(id)));
    // The refreshed token is what later requests use.
    assert_eq!(sdk_request(app, &key, "again").await.status(), 200);
    assert_eq!(fake.count_for("fake-at-2"), 2);
});

subscription_scenario!(a_refused_refresh_puts_the_account_in_error, |_| {}, |app, fake| {
    let (id, key, _) = sign_in(app, "oauth").await;
    fake.revoke_refresh_tokens();
    fake.push_for("fake-at-1", Script::status_code(401).error_message("OAuth token revoked"));
    let res = sdk_request(app, &key, "hi").await;
    assert!(res.status().is_server_error() || res.status() == 401, "{}", res.status());
    let view = admin(app, "GET", &format!("/accounts/{id}"), Value::Null).await;
    assert_eq!(view["status"], "error");
    let reason = view["error_message"].as_str().unwrap();
    assert!(reason.contains("invalid_grant"), "{reason}");
    assert!(view["oauth"]["refresh_error"].as_str().unwrap().contains("invalid_grant"), "{view}");
    // Asking again by hand says the same, in the REST API's words.
    let (status, message) =
        admin_err(app, reqwest::Method::POST, &format!("/accounts/{id}/refresh"), Value::Null).await;
    assert_eq!(status, 400);
    assert!(message.contains("invalid_grant") && message.contains("sign in again"), "{message}");
});

subscription_scenario!(
    tokens_are_refreshed_ahead_of_expiry,
    |c: &mut Config| {
        c.oauth.refresh.enabled = true;
        c.oauth.refresh.check_interval_seconds = 1;
        c.oauth.refresh.refresh_before_expiry_seconds = 1800;
    },
    |app, fake| {
        // The first token lives 10 minutes, inside the 30-minute lead; later ones 8 hours.
        fake.push_token_lifetime(600);
        let (id, key, _) = sign_in(app, "oauth").await;
        let refreshed = fake
            .wait_until(Duration::from_secs(10), |f| {
                f.token_requests().iter().any(|r| r.field("grant_type") == Some("refresh_token"))
            })
            .await;
        assert!(refreshed, "the background job refreshed the token");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(fake.token_requests().len(), 2, "refreshed once, then no longer due");
        assert_eq!(sdk_request(app, &key, "hi").await.status(), 200);
        assert_eq!((fake.count_for("fake-at-1"), fake.count_for("fake-at-2")), (0, 1));
        let view = admin(app, "GET", &format!("/accounts/{id}"), Value::Null).await;
        let expires = time::OffsetDateTime::parse(
            view["oauth"]["expires_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(expires - time::OffsetDateTime::now_utc() > time::Duration::hours(7), "{view}");
    }
);

subscription_scenario!(an_admin_refresh_rotates_the_token, |_| {}, |app, fake| {
    let (id, key, _) = sign_in(app, "oauth").await;
    let view = admin(app, "POST", &format!("/accounts/{id}/refresh"), Value::Null).await;
    assert!(view["oauth"]["refreshed_at"].is_string());
    assert_eq!(sdk_request(app, &key, "hi").await.status(), 200);
    assert_eq!(fake.count_for("fake-at-2"), 1);
    // An API-key account has nothing to refresh.
    let plain = admin(
        app,
        "POST",
        "/accounts",
        json!({"name": "k", "platform": "anthropic", "credentials": {"api_key": "sk-1"}}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    assert_eq!(admin_err(app, reqwest::Method::POST, &format!("/accounts/{plain}/refresh"), Value::Null).await.0, 400);
});
