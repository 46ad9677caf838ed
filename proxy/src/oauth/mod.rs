//! OAuth for subscription accounts: the sign-in flow (PKCE authorize URL, code exchange),
//! token refresh, and what a provider's token answer means.
//!
//! A started sign-in keeps no server state: its PKCE verifier, state, platform and expiry
//! are sealed with the credential key into the `session_id` the admin hands back with the
//! code. Any instance behind a load balancer can finish it, and nothing is left behind when
//! the admin walks away.
//!
//! [`keeper`] keeps the tokens fresh (ahead of expiry, and after an upstream 401).

pub mod keeper;

use base64::Engine;
use domain::account::OAuthInfo;
use domain::{AccountKind, Platform};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use store::cipher::SecretBox;
use store::credentials::OAuthTokens;
use time::OffsetDateTime;

/// One provider's OAuth endpoints and client. Everything is configurable so a private
/// deployment (or a test) can point at its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub authorize_url: String,
    pub token_url: String,
    pub client_id: String,
    pub redirect_uri: String,
    /// Space-separated scopes of a normal sign-in.
    pub scope: String,
}

/// How tokens are kept fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshConfig {
    pub enabled: bool,
    /// How often the background job looks for tokens about to expire.
    pub check_interval: std::time::Duration,
    /// Tokens expiring within this are refreshed.
    pub before_expiry: std::time::Duration,
    /// Attempts after the first when the provider fails transiently.
    pub max_retries: u32,
    /// Wait before the first retry; doubles each time.
    pub retry_backoff: std::time::Duration,
    /// Longest one token request may take.
    pub request_timeout: std::time::Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    pub claude: ProviderConfig,
    /// Scope of a Claude setup token (inference only).
    pub claude_setup_token_scope: String,
    /// Lifetime asked for a setup token, in seconds.
    pub claude_setup_token_lifetime: i64,
    pub openai: ProviderConfig,
    /// Google sign-in for Code Assist (Gemini) accounts.
    pub gemini: ProviderConfig,
    /// Google's installed-app clients carry a secret; empty: Gemini sign-in is off.
    pub gemini_client_secret: String,
    pub refresh: RefreshConfig,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            claude: ProviderConfig {
                authorize_url: "https://claude.ai/oauth/authorize".into(),
                token_url: "https://console.anthropic.com/v1/oauth/token".into(),
                client_id: "9d1c250a-e61b-44d9-88ed-5944d1962f5e".into(),
                redirect_uri: "https://console.anthropic.com/oauth/code/callback".into(),
                scope: "org:create_api_key user:profile user:inference".into(),
            },
            claude_setup_token_scope: "user:inference".into(),
            claude_setup_token_lifetime: 365 * 24 * 3600,
            openai: ProviderConfig {
                authorize_url: "https://auth.openai.com/oauth/authorize".into(),
                token_url: "https://auth.openai.com/oauth/token".into(),
                client_id: "app_EMoamEEZ73f0CkXaXp7hrann".into(),
                redirect_uri: "http://localhost:1455/auth/callback".into(),
                scope: "openid profile email offline_access".into(),
            },
            gemini: ProviderConfig {
                authorize_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
                token_url: "https://oauth2.googleapis.com/token".into(),
                // The Gemini CLI's public installed-app client.
                client_id: "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com".into(),
                redirect_uri: "https://codeassist.google.com/authcode".into(),
                scope: "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email \
                        https://www.googleapis.com/auth/userinfo.profile"
                    .into(),
            },
            gemini_client_secret: String::new(),
            refresh: RefreshConfig {
                enabled: true,
                check_interval: std::time::Duration::from_secs(5 * 60),
                before_expiry: std::time::Duration::from_secs(30 * 60),
                max_retries: 3,
                retry_backoff: std::time::Duration::from_secs(2),
                request_timeout: std::time::Duration::from_secs(30),
            },
        }
    }
}

