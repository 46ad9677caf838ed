//! Server functions for the dashboard page.

use domain::{DashboardStats, UsageTrend};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;

use crate::AppError;

// Reads are GETs: the server reloads the gateway's snapshot after every other request.

/// Account states, today's usage, the last hour per minute and the newest errors.
#[server(input = GetUrl)]
pub async fn get_dashboard_stats() -> Result<DashboardStats, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::dashboard_stats(&state.store).await
}

/// Usage per day and per model over the last `days` days.
#[server(input = GetUrl)]
pub async fn get_usage_trend(days: u32) -> Result<UsageTrend, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::usage::usage_trend(&state.store, days, time::OffsetDateTime::now_utc()).await
}
