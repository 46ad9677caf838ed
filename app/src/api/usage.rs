//! Server functions for the usage page.

use domain::{Page, UsageFilterOptions, UsageQuery, UsageTotals, UsageView};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;

use crate::AppError;

// Reads are GETs: the server reloads the gateway's snapshot after every other request.
// A query whose filters are all empty encodes to nothing in the URL; `#[server(default)]`
// reads that back as the empty query instead of a missing argument.

/// One page of the usage log, newest first.
#[server(input = GetUrl)]
pub async fn list_usage(#[server(default)] query: UsageQuery) -> Result<Page<UsageView>, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::usage::list_usage(&state.store, &query).await
}

/// Requests, tokens and cost over everything the filter selects.
#[server(input = GetUrl)]
pub async fn get_usage_totals(#[server(default)] query: UsageQuery) -> Result<UsageTotals, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::usage::usage_stats(&state.store, &query).await
}

/// The users, keys, accounts, groups and models the filters offer.
#[server(input = GetUrl)]
pub async fn get_usage_filter_options() -> Result<UsageFilterOptions, AppError> {
    let (state, _) = super::ssr::require_admin().await?;
    crate::service::usage::filter_options(&state.store).await
}
