//! Upstream account management, shared by the admin REST API and the Accounts page.
//! Credentials are sealed here before they reach the store and are never returned.
//!
//! The gateway's snapshot is not reloaded here: the server does that after every successful
//! admin change, whichever door (page or REST) it came through.

use std::collections::HashMap;

use domain::account::{
    ACCOUNT_PAGE_SIZE, AccountQuery, AccountState, BulkImportInput, BulkImportResult, BulkStatusInput,
    BulkStatusResult, ImportLineError, MAX_ACCOUNT_PAGE_SIZE,
};
use domain::{AccountFields, AccountInput, AccountStatus, AccountView, Page, Platform};
use proxy::gateway::Gateway;
use store::cipher::SecretBox;
use store::credentials::{AccountExtra, StoredCredentials};
use store::{AccountRow, NewAccount, Store};
use time::OffsetDateTime;

use crate::AppError;

fn not_found() -> AppError {
    AppError::NotFound("account".into())
}

fn corrupt(what: &str) -> AppError {
    tracing::error!(what, "stored account data is unreadable");
    AppError::Internal
}

fn fields_of(row: &AccountRow) -> Result<AccountFields, AppError> {
    let extra: AccountExtra = serde_json::from_str(&row.extra).map_err(|_| corrupt("extra"))?;
    Ok(AccountFields {
        name: row.name.clone(),
        notes: row.notes.clone(),
        platform: row.platform.parse().map_err(|_| corrupt("platform"))?,
        kind: row.kind.parse().map_err(|_| corrupt("type"))?,
        api_key: None,
        base_url: extra.base_url,
        model_mapping: serde_json::from_str(&row.model_mapping).map_err(|_| corrupt("model_mapping"))?,
        concurrency: row.concurrency,
        priority: row.priority,
        proxy_id: row.proxy_id,
        schedulable: row.schedulable,
    })
}

fn status_of(row: &AccountRow) -> Result<AccountStatus, AppError> {
    row.status.parse().map_err(|_| corrupt("status"))
}

fn state_of(row: &AccountRow, status: AccountStatus, now: OffsetDateTime) -> AccountState {
    let cooling = |until: Option<OffsetDateTime>| until.is_some_and(|t| t > now);
    AccountState::derive(status, cooling(row.rate_limit_reset_at), cooling(row.overload_until))
}

fn oauth_of(row: &AccountRow) -> Result<Option<domain::account::OAuthInfo>, AppError> {
    let extra: AccountExtra = serde_json::from_str(&row.extra).map_err(|_| corrupt("extra"))?;
    Ok(extra.oauth)
}

pub(crate) fn view_of(row: &AccountRow, group_ids: Vec<i64>, in_flight: u32) -> Result<AccountView, AppError> {
    let f = fields_of(row)?;
    let status = status_of(row)?;
    Ok(AccountView {
        id: row.id,
        name: f.name,
        notes: f.notes,
        platform: f.platform,
        kind: f.kind,
        model_mapping: f.model_mapping,
        base_url: f.base_url,
        concurrency: f.concurrency,
        priority: f.priority,
        status,
        state: state_of(row, status, OffsetDateTime::now_utc()),
        error_message: row.error_message.clone(),
        schedulable: f.schedulable,
        rate_limit_reset_at: row.rate_limit_reset_at.map(store::repo::rfc3339),
        overload_until: row.overload_until.map(store::repo::rfc3339),
        last_used_at: row.last_used_at.map(store::repo::rfc3339),
        proxy_id: f.proxy_id,
        group_ids,
        in_flight,
        created_at: store::repo::rfc3339(row.created_at),
        oauth: oauth_of(row)?,
        windows: serde_json::from_str(&row.usage_windows).unwrap_or_default(),
    })
}

async fn memberships(store: &Store) -> Result<HashMap<i64, Vec<i64>>, AppError> {
    let mut by_account: HashMap<i64, Vec<i64>> = HashMap::new();
    for (account, group) in store.account_memberships().await? {
        by_account.entry(account).or_default().push(group);
    }
    Ok(by_account)
}