impl OAuthConfig {
    fn provider(&self, platform: Platform) -> Option<&ProviderConfig> {
        match platform {
            Platform::Anthropic => Some(&self.claude),
            Platform::Openai => Some(&self.openai),
            Platform::Gemini => Some(&self.gemini),
        }
    }
}

/// Why a sign-in or refresh did not produce tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The code or refresh token is no good (used, expired, revoked): a person has to sign
    /// in again. Retrying does not help.
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    /// The provider refused the request for another reason (4xx).
    #[error("the provider refused the token request ({status}): {message}")]
    Refused { status: u16, message: String },
    /// Network trouble or a 5xx: worth retrying.
    #[error("the token request failed: {0}")]
    Temporary(String),
    /// The sign-in session is unknown, tampered with or expired, or the state differs.
    #[error("{0}")]
    Session(String),
}

/// What the sealed `session_id` holds.
#[derive(Serialize, Deserialize)]
struct FlowState {
    #[serde(rename = "p")]
    platform: Platform,
    #[serde(rename = "k")]
    kind: AccountKind,
    #[serde(rename = "v")]
    verifier: String,
    #[serde(rename = "s")]
    state: String,
    #[serde(rename = "e")]
    expires_at: i64,
    #[serde(rename = "x", default)]
    proxy_id: Option<i64>,
}

/// A sign-in started with [`start`].
#[derive(Debug, Clone)]
pub struct Started {
    pub auth_url: String,
    pub session_id: String,
    pub expires_at: OffsetDateTime,
}

/// A sign-in the admin finished: what to exchange, where.
#[derive(Debug)]
pub struct Finished {
    pub platform: Platform,
    pub kind: AccountKind,
    pub proxy_id: Option<i64>,
    verifier: String,
    state: String,
}

