//! Server functions for the accounts page. Each checks the session and calls the same
//! `service::accounts` function as the admin REST API.

use domain::account::{AccountQuery, BulkImportInput, BulkImportResult, BulkStatusInput, BulkStatusResult};
use domain::oauth::{OAuthExchangeInput, OAuthStart, OAuthStartInput};
use domain::{AccountInput, AccountTestResult, AccountView, Page};
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

use crate::AppError;

// Reads are GETs: the server reloads the gateway's snapshot after every other request.
#[server(input = GetUrl)]
pub async fn query_accounts(#[server(default)] query: AccountQuery) -> Result<Page<AccountView>, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::accounts::query_accounts(&state.store, &state.gateway, &query).await
}

#[server(input = Json)]
pub async fn create_account(input: AccountInput) -> Result<AccountView, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let account = crate::service::accounts::create_account(&state.store, &state.secrets, input).await?;
    tracing::info!(user_id = user.id, account_id = account.id, "account created");
    Ok(account)
}

#[server(input = Json)]
pub async fn update_account(id: i64, input: AccountInput) -> Result<AccountView, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let account = crate::service::accounts::update_account(&state.store, &state.secrets, id, input).await?;
    tracing::info!(user_id = user.id, account_id = id, "account updated");
    Ok(account)
}

#[server]
pub async fn delete_account(id: i64) -> Result<(), AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    crate::service::accounts::delete_account(&state.store, id).await?;
    tracing::info!(user_id = user.id, account_id = id, "account deleted");
    Ok(())
}

/// Sends a small prompt through the account alone, with the platform's default test model.
#[server]
pub async fn test_account(id: i64) -> Result<AccountTestResult, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::accounts::test_account(&state.store, &state.gateway, id, None).await
}

#[server]
pub async fn clear_account_error(id: i64) -> Result<AccountView, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let account = crate::service::accounts::clear_error(&state.store, &state.gateway, id).await?;
    tracing::info!(user_id = user.id, account_id = id, "account error cleared");
    Ok(account)
}

#[server]
pub async fn clear_account_rate_limit(id: i64) -> Result<AccountView, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let account = crate::service::accounts::clear_rate_limit(&state.store, &state.gateway, id).await?;
    tracing::info!(user_id = user.id, account_id = id, "account cooldowns cleared");
    Ok(account)
}

#[server]
pub async fn set_account_schedulable(id: i64, schedulable: bool) -> Result<AccountView, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let account = crate::service::accounts::set_schedulable(&state.store, &state.gateway, id, schedulable).await?;
    tracing::info!(user_id = user.id, account_id = id, schedulable, "account schedulable changed");
    Ok(account)
}

#[server(input = Json)]
pub async fn bulk_import_accounts(input: BulkImportInput) -> Result<BulkImportResult, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let result = crate::service::accounts::bulk_import(&state.store, &state.secrets, input).await?;
    tracing::info!(user_id = user.id, created = result.created, failed = result.errors.len(), "accounts imported");
    Ok(result)
}

#[server(input = Json)]
pub async fn set_accounts_status(input: BulkStatusInput) -> Result<BulkStatusResult, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let status = input.status;
    let result = crate::service::accounts::bulk_set_status(&state.store, input).await?;
    tracing::info!(user_id = user.id, %status, updated = result.updated, "account status changed in bulk");
    Ok(result)
}

/// Starts adding a subscription account by signing in: the provider's authorize URL, and the
/// session to hand back with the code. Nothing is stored yet.
#[server(input = Json)]
pub async fn start_account_sign_in(input: OAuthStartInput) -> Result<OAuthStart, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let platform = input.platform;
    let started = crate::service::oauth::start_sign_in(&state.store, &state.secrets, &state.gateway, input).await?;
    tracing::info!(user_id = user.id, platform = platform.as_str(), "account sign-in started");
    Ok(started)
}

/// Finishes a sign-in with the code the provider showed, and stores the new account.
#[server(input = Json)]
pub async fn finish_account_sign_in(input: OAuthExchangeInput) -> Result<AccountView, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let account = crate::service::oauth::exchange_code(&state.store, &state.secrets, &state.gateway, input).await?;
    tracing::info!(user_id = user.id, account_id = account.id, "account added by sign-in");
    Ok(account)
}

/// Refreshes an OAuth account's access token now.
#[server]
pub async fn refresh_account_token(id: i64) -> Result<AccountView, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let account = crate::service::oauth::refresh_now(&state.store, &state.gateway, id).await?;
    tracing::info!(user_id = user.id, account_id = id, "account token refreshed");
    Ok(account)
}