pub async fn list_accounts(store: &Store, gateway: &Gateway) -> Result<Vec<AccountView>, AppError> {
    let mut groups = memberships(store).await?;
    let rows = store.list_accounts().await?;
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let in_flight = gateway.in_flight(&ids).await;
    rows.iter()
        .map(|row| {
            view_of(row, groups.remove(&row.id).unwrap_or_default(), in_flight.get(&row.id).copied().unwrap_or(0))
        })
        .collect()
}

/// One page of the accounts `q` selects, in id order. Filtering happens in memory over a
/// single listing (a few thousand rows at most), so only the page's rows are turned into
/// views and only their loads are asked of the coordinator.
pub async fn query_accounts(store: &Store, gateway: &Gateway, q: &AccountQuery) -> Result<Page<AccountView>, AppError> {
    let page = q.page.unwrap_or(1).max(1);
    let page_size = q.page_size.unwrap_or(ACCOUNT_PAGE_SIZE).clamp(1, MAX_ACCOUNT_PAGE_SIZE);
    let text = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_lowercase);
    let now = OffsetDateTime::now_utc();
    let mut groups = memberships(store).await?;
    let mut selected = Vec::new();
    for row in store.list_accounts().await? {
        if q.platform.is_some_and(|p| row.platform != p.as_str()) || q.kind.is_some_and(|k| row.kind != k.as_str()) {
            continue;
        }
        if let Some(wanted) = q.status
            && state_of(&row, status_of(&row)?, now) != wanted
        {
            continue;
        }
        if q.group_id.is_some_and(|g| !groups.get(&row.id).is_some_and(|ids| ids.contains(&g))) {
            continue;
        }
        if text.as_deref().is_some_and(|t| !matches_text(&row, t)) {
            continue;
        }
        selected.push(row);
    }
    let total = i64::try_from(selected.len()).unwrap_or(i64::MAX);
    let skip = usize::try_from(u64::from(page - 1) * u64::from(page_size)).unwrap_or(usize::MAX);
    let rows: Vec<AccountRow> = selected.into_iter().skip(skip).take(page_size as usize).collect();
    let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
    let in_flight = if ids.is_empty() { HashMap::new() } else { gateway.in_flight(&ids).await };
    let items = rows
        .iter()
        .map(|row| {
            view_of(row, groups.remove(&row.id).unwrap_or_default(), in_flight.get(&row.id).copied().unwrap_or(0))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page::new(items, total, page, page_size))
}

/// `text` is lower-case: it matches the id exactly, or a part of the name or notes.
fn matches_text(row: &AccountRow, text: &str) -> bool {
    text.trim_start_matches('#').parse::<i64>().is_ok_and(|id| id == row.id)
        || row.name.to_lowercase().contains(text)
        || row.notes.to_lowercase().contains(text)
}

pub async fn get_account(store: &Store, gateway: &Gateway, id: i64) -> Result<AccountView, AppError> {
    let row = store.find_account(id).await?.ok_or_else(not_found)?;
    let in_flight = gateway.in_flight(&[id]).await.get(&id).copied().unwrap_or(0);
    view_of(&row, memberships(store).await?.remove(&id).unwrap_or_default(), in_flight)
}

pub(crate) async fn check_proxy(store: &Store, proxy_id: Option<i64>) -> Result<(), AppError> {
    match proxy_id {
        Some(id) if !store.proxy_exists(id).await? => {
            Err(AppError::Invalid(format!("proxy_id: proxy {id} does not exist")))
        }
        _ => Ok(()),
    }
}

/// Checks that every group exists and has the account's platform.
pub(crate) async fn check_groups(store: &Store, platform: Platform, group_ids: &[i64]) -> Result<(), AppError> {
    for id in group_ids {
        let group = store
            .find_group(*id)
            .await?
            .ok_or_else(|| AppError::Invalid(format!("group_ids: group {id} does not exist")))?;
        if group.platform != platform.as_str() {
            return Err(AppError::Invalid(format!(
                "group_ids: group {id} is for {}, the account is {}",
                group.platform,
                platform.as_str()
            )));
        }
    }
    Ok(())
}