fn random_url_safe(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// The PKCE S256 challenge of `verifier`.
pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Starts a sign-in: the provider's authorize URL and the sealed session.
pub fn start(
    cfg: &OAuthConfig,
    secrets: &SecretBox,
    platform: Platform,
    kind: AccountKind,
    proxy_id: Option<i64>,
    now: OffsetDateTime,
) -> Result<Started, OAuthError> {
    let provider = cfg.provider(platform).ok_or_else(|| OAuthError::Session("no sign-in for this platform".into()))?;
    if platform == Platform::Gemini && cfg.gemini_client_secret.is_empty() {
        return Err(OAuthError::Session(
            "Google sign-in needs the OAuth client's secret: set oauth.gemini.client_secret".into(),
        ));
    }
    let verifier = random_url_safe(32);
    let state = random_url_safe(24);
    let expires_at = now + time::Duration::seconds(domain::oauth::FLOW_TTL_SECONDS);
    let scope = match kind {
        AccountKind::SetupToken => cfg.claude_setup_token_scope.as_str(),
        _ => provider.scope.as_str(),
    };
    let mut url = url::Url::parse(&provider.authorize_url)
        .map_err(|e| OAuthError::Session(format!("the configured authorize URL is invalid: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        if platform == Platform::Anthropic {
            // Makes claude.ai show the code to copy instead of redirecting.
            q.append_pair("code", "true");
        }
        q.append_pair("client_id", &provider.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &provider.redirect_uri)
            .append_pair("scope", scope)
            .append_pair("code_challenge", &challenge(&verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state);
        match platform {
            Platform::Openai => {
                q.append_pair("id_token_add_organizations", "true").append_pair("codex_cli_simplified_flow", "true");
            }
            // A refresh token is only issued with offline access and fresh consent.
            Platform::Gemini => {
                q.append_pair("access_type", "offline").append_pair("prompt", "consent");
            }
            Platform::Anthropic => {}
        }
    }
    let flow = FlowState { platform, kind, verifier, state, expires_at: expires_at.unix_timestamp(), proxy_id };
    let session_id = secrets.seal_str(&serde_json::to_string(&flow).unwrap_or_default());
    Ok(Started { auth_url: url.into(), session_id, expires_at })
}

/// Opens a session handed back by the admin; `pasted_state` must match when pasted along.
pub fn finish(
    secrets: &SecretBox,
    session_id: &str,
    pasted_state: Option<&str>,
    now: OffsetDateTime,
) -> Result<Finished, OAuthError> {
    let unknown = || OAuthError::Session("this sign-in session is unknown; start again".into());
    let text = secrets.open_string(session_id.trim()).map_err(|_| unknown())?;
    let flow: FlowState = serde_json::from_str(&text).map_err(|_| unknown())?;
    if now.unix_timestamp() > flow.expires_at {
        return Err(OAuthError::Session("this sign-in session expired (30 minutes); start again".into()));
    }
    if pasted_state.is_some_and(|s| !s.is_empty() && s != flow.state) {
        return Err(OAuthError::Session("the code belongs to another sign-in; start again".into()));
    }
    Ok(Finished {
        platform: flow.platform,
        kind: flow.kind,
        proxy_id: flow.proxy_id,
        verifier: flow.verifier,
        state: flow.state,
    })
}

/// The tokens and facts of a successful token answer.
#[derive(Debug, Clone)]
pub struct Grant {
    pub tokens: OAuthTokens,
    pub info: OAuthInfo,
}

/// Exchanges the admin's code for tokens.
pub async fn exchange(
    cfg: &OAuthConfig,
    http: &reqwest::Client,
    flow: &Finished,
    code: &str,
    now: OffsetDateTime,
) -> Result<Grant, OAuthError> {
    let provider = cfg.provider(flow.platform).ok_or_else(|| OAuthError::Session("no sign-in here".into()))?;
    let request = match flow.platform {
        Platform::Anthropic => {
            let mut body = json!({
                "grant_type": "authorization_code",
                "code": code,
                "state": flow.state,
                "client_id": provider.client_id,
                "redirect_uri": provider.redirect_uri,
                "code_verifier": flow.verifier,
            });
            if flow.kind == AccountKind::SetupToken {
                body["expires_in"] = json!(cfg.claude_setup_token_lifetime);
            }
            http.post(&provider.token_url).json(&body)
        }
        Platform::Openai => http.post(&provider.token_url).form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", provider.redirect_uri.as_str()),
            ("client_id", provider.client_id.as_str()),
            ("code_verifier", flow.verifier.as_str()),
        ]),
        Platform::Gemini => http.post(&provider.token_url).form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", provider.redirect_uri.as_str()),
            ("client_id", provider.client_id.as_str()),
            ("client_secret", cfg.gemini_client_secret.as_str()),
            ("code_verifier", flow.verifier.as_str()),
        ]),
    };
    let answer = send(request, cfg.refresh.request_timeout).await?;
    grant_from(flow.platform, &answer, None, now)
}

/// Trades a refresh token for new tokens. `previous` fills in what the answer leaves out
/// (providers that do not rotate refresh tokens, or omit the account).
pub async fn refresh(
    cfg: &OAuthConfig,
    http: &reqwest::Client,
    platform: Platform,
    refresh_token: &str,
    previous: &OAuthInfo,
    now: OffsetDateTime,
) -> Result<Grant, OAuthError> {
    let provider = cfg.provider(platform).ok_or_else(|| OAuthError::Session("no refresh here".into()))?;
    let request = match platform {
        Platform::Anthropic => http.post(&provider.token_url).json(&json!({
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": provider.client_id,
        })),
        Platform::Openai => http.post(&provider.token_url).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", provider.client_id.as_str()),
            ("scope", "openid profile email"),
        ]),
        Platform::Gemini => http.post(&provider.token_url).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", provider.client_id.as_str()),
            ("client_secret", cfg.gemini_client_secret.as_str()),
        ]),
    };
    let answer = send(request, cfg.refresh.request_timeout).await?;
    let mut grant = grant_from(platform, &answer, Some(previous), now)?;
    if grant.tokens.refresh_token.is_empty() {
        refresh_token.clone_into(&mut grant.tokens.refresh_token);
        grant.info.refreshable = true;
    }
    Ok(grant)
}

