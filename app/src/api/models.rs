//! Server functions for the Models page.

use std::collections::BTreeMap;

use domain::models::{ModelsOverview, PriceRow};
use leptos::prelude::*;
use leptos::server_fn::codec::{GetUrl, Json};

use crate::AppError;

#[server(input = GetUrl)]
pub async fn get_models_overview() -> Result<ModelsOverview, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::models::overview(&state.store, &state.gateway).await
}

#[server(input = GetUrl)]
pub async fn search_prices(query: String) -> Result<Vec<PriceRow>, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    Ok(crate::service::models::search_prices(&state.gateway, &query))
}

// JSON, not a form: a form sends nothing for an empty mapping, which clears it.
#[server(input = Json)]
pub async fn save_model_mapping(account_id: i64, mapping: BTreeMap<String, String>) -> Result<(), AppError> {
    let (state, user) = super::ssr::require_admin().await?;
    crate::service::models::set_mapping(&state.store, &state.secrets, account_id, mapping).await?;
    tracing::info!(user_id = user.id, account_id, "model mapping changed");
    Ok(())
}