pub(crate) fn to_new(
    fields: &AccountFields,
    credentials_encrypted: String,
    group_ids: Vec<i64>,
    oauth: Option<domain::account::OAuthInfo>,
) -> Result<NewAccount, AppError> {
    let extra = AccountExtra { base_url: fields.base_url.clone(), oauth };
    Ok(NewAccount {
        name: fields.name.clone(),
        notes: fields.notes.clone(),
        platform: fields.platform.as_str().to_owned(),
        kind: fields.kind.as_str().to_owned(),
        credentials_encrypted,
        extra: serde_json::to_string(&extra).map_err(|_| AppError::Internal)?,
        model_mapping: serde_json::to_string(&fields.model_mapping).map_err(|_| AppError::Internal)?,
        proxy_id: fields.proxy_id,
        concurrency: fields.concurrency,
        priority: fields.priority,
        schedulable: fields.schedulable,
        group_ids,
    })
}

fn seal(secrets: &SecretBox, api_key: &str) -> String {
    StoredCredentials::api_key(api_key).seal(secrets)
}

/// The upstream API key of an account, for the gateway and the account test.
pub fn open_api_key(secrets: &SecretBox, row: &AccountRow) -> Result<String, AppError> {
    StoredCredentials::open(secrets, &row.credentials_encrypted).map(|c| c.api_key).map_err(|e| {
        tracing::error!(account_id = row.id, error = %e, "cannot open stored credentials");
        AppError::Internal
    })
}

pub async fn create_account(store: &Store, secrets: &SecretBox, input: AccountInput) -> Result<AccountView, AppError> {
    let group_ids = dedup(input.group_ids.clone().unwrap_or_default());
    let fields = input.resolve(None).map_err(|e| AppError::Invalid(e.to_string()))?;
    check_groups(store, fields.platform, &group_ids).await?;
    check_proxy(store, fields.proxy_id).await?;
    let api_key =
        fields.api_key.as_deref().ok_or_else(|| AppError::Invalid("credentials.api_key: is required".into()))?;
    let row = store.create_account(&to_new(&fields, seal(secrets, api_key), group_ids.clone(), None)?).await?;
    view_of(&row, group_ids, 0)
}

pub async fn update_account(
    store: &Store,
    secrets: &SecretBox,
    id: i64,
    input: AccountInput,
) -> Result<AccountView, AppError> {
    let row = store.find_account(id).await?.ok_or_else(not_found)?;
    let current = fields_of(&row)?;
    let group_ids = match input.group_ids.clone() {
        Some(ids) => dedup(ids),
        None => memberships(store).await?.remove(&id).unwrap_or_default(),
    };
    let fields = input.resolve(Some(&current)).map_err(|e| AppError::Invalid(e.to_string()))?;
    check_groups(store, fields.platform, &group_ids).await?;
    check_proxy(store, fields.proxy_id).await?;
    let sealed = match &fields.api_key {
        Some(key) => seal(secrets, key),
        None => row.credentials_encrypted.clone(),
    };
    let row = store.update_account(id, &to_new(&fields, sealed, group_ids.clone(), oauth_of(&row)?)?).await?;
    view_of(&row, group_ids, 0)
}

