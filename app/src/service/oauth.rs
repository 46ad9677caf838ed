//! Adding subscription accounts by signing in (OAuth / setup token), and refreshing their
//! tokens on request. Shared by the admin REST API and the Accounts page's wizard.

use domain::oauth::{OAuthExchangeInput, OAuthStart, OAuthStartInput, split_code};
use domain::{AccountInput, AccountView, CredentialsInput};
use proxy::gateway::Gateway;
use proxy::oauth::keeper::{self, RefreshError, Trigger};
use proxy::oauth::{self, OAuthError};
use store::Store;
use store::cipher::SecretBox;
use store::credentials::StoredCredentials;
use time::OffsetDateTime;

use super::accounts::{check_groups, check_proxy, dedup, get_account, to_new, view_of};
use crate::AppError;

fn oauth_error(e: OAuthError) -> AppError {
    match e {
        OAuthError::Session(message) => AppError::Invalid(format!("session_id: {message}")),
        OAuthError::InvalidGrant(why) => AppError::Invalid(format!(
            "code: the provider refused the code (invalid_grant{}); codes work once and expire quickly, sign in again",
            if why.is_empty() { String::new() } else { format!(": {why}") }
        )),
        OAuthError::Refused { status, message } => {
            AppError::Invalid(format!("code: the provider refused the exchange ({status}): {message}"))
        }
        OAuthError::Temporary(message) => AppError::Transport(format!("the provider could not be reached: {message}")),
    }
}

/// Starts a sign-in: the URL the admin opens, and the session to hand back with the code.
pub async fn start_sign_in(
    store: &Store,
    secrets: &SecretBox,
    gateway: &Gateway,
    input: OAuthStartInput,
) -> Result<OAuthStart, AppError> {
    let kind = input.resolve().map_err(|e| AppError::Invalid(e.to_string()))?;
    check_proxy(store, input.proxy_id).await?;
    let started =
        oauth::start(&gateway.config.oauth, secrets, input.platform, kind, input.proxy_id, OffsetDateTime::now_utc())
            .map_err(oauth_error)?;
    Ok(OAuthStart {
        auth_url: started.auth_url,
        session_id: started.session_id,
        expires_at: store::repo::rfc3339(started.expires_at),
    })
}

/// Finishes a sign-in: exchanges the pasted code and stores the new account with its
/// tokens sealed.
pub async fn exchange_code(
    store: &Store,
    secrets: &SecretBox,
    gateway: &Gateway,
    input: OAuthExchangeInput,
) -> Result<AccountView, AppError> {
    let (code, pasted_state) = split_code(&input.code).map_err(|e| AppError::Invalid(e.to_string()))?;
    let now = OffsetDateTime::now_utc();
    let flow = oauth::finish(secrets, &input.session_id, pasted_state.as_deref(), now).map_err(oauth_error)?;
    let group_ids = dedup(input.group_ids.clone());
    // The account's settings go through the same checks as any other account's; the
    // stand-in key only satisfies the API-key rule and is never stored.
    let settings = AccountInput {
        name: Some(input.name.clone()),
        notes: input.notes.clone(),
        platform: Some(flow.platform),
        credentials: Some(CredentialsInput { api_key: Some("sign-in".into()), base_url: None }),
        concurrency: input.concurrency,
        priority: input.priority,
        proxy_id: Some(flow.proxy_id),
        ..AccountInput::default()
    };
    let mut fields = settings.resolve(None).map_err(|e| AppError::Invalid(e.to_string()))?;
    fields.kind = flow.kind;
    fields.api_key = None;
    check_groups(store, fields.platform, &group_ids).await?;
    check_proxy(store, fields.proxy_id).await?;
    let http = gateway.sign_in_client(fields.proxy_id).map_err(|e| AppError::Transport(e.without_url().to_string()))?;
    let mut grant = oauth::exchange(&gateway.config.oauth, &http, &flow, &code, now).await.map_err(oauth_error)?;
    if fields.platform == domain::Platform::Gemini {
        let named = input.project_id.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned);
        let project = match named {
            Some(project) => project,
            None => oauth::discover_project(
                &gateway.config.oauth,
                &http,
                &gateway.config.code_assist_base_url,
                &grant.tokens.access_token,
            )
            .await
            .map_err(|e| match e {
                OAuthError::Refused { message, .. } => AppError::Invalid(format!("project_id: {message}")),
                other => oauth_error(other),
            })?,
        };
        grant.info.project_id = Some(project);
    }
    let sealed = StoredCredentials::oauth(grant.tokens).seal(secrets);
    let row = store.create_account(&to_new(&fields, sealed, group_ids.clone(), Some(grant.info))?).await?;
    tracing::info!(
        account_id = row.id,
        platform = fields.platform.as_str(),
        kind = fields.kind.as_str(),
        "account signed in"
    );
    view_of(&row, group_ids, 0)
}

/// Refreshes an account's token now. A refused refresh (`invalid_grant`) also puts the
/// account in the error state, which the answer's message says.
pub async fn refresh_now(store: &Store, gateway: &Gateway, id: i64) -> Result<AccountView, AppError> {
    match keeper::refresh_account(gateway, id, Trigger::Admin).await {
        Ok(()) => get_account(store, gateway, id).await,
        Err(RefreshError::NotFound) => Err(AppError::NotFound("account".into())),
        Err(e @ (RefreshError::NotOAuth | RefreshError::NotRefreshable | RefreshError::Busy)) => {
            Err(AppError::Invalid(e.to_string()))
        }
        Err(RefreshError::OAuth(e @ OAuthError::InvalidGrant(_))) => Err(AppError::Invalid(format!(
            "the provider refused the refresh ({e}); the account is now in error: sign in again"
        ))),
        Err(RefreshError::OAuth(e)) => Err(AppError::Transport(e.to_string())),
        Err(RefreshError::Store(e)) => {
            tracing::error!(account_id = id, error = %e, "refreshing a token failed in the store");
            Err(AppError::Internal)
        }
    }
}
