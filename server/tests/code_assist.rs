//! Google (Code Assist) subscription accounts over real HTTP against the fake upstream
//! playing Google's sign-in and Code Assist: the sign-in with project discovery, the Gemini
//! routes relayed inside Code Assist's `{model, project, request}` envelope and unwrapped on
//! the way back (whole, SSE, JSON-array streams, token counting), usage from the unwrapped
//! `usageMetadata`, and Google sign-in refused until a client secret is configured.
//! SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code fails loudly on purpose")]

mod support;

use proxy::testing::CODE_ASSIST_PROJECT;
use proxy::testing::oauth_identity::EMAIL;
use serde_json::{Value, json};
use server::config::Config;
use support::TestApp;
use support::subscription::{admin, admin_err, query_of, sign_in_on};

const MODEL: &str = "gemini-2.5-pro";

fn hello() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
}

async fn post(app: &TestApp, key: &str, action: &str, query: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1beta/models/{MODEL}:{action}{query}")))
        .header("x-goog-api-key", key)
        .json(&hello())
        .send()
        .await
        .unwrap()
}

subscription_scenario!(google_accounts_sign_in_and_serve_gemini_through_code_assist, |_| {}, |app, fake| {
    let (id, key, q) = sign_in_on(app, "gemini", "oauth").await;
    assert_eq!(
        (q["access_type"].as_str(), q["prompt"].as_str()),
        ("offline", "consent"),
        "a refresh token is asked for"
    );
    assert!(q["scope"].contains("cloud-platform"), "{q:?}");
    let grant = fake.token_requests().pop().unwrap();
    assert_eq!(grant.field("client_secret"), Some("fake-client-secret"));
    let view = admin(app, "GET", &format!("/accounts/{id}"), Value::Null).await;
    assert_eq!((view["platform"].as_str(), view["type"].as_str()), (Some("gemini"), Some("oauth")));
    assert_eq!(
        (view["oauth"]["project_id"].as_str(), view["oauth"]["email"].as_str()),
        (Some(CODE_ASSIST_PROJECT), Some(EMAIL))
    );
    let discovery = fake.last_request().unwrap();
    assert_eq!(
        (discovery.path.as_str(), discovery.credential.as_deref()),
        ("/v1internal:loadCodeAssist", Some("fake-at-1"))
    );

    // Whole: in the envelope upstream, out of it for the client.
    let res = post(app, &key, "generateContent", "").await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["candidates"][0]["content"]["parts"][0]["text"].is_string() && body.get("response").is_none(),
        "{body}"
    );
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.path, "/v1internal:generateContent");
    assert_eq!(sent.headers["authorization"], "Bearer fake-at-1");
    assert!(sent.headers.get("x-goog-api-key").is_none(), "the caller's key stays here");
    let envelope = sent.json.unwrap();
    assert_eq!((envelope["model"].as_str(), envelope["project"].as_str()), (Some(MODEL), Some(CODE_ASSIST_PROJECT)));
    assert_eq!(envelope["request"], hello());

    // SSE: every chunk unwrapped as it comes.
    let res = post(app, &key, "streamGenerateContent", "?alt=sse").await;
    assert_eq!(res.status(), 200);
    assert_eq!(fake.last_request().unwrap().query.as_deref(), Some("alt=sse"));
    let text = res.text().await.unwrap();
    let chunks: Vec<Value> =
        text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(
        chunks.len() > 1 && chunks.iter().all(|c| c.get("candidates").is_some() && c.get("response").is_none()),
        "{text}"
    );

    // A JSON-array stream, unwrapped element by element.
    let res = post(app, &key, "streamGenerateContent", "").await;
    let array: Value = res.json().await.unwrap();
    assert!(array.as_array().unwrap().iter().all(|c| c.get("candidates").is_some()), "{array}");

    // Token counting: `{request: {model: "models/…", …}}`, answered as is, no usage row.
    let res = post(app, &key, "countTokens", "").await;
    assert_eq!(res.status(), 200);
    assert!(res.json::<Value>().await.unwrap()["totalTokens"].as_u64().is_some());
    let counted = fake.last_request().unwrap().json.unwrap();
    assert_eq!(counted["request"]["model"], format!("models/{MODEL}"));

    let rows = support::usage_rows(&app.db.store, 3).await;
    assert_eq!(rows.len(), 3, "generate, SSE and array streams are billed; counting is not");
    assert!(
        rows.iter()
            .all(|r| r.status_code == 200 && r.input_tokens > 0 && r.output_tokens > 0 && r.account_id == Some(id))
    );

    // The account test speaks Code Assist too.
    let tested = admin(app, "POST", &format!("/accounts/{id}/test"), json!({})).await;
    assert_eq!(tested["success"], true, "{tested}");
    assert!(!tested["text"].as_str().unwrap().is_empty(), "{tested}");
    assert_eq!(fake.last_request().unwrap().path, "/v1internal:streamGenerateContent");

    // A refresh is Google's form grant with the client secret, and keeps the project.
    let refreshed = admin(app, "POST", &format!("/accounts/{id}/refresh"), Value::Null).await;
    assert_eq!(refreshed["oauth"]["project_id"], CODE_ASSIST_PROJECT);
    let grant = fake.token_requests().pop().unwrap();
    assert_eq!(
        (grant.field("grant_type"), grant.field("client_secret")),
        (Some("refresh_token"), Some("fake-client-secret"))
    );
    assert_eq!(post(app, &key, "generateContent", "").await.status(), 200);
    let sent = fake.last_request().unwrap();
    assert_eq!(sent.headers["authorization"], "Bearer fake-at-2");
    assert_eq!(sent.json.unwrap()["project"], CODE_ASSIST_PROJECT);

    // A named project is used as given.
    let group = admin(app, "POST", "/groups", json!({"name": "g2", "platform": "gemini"})).await["id"].clone();
    let started = admin(app, "POST", "/accounts/generate-auth-url", json!({"platform": "gemini"})).await;
    let state = query_of(started["auth_url"].as_str().unwrap())["state"].clone();
    let loads = fake.requests().iter().filter(|r| r.path.ends_with(":loadCodeAssist")).count();
    let body = json!({"session_id": started["session_id"], "code": format!("c#{state}"), "name": "g2",
        "group_ids": [group], "project_id": "my-own-project"});
    let view = admin(app, "POST", "/accounts/exchange-code", body).await;
    assert_eq!(view["oauth"]["project_id"], "my-own-project");
    assert_eq!(fake.requests().iter().filter(|r| r.path.ends_with(":loadCodeAssist")).count(), loads, "no discovery");
});

subscription_scenario!(
    google_sign_in_needs_a_client_secret,
    |c: &mut Config| c.oauth.gemini.client_secret.clear(),
    |app, fake| {
        let (status, message) =
            admin_err(app, reqwest::Method::POST, "/accounts/generate-auth-url", json!({"platform": "gemini"})).await;
        assert_eq!(status, 400);
        assert!(message.contains("oauth.gemini.client_secret"), "{message}");
        assert!(fake.token_requests().is_empty());
    }
);
