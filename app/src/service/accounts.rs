//! Upstream account management, shared by the admin REST API and the Accounts page.
//! Credentials are sealed here before they reach the store and are never returned.

use std::collections::HashMap;

use domain::{AccountFields, AccountInput, AccountView, Platform};
use proxy::gateway::Gateway;
use store::cipher::SecretBox;
use store::credentials::{AccountExtra, StoredCredentials};
use store::{AccountRow, NewAccount, Store};

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

fn view_of(row: &AccountRow, group_ids: Vec<i64>, in_flight: u32) -> Result<AccountView, AppError> {
    let f = fields_of(row)?;
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
        status: row.status.parse().map_err(|_| corrupt("status"))?,
        error_message: row.error_message.clone(),
        schedulable: f.schedulable,
        rate_limit_reset_at: row.rate_limit_reset_at.map(store::repo::rfc3339),
        overload_until: row.overload_until.map(store::repo::rfc3339),
        last_used_at: row.last_used_at.map(store::repo::rfc3339),
        proxy_id: f.proxy_id,
        group_ids,
        in_flight,
        created_at: store::repo::rfc3339(row.created_at),
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

pub async fn get_account(store: &Store, gateway: &Gateway, id: i64) -> Result<AccountView, AppError> {
    let row = store.find_account(id).await?.ok_or_else(not_found)?;
    let in_flight = gateway.in_flight(&[id]).await.get(&id).copied().unwrap_or(0);
    view_of(&row, memberships(store).await?.remove(&id).unwrap_or_default(), in_flight)
}

async fn check_proxy(store: &Store, proxy_id: Option<i64>) -> Result<(), AppError> {
    match proxy_id {
        Some(id) if !store.proxy_exists(id).await? => {
            Err(AppError::Invalid(format!("proxy_id: proxy {id} does not exist")))
        }
        _ => Ok(()),
    }
}

/// Checks that every group exists and has the account's platform.
async fn check_groups(store: &Store, platform: Platform, group_ids: &[i64]) -> Result<(), AppError> {
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

fn to_new(fields: &AccountFields, credentials_encrypted: String, group_ids: Vec<i64>) -> Result<NewAccount, AppError> {
    let extra = AccountExtra { base_url: fields.base_url.clone() };
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
    StoredCredentials { api_key: api_key.to_owned() }.seal(secrets)
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
    let row = store.create_account(&to_new(&fields, seal(secrets, api_key), group_ids.clone())?).await?;
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
    let row = store.update_account(id, &to_new(&fields, sealed, group_ids.clone())?).await?;
    view_of(&row, group_ids, 0)
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
    gateway: &Gateway,
    id: i64,
    model: Option<String>,
) -> Result<domain::AccountTestResult, AppError> {
    use proxy::gateway::account_test::TestError;
    gateway.test_account(id, model).await.map_err(|e| match e {
        TestError::NotFound => not_found(),
        TestError::ModelNotServed(_) => AppError::Invalid(format!("model: {e}")),
    })
}

fn dedup(mut ids: Vec<i64>) -> Vec<i64> {
    ids.sort_unstable();
    ids.dedup();
    ids
}
