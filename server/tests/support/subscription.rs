//! Subscription (OAuth) accounts in tests: a server whose OAuth endpoints and upstreams are
//! the fake upstream, a scenario macro running on both databases, and the REST sign-in flow.

use std::collections::HashMap;

use proxy::testing::FakeUpstream;
use serde_json::{Value, json};
use server::config::Config;
use store::testing::TestDb;

use super::{TestApp, admin_at, default_env, test_config};

/// A server whose Claude and OpenAI sign-in, Anthropic and ChatGPT upstreams are `fake`
/// (background refresh off unless `tweak` turns it on).
pub async fn spawn(db: TestDb, fake: &FakeUpstream, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config(&db);
    config.gateway.anthropic_base_url = fake.url();
    config.oauth.claude.authorize_url = format!("{}/oauth/authorize", fake.url());
    config.oauth.claude.token_url = format!("{}/v1/oauth/token", fake.url());
    config.oauth.openai.authorize_url = format!("{}/oauth/authorize", fake.url());
    config.oauth.openai.token_url = format!("{}/oauth/token", fake.url());
    config.gateway.chatgpt_base_url = fake.url();
    config.oauth.gemini.authorize_url = format!("{}/o/oauth2/v2/auth", fake.url());
    config.oauth.gemini.token_url = format!("{}/oauth/token", fake.url());
    config.oauth.gemini.client_secret = "fake-client-secret".into();
    config.gateway.code_assist_base_url = fake.url();
    config.oauth.refresh.enabled = false;
    config.oauth.refresh.retry_backoff_seconds = 0;
    tweak(&mut config);
    TestApp::spawn_with(db, config, default_env()).await
}

/// Runs a scenario on SQLite, then on PostgreSQL when configured.
#[macro_export]
macro_rules! subscription_scenario {
    ($name:ident, $tweak:expr, |$app:ident, $fake:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn scenario(db: store::testing::TestDb) {
                let $fake = proxy::testing::FakeUpstream::start().await;
                let app = $crate::support::subscription::spawn(db, &$fake, $tweak).await;
                {
                    let $app = &app;
                    $body
                }
                app.shutdown().await;
            }

            #[tokio::test]
            async fn sqlite() {
                scenario(store::testing::TestDb::sqlite().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = store::testing::TestDb::postgres().await else {
                    eprintln!("TEST_DATABASE_URL not set: PostgreSQL variant not run");
                    return;
                };
                scenario(db).await;
            }
        }
    };
}

pub async fn admin(app: &TestApp, method: &str, path: &str, body: Value) -> Value {
    admin_at(&app.client, &app.url(""), method, path, body).await
}

/// An admin call expected to fail: its status and message.
pub async fn admin_err(app: &TestApp, method: reqwest::Method, path: &str, body: Value) -> (u16, String) {
    let res = app
        .client
        .request(method, app.url(&format!("/api/v1/admin{path}")))
        .header("x-api-key", super::ADMIN_API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    (status, body["message"].as_str().unwrap_or_default().to_owned())
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    reqwest::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

/// A group, a Claude account signed in through the REST flow (`kind`: oauth or
/// setup-token), and a gateway key. Returns (account id, key, the authorize URL's query).
pub async fn sign_in(app: &TestApp, kind: &str) -> (i64, String, HashMap<String, String>) {
    sign_in_on(app, "anthropic", kind).await
}

/// [`sign_in`] on `platform` (`anthropic` or `openai`).
pub async fn sign_in_on(app: &TestApp, platform: &str, kind: &str) -> (i64, String, HashMap<String, String>) {
    let group = admin(app, "POST", "/groups", json!({"name": format!("{platform}-{kind}"), "platform": platform}))
        .await["id"]
        .clone();
    let user = admin(
        app,
        "POST",
        "/users",
        json!({"email": format!("{platform}-{kind}@example.com"), "password": "dev-password-1"}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let key =
        admin(app, "POST", &format!("/users/{user}/api-keys"), json!({"name": "k", "group_id": group})).await["key"]
            .as_str()
            .unwrap()
            .to_owned();
    let started = admin(app, "POST", "/accounts/generate-auth-url", json!({"platform": platform, "type": kind})).await;
    let q = query_of(started["auth_url"].as_str().unwrap());
    let code = format!("the-code#{}", q["state"]);
    let body =
        json!({"session_id": started["session_id"], "code": code, "name": format!("max-{kind}"), "group_ids": [group]});
    let view = admin(app, "POST", "/accounts/exchange-code", body).await;
    (view["id"].as_i64().unwrap(), key, q)
}