/// Creates one account per key of `input`. Shared settings are checked once and fail the
/// whole import; a bad line is reported and the others still go in. Numbering continues
/// after the highest existing `<prefix>-<n>`, so a second import does not repeat names.
pub async fn bulk_import(
    store: &Store,
    secrets: &SecretBox,
    input: BulkImportInput,
) -> Result<BulkImportResult, AppError> {
    input.check().map_err(|e| AppError::Invalid(e.to_string()))?;
    let group_ids = dedup(input.group_ids.clone());
    check_groups(store, input.platform, &group_ids).await?;
    let prefix = format!("{}-", input.name_prefix.trim());
    let mut n = store
        .list_accounts()
        .await?
        .iter()
        .filter_map(|row| row.name.strip_prefix(&prefix)?.parse::<u64>().ok())
        .max()
        .unwrap_or(0);
    let mut result = BulkImportResult::default();
    let mut first_line: HashMap<&str, usize> = HashMap::new();
    for (line, key) in input.keys() {
        if let Some(first) = first_line.get(key) {
            result.errors.push(ImportLineError { line, message: format!("the same key as line {first}") });
            continue;
        }
        first_line.insert(key, line);
        let fields = match input.account_input(n + 1, key).resolve(None) {
            Ok(fields) => fields,
            Err(e) => {
                result.errors.push(ImportLineError { line, message: e.to_string() });
                continue;
            }
        };
        n += 1;
        let sealed = seal(secrets, fields.api_key.as_deref().unwrap_or(key));
        // A line that cannot be stored is reported like any other bad line, so the accounts
        // already created are in the result and a retry of the failed lines adds no duplicates.
        let stored = match to_new(&fields, sealed, group_ids.clone(), None) {
            Ok(new) => store.create_account(&new).await.map_err(AppError::from),
            Err(e) => Err(e),
        };
        match stored {
            Ok(row) => result.account_ids.push(row.id),
            Err(e) => result.errors.push(ImportLineError { line, message: format!("not stored: {e}") }),
        }
    }
    result.created = result.account_ids.len();
    Ok(result)
}

/// Enables (`active`, clearing any recorded error) or disables many accounts at once.
pub async fn bulk_set_status(store: &Store, input: BulkStatusInput) -> Result<BulkStatusResult, AppError> {
    input.check().map_err(|e| AppError::Invalid(e.to_string()))?;
    let updated = store.set_accounts_status(&dedup(input.ids), input.status.as_str()).await?;
    Ok(BulkStatusResult { updated })
}

pub async fn delete_account(store: &Store, id: i64) -> Result<(), AppError> {
    if store.delete_account(id).await? { Ok(()) } else { Err(not_found()) }
}

pub async fn clear_error(store: &Store, gateway: &Gateway, id: i64) -> Result<AccountView, AppError> {
    store.find_account(id).await?.ok_or_else(not_found)?;
    store.set_account_status(id, domain::AccountStatus::Active.as_str(), "").await?;
    get_account(store, gateway, id).await
}

/// Ends the account's rate limit and overload cooldowns, stored and in force.
pub async fn clear_rate_limit(store: &Store, gateway: &Gateway, id: i64) -> Result<AccountView, AppError> {
    store.find_account(id).await?.ok_or_else(not_found)?;
    store.set_account_cooldowns(id, None, None).await?;
    gateway.clear_cooldowns(id).await;
    get_account(store, gateway, id).await
}

pub async fn set_schedulable(
    store: &Store,
    gateway: &Gateway,
    id: i64,
    schedulable: bool,
) -> Result<AccountView, AppError> {
    store.find_account(id).await?.ok_or_else(not_found)?;
    store.set_account_schedulable(id, schedulable).await?;
    get_account(store, gateway, id).await
}

/// Sends a small prompt through the account and reports what came back.
pub async fn test_account(
    store: &Store,
    gateway: &Gateway,
    id: i64,
    model: Option<String>,
) -> Result<domain::AccountTestResult, AppError> {
    use proxy::gateway::account_test::TestError;
    match gateway.test_account(id, model).await {
        Ok(result) => Ok(result),
        Err(e @ TestError::ModelNotServed(_)) => Err(AppError::Invalid(format!("model: {e}"))),
        // Stored but not in the gateway's snapshot: say why instead of "not found".
        Err(TestError::NotFound) => match store.find_account(id).await? {
            None => Err(not_found()),
            Some(row) if row.proxy_id.is_some() => Err(AppError::Invalid(
                "the account's proxy is disabled or missing, so the gateway does not use the account; \
                 enable the proxy or remove it from the account"
                    .into(),
            )),
            Some(_) => Err(AppError::Invalid(
                "the gateway cannot open this account's stored credential (see the server log); save it again".into(),
            )),
        },
    }
}

pub(crate) fn dedup(mut ids: Vec<i64>) -> Vec<i64> {
    ids.sort_unstable();
    ids.dedup();
    ids
}