async fn send(request: reqwest::RequestBuilder, timeout: std::time::Duration) -> Result<Value, OAuthError> {
    let response = request
        .header(http::header::ACCEPT, "application/json")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| OAuthError::Temporary(e.without_url().to_string()))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| OAuthError::Temporary(e.without_url().to_string()))?;
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(json);
    }
    let code = json.get("error").and_then(|e| e.as_str().or_else(|| e.get("type").and_then(Value::as_str)));
    let description = json
        .get("error_description")
        .and_then(Value::as_str)
        .or_else(|| json.pointer("/error/message").and_then(Value::as_str))
        .unwrap_or_default();
    let message: String = match (code, description) {
        (Some(c), "") => c.to_owned(),
        (Some(c), d) => format!("{c}: {d}"),
        (None, "") => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        (None, d) => d.to_owned(),
    };
    let message: String = message.chars().take(300).collect();
    if code == Some("invalid_grant") {
        return Err(OAuthError::InvalidGrant(description.to_owned()));
    }
    if status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS {
        return Err(OAuthError::Temporary(format!("{}: {message}", status.as_u16())));
    }
    Err(OAuthError::Refused { status: status.as_u16(), message })
}

/// Reads a token answer (Claude's JSON or OpenAI's).
fn grant_from(
    platform: Platform,
    answer: &Value,
    previous: Option<&OAuthInfo>,
    now: OffsetDateTime,
) -> Result<Grant, OAuthError> {
    let text = |pointer: &str| answer.pointer(pointer).and_then(Value::as_str).filter(|s| !s.is_empty());
    let access_token = text("/access_token")
        .ok_or_else(|| OAuthError::Refused { status: 200, message: "the answer holds no access_token".into() })?;
    let refresh_token = text("/refresh_token").unwrap_or_default().to_owned();
    let expires_at = answer
        .get("expires_in")
        .and_then(Value::as_i64)
        .filter(|s| *s > 0)
        .map_or(0, |s| now.unix_timestamp().saturating_add(s));
    let mut info = previous.cloned().unwrap_or_default();
    if let Some(scope) = text("/scope") {
        scope.clone_into(&mut info.scope);
    }
    match platform {
        Platform::Gemini => {
            if let Some(email) = text("/id_token").and_then(jwt_claims).and_then(|c| c.get("email").cloned())
                && let Some(email) = email.as_str()
            {
                info.email = Some(email.to_owned());
            }
        }
        Platform::Openai => {
            if let Some(claims) = text("/id_token").and_then(jwt_claims) {
                let auth = claims.get("https://api.openai.com/auth");
                let account = auth.and_then(|a| a.get("chatgpt_account_id")).and_then(Value::as_str);
                if let Some(id) = account {
                    info.account_id = Some(id.to_owned());
                }
                if let Some(email) = claims.get("email").and_then(Value::as_str) {
                    info.email = Some(email.to_owned());
                }
                let org = auth.and_then(|a| a.get("organization_id")).and_then(Value::as_str);
                if let Some(org) = org {
                    info.organization_id = Some(org.to_owned());
                }
            }
        }
        Platform::Anthropic => {
            if let Some(uuid) = text("/account/uuid") {
                info.account_id = Some(uuid.to_owned());
            }
            if let Some(email) = text("/account/email_address") {
                info.email = Some(email.to_owned());
            }
            if let Some(org) = text("/organization/uuid") {
                info.organization_id = Some(org.to_owned());
            }
        }
    }
    info.expires_at = OffsetDateTime::from_unix_timestamp(expires_at).ok().filter(|_| expires_at > 0).map(rfc3339);
    info.refreshable = !refresh_token.is_empty();
    info.refreshed_at = Some(rfc3339(now));
    info.refresh_error = None;
    Ok(Grant { tokens: OAuthTokens { access_token: access_token.to_owned(), refresh_token, expires_at }, info })
}

