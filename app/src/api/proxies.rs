//! Server functions for the Proxies page.

use domain::proxies::{ProxyInput, ProxyTestResult, ProxyView};
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

use crate::AppError;

// Reads are GETs: the server reloads the gateway's snapshot after every other request.
#[server(input = GetUrl)]
pub async fn list_proxies() -> Result<Vec<ProxyView>, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::proxies::list_proxies(&state.store).await
}

#[server(input = Json)]
pub async fn create_proxy(input: ProxyInput) -> Result<ProxyView, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let proxy = crate::service::proxies::create_proxy(&state.store, &state.secrets, input).await?;
    tracing::info!(user_id = user.id, proxy_id = proxy.id, "proxy created");
    Ok(proxy)
}

#[server(input = Json)]
pub async fn update_proxy(id: i64, input: ProxyInput) -> Result<ProxyView, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let proxy = crate::service::proxies::update_proxy(&state.store, &state.secrets, id, input).await?;
    tracing::info!(user_id = user.id, proxy_id = id, "proxy updated");
    Ok(proxy)
}

#[server]
pub async fn delete_proxy(id: i64) -> Result<(), AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    crate::service::proxies::delete_proxy(&state.store, id).await?;
    tracing::info!(user_id = user.id, proxy_id = id, "proxy deleted");
    Ok(())
}

#[server]
pub async fn test_proxy(id: i64) -> Result<ProxyTestResult, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::proxies::test_proxy(&state.store, &state.secrets, id).await
}

#[server(input = GetUrl)]
pub async fn get_probe_url() -> Result<String, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::proxies::probe_url(&state.store).await
}

#[server]
pub async fn set_probe_url(url: String) -> Result<String, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let url = crate::service::proxies::set_probe_url(&state.store, &url).await?;
    tracing::info!(user_id = user.id, "proxy probe URL changed");
    Ok(url)
}
