//! Server functions for the groups page.

use domain::{GroupInput, GroupView};
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

use crate::AppError;

// Reads are GETs: the server reloads the gateway's snapshot after every other request.
#[server(input = GetUrl)]
pub async fn list_groups() -> Result<Vec<GroupView>, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::groups::list_groups(&state.store).await
}

#[server(input = Json)]
pub async fn create_group(input: GroupInput) -> Result<GroupView, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let group = crate::service::groups::create_group(&state.store, input).await?;
    tracing::info!(user_id = user.id, group_id = group.id, "group created");
    Ok(group)
}

#[server(input = Json)]
pub async fn update_group(id: i64, input: GroupInput) -> Result<GroupView, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let group = crate::service::groups::update_group(&state.store, id, input).await?;
    tracing::info!(user_id = user.id, group_id = id, "group updated");
    Ok(group)
}

#[server]
pub async fn delete_group(id: i64) -> Result<(), AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    crate::service::groups::delete_group(&state.store, id).await?;
    tracing::info!(user_id = user.id, group_id = id, "group deleted");
    Ok(())
}
