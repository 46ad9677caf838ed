//! Server functions for the users and API keys pages.

use domain::api_key::ApiKeyListing;
use domain::user::UserListing;
use domain::{ApiKeyInput, ApiKeyStatus, ApiKeyView, CreatedApiKey, UserInput, UserView};
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

use crate::AppError;

// Reads are GETs: the server reloads the gateway's snapshot after every other request.

/// Every user with their key count and today's usage.
#[server(input = GetUrl)]
pub async fn list_users() -> Result<Vec<UserListing>, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::users::list_user_listings(&state.store).await
}

#[server(input = Json)]
pub async fn create_user(input: UserInput) -> Result<UserView, AppError> {
    let (state, admin) = super::ssr::require_admin().await?;
    let user = crate::service::users::create_user(&state.store, input).await?;
    tracing::info!(user_id = admin.id, created_user_id = user.id, "user created");
    Ok(user)
}

#[server(input = Json)]
pub async fn update_user(id: i64, input: UserInput) -> Result<UserView, AppError> {
    let (state, admin) = super::ssr::require_admin().await?;
    let user = crate::service::users::update_user(&state.store, id, input).await?;
    tracing::info!(user_id = admin.id, updated_user_id = id, "user updated");
    Ok(user)
}

#[server]
pub async fn delete_user(id: i64) -> Result<(), AppError> {
    let (state, admin) = super::ssr::require_admin().await?;
    crate::service::users::delete_user(&state.store, id).await?;
    tracing::info!(user_id = admin.id, deleted_user_id = id, "user deleted");
    Ok(())
}

/// The keys of one user, or all keys, with owner, group and today's usage.
#[server(input = GetUrl)]
pub async fn list_api_keys(user_id: Option<i64>) -> Result<Vec<ApiKeyListing>, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::users::list_key_listings(&state.store, user_id).await
}

/// Creates a key; the answer holds the full key, which is never shown again.
#[server(input = Json)]
pub async fn create_api_key(user_id: i64, input: ApiKeyInput) -> Result<CreatedApiKey, AppError> {
    let (state, admin) = super::ssr::require_admin().await?;
    let created = crate::service::users::create_api_key(&state.store, user_id, input).await?;
    tracing::info!(user_id = admin.id, key_id = created.view.id, owner_id = user_id, "API key created");
    Ok(created)
}

#[server]
pub async fn set_api_key_status(id: i64, status: ApiKeyStatus) -> Result<ApiKeyView, AppError> {
    let (state, admin) = super::ssr::require_admin().await?;
    let input = ApiKeyInput { status: Some(status), ..Default::default() };
    let key = crate::service::users::update_api_key(&state.store, id, input).await?;
    tracing::info!(user_id = admin.id, key_id = id, status = status.as_str(), "API key status changed");
    Ok(key)
}

/// Moves a key to another group, or out of any (`None`).
#[server]
pub async fn set_api_key_group(id: i64, group_id: Option<i64>) -> Result<ApiKeyView, AppError> {
    let (state, admin) = super::ssr::require_admin().await?;
    let input = ApiKeyInput { group_id: Some(group_id), ..Default::default() };
    let key = crate::service::users::update_api_key(&state.store, id, input).await?;
    tracing::info!(user_id = admin.id, key_id = id, ?group_id, "API key moved");
    Ok(key)
}

#[server]
pub async fn delete_api_key(id: i64) -> Result<(), AppError> {
    let (state, admin) = super::ssr::require_admin().await?;
    crate::service::users::delete_api_key(&state.store, id).await?;
    tracing::info!(user_id = admin.id, key_id = id, "API key deleted");
    Ok(())
}

/// The base URL clients should be given: the `site.public_base_url` setting, or else
/// `http://` and the host this page was requested from.
#[server(input = GetUrl)]
pub async fn get_public_base_url() -> Result<String, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    let parts = use_context::<http::request::Parts>();
    let host = parts.as_ref().and_then(|p| {
        p.headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| p.uri.authority().map(|a| a.as_str()))
    });
    crate::service::users::public_base_url(&state.store, host).await
}
