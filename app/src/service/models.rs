//! The Models page and `/api/v1/admin/models`: effective model lists per group (computed by
//! the gateway exactly as `GET /v1/models` does), account mappings and the price table.

use std::collections::BTreeMap;

use domain::models::{AccountMapping, GroupModels, ModelsOverview, PriceRow};
use domain::{AccountInput, AccountView};
use proxy::gateway::{Gateway, PRICE_SOURCE};
use store::Store;
use store::cipher::SecretBox;

use crate::AppError;

/// Most price rows one search returns.
pub const MAX_PRICE_ROWS: usize = 200;

pub async fn overview(store: &Store, gateway: &Gateway) -> Result<ModelsOverview, AppError> {
    let groups = crate::service::groups::list_groups(store)
        .await?
        .into_iter()
        .map(|g| {
            // A group created a moment ago may not be in the snapshot yet: it lists nothing.
            let (models, built_in) = gateway.group_models(g.id).unwrap_or_default();
            GroupModels { group_id: g.id, name: g.name, platform: g.platform, models, built_in }
        })
        .collect();
    let accounts = crate::service::accounts::list_accounts(store, gateway)
        .await?
        .into_iter()
        .map(|a| AccountMapping { account_id: a.id, name: a.name, platform: a.platform, mapping: a.model_mapping })
        .collect();
    Ok(ModelsOverview { groups, accounts, price_source: PRICE_SOURCE.to_owned(), price_count: gateway.prices().len() })
}

/// Prices whose model name contains `query` (case-insensitive), sorted by name, at most
/// [`MAX_PRICE_ROWS`].
pub fn search_prices(gateway: &Gateway, query: &str) -> Vec<PriceRow> {
    let query = query.trim().to_lowercase();
    let per_million = |v: f64| v * 1_000_000.0;
    let mut rows: Vec<PriceRow> = gateway
        .prices()
        .iter()
        .filter(|(model, _)| model.contains(&query))
        .map(|(model, p)| PriceRow {
            model: model.to_owned(),
            provider: p.provider.clone(),
            input: per_million(p.input_per_token),
            output: per_million(p.output_per_token),
            cache_write: per_million(p.effective_cache_write_5m()),
            cache_read: per_million(p.effective_cache_read()),
            max_input_tokens: p.max_input_tokens,
        })
        .collect();
    rows.sort_by(|a, b| a.model.cmp(&b.model));
    rows.truncate(MAX_PRICE_ROWS);
    rows
}

/// Replaces one account's model mapping, leaving everything else as it is.
pub async fn set_mapping(
    store: &Store,
    secrets: &SecretBox,
    account_id: i64,
    mapping: BTreeMap<String, String>,
) -> Result<AccountView, AppError> {
    let input = AccountInput { model_mapping: Some(mapping), ..AccountInput::default() };
    crate::service::accounts::update_account(store, secrets, account_id, input).await
}
