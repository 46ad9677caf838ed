//! Server functions for the Settings page.

use domain::settings::{PasswordChange, Settings, SettingsInput};
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

use crate::AppError;

#[server(input = GetUrl)]
pub async fn get_settings() -> Result<Settings, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::settings::get_settings(&state.store, &state.gateway.config).await
}

// JSON, not a form: a form cannot tell an emptied field (`Some("")`, clear it) from an
// absent one (`None`, keep it).
#[server(input = Json)]
pub async fn save_settings(input: SettingsInput) -> Result<Settings, AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let saved = crate::service::settings::update_settings(&state.store, &state.gateway.config, input).await?;
    tracing::info!(user_id = user.id, "settings changed");
    Ok(saved)
}

#[server]
pub async fn change_password(change: PasswordChange) -> Result<(), AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    let session = super::ssr::session().await?;
    crate::service::auth::change_own_password(&state.store, &session, user.id, change).await
}