/// The Code Assist project of a Google sign-in (`loadCodeAssist`), for accounts whose admin
/// did not name one.
pub async fn discover_project(
    cfg: &OAuthConfig,
    http: &reqwest::Client,
    code_assist_base: &str,
    access_token: &str,
) -> Result<String, OAuthError> {
    let url = format!("{}/v1internal:loadCodeAssist", code_assist_base.trim_end_matches('/'));
    let request = http
        .post(url)
        .bearer_auth(access_token)
        .json(&json!({"metadata": {"ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"}}));
    let answer = send(request, cfg.refresh.request_timeout).await?;
    let project = answer.get("cloudaicompanionProject");
    let id = project.and_then(|p| p.as_str().or_else(|| p.get("id").and_then(Value::as_str)));
    id.filter(|id| !id.is_empty()).map(str::to_owned).ok_or_else(|| OAuthError::Refused {
        status: 200,
        message: "this Google account has no Code Assist project yet; enter its Google Cloud project id".into(),
    })
}

/// The claims of a JWT, unverified: the id token came straight from the provider over TLS
/// and is only read for display and routing ids.
fn jwt_claims(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> SecretBox {
        SecretBox::from_key_text(&"cd".repeat(32)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn authorize_url_carries_pkce_and_the_session_opens_once_matched() {
        let cfg = OAuthConfig::default();
        let now = OffsetDateTime::now_utc();
        let started = start(&cfg, &secrets(), Platform::Anthropic, AccountKind::SetupToken, Some(4), now)
            .unwrap_or_else(|e| panic!("{e}"));
        let url = url::Url::parse(&started.auth_url).unwrap_or_else(|e| panic!("{e}"));
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["scope"], "user:inference");
        assert_eq!((q["code_challenge_method"].as_str(), q["code"].as_str()), ("S256", "true"));
        assert_eq!(q["client_id"], cfg.claude.client_id);
        let flow = finish(&secrets(), &started.session_id, Some(&q["state"]), now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(challenge(&flow.verifier), q["code_challenge"], "the verifier matches the challenge");
        assert_eq!((flow.kind, flow.proxy_id), (AccountKind::SetupToken, Some(4)));
        assert!(!started.session_id.contains(&flow.verifier), "the verifier is sealed");

        let wrong_state = finish(&secrets(), &started.session_id, Some("other"), now);
        assert!(matches!(wrong_state, Err(OAuthError::Session(_))));
        let late = now + time::Duration::minutes(31);
        assert!(
            matches!(finish(&secrets(), &started.session_id, None, late), Err(OAuthError::Session(m)) if m.contains("expired"))
        );
        let foreign = SecretBox::from_key_text(&"ef".repeat(32)).unwrap_or_else(|e| panic!("{e}"));
        assert!(finish(&foreign, &started.session_id, None, now).is_err(), "another key cannot open it");
    }

    #[test]
    fn token_answers_of_both_providers() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or_else(|e| panic!("{e}"));
        let claude = json!({"access_token": "at", "refresh_token": "rt", "expires_in": 3600, "scope": "user:inference",
            "account": {"uuid": "acc", "email_address": "a@b"}, "organization": {"uuid": "org"}});
        let g = grant_from(Platform::Anthropic, &claude, None, now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((g.tokens.expires_at, g.info.account_id.as_deref()), (1_800_003_600, Some("acc")));
        assert_eq!((g.info.organization_id.as_deref(), g.info.email.as_deref()), (Some("org"), Some("a@b")));
        assert!(g.info.refreshable);
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"email": "c@d", "https://api.openai.com/auth": {"chatgpt_account_id": "ca"}}).to_string());
        let openai = json!({"access_token": "at", "id_token": format!("h.{claims}.s"), "expires_in": 10});
        let previous = OAuthInfo { scope: "openid".into(), ..OAuthInfo::default() };
        let g = grant_from(Platform::Openai, &openai, Some(&previous), now).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((g.info.account_id.as_deref(), g.info.email.as_deref()), (Some("ca"), Some("c@d")));
        assert_eq!((g.info.scope.as_str(), g.info.refreshable), ("openid", false));
        assert!(grant_from(Platform::Openai, &json!({"error": "x"}), None, now).is_err());
    }
}
