//! Outbound proxy management, shared by the admin REST API and the Proxies page: CRUD, the
//! connectivity test and its probe URL. Passwords are sealed here before they reach the
//! store and are never returned or logged.

use std::collections::HashMap;
use std::time::Duration;

use domain::NamedId;
use domain::proxies::{
    DEFAULT_PROBE_URL, PROBE_URL_SETTING, ProxyFields, ProxyInput, ProxyTestResult, ProxyView, validate_probe_url,
};
use proxy::outbound::{self, ProxyTarget};
use store::cipher::SecretBox;
use store::{NewProxy, ProxyRow, Store};

use crate::AppError;

/// How long a proxy test may take in all.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

fn not_found() -> AppError {
    AppError::NotFound("proxy".into())
}

fn view_of(row: &ProxyRow, accounts: Vec<NamedId>) -> Result<ProxyView, AppError> {
    let f = row.fields()?;
    Ok(ProxyView {
        id: row.id,
        name: f.name,
        protocol: f.protocol,
        host: f.host,
        port: f.port,
        username: f.username,
        has_password: !row.password_encrypted.is_empty(),
        status: f.status,
        account_count: row.account_count,
        accounts,
        created_at: store::repo::rfc3339(row.created_at),
    })
}

/// The accounts of every proxy, by proxy id, in account id order.
async fn accounts_by_proxy(store: &Store) -> Result<HashMap<i64, Vec<NamedId>>, AppError> {
    let mut by_proxy: HashMap<i64, Vec<NamedId>> = HashMap::new();
    for account in store.list_accounts().await? {
        if let Some(proxy_id) = account.proxy_id {
            by_proxy.entry(proxy_id).or_default().push(NamedId { id: account.id, name: account.name });
        }
    }
    Ok(by_proxy)
}

pub async fn list_proxies(store: &Store) -> Result<Vec<ProxyView>, AppError> {
    let mut accounts = accounts_by_proxy(store).await?;
    store.list_proxies().await?.iter().map(|row| view_of(row, accounts.remove(&row.id).unwrap_or_default())).collect()
}

pub async fn get_proxy(store: &Store, id: i64) -> Result<ProxyView, AppError> {
    let row = store.find_proxy(id).await?.ok_or_else(not_found)?;
    view_of(&row, accounts_by_proxy(store).await?.remove(&id).unwrap_or_default())
}

/// The sealed password to store: a new one sealed, `""` for none, or what is stored now.
fn sealed_password(secrets: &SecretBox, fields: &ProxyFields, stored: &str) -> String {
    match fields.password.as_deref() {
        None => stored.to_owned(),
        Some("") => String::new(),
        Some(password) => secrets.seal_str(password),
    }
}

pub async fn create_proxy(store: &Store, secrets: &SecretBox, input: ProxyInput) -> Result<ProxyView, AppError> {
    let fields = input.resolve(None).map_err(|e| AppError::Invalid(e.to_string()))?;
    let password_encrypted = sealed_password(secrets, &fields, "");
    let row = store.create_proxy(&NewProxy { fields, password_encrypted }).await?;
    view_of(&row, Vec::new())
}

pub async fn update_proxy(
    store: &Store,
    secrets: &SecretBox,
    id: i64,
    input: ProxyInput,
) -> Result<ProxyView, AppError> {
    let row = store.find_proxy(id).await?.ok_or_else(not_found)?;
    let fields = input.resolve(Some(&row.fields()?)).map_err(|e| AppError::Invalid(e.to_string()))?;
    let password_encrypted = sealed_password(secrets, &fields, &row.password_encrypted);
    store.update_proxy(id, &NewProxy { fields, password_encrypted }).await?;
    get_proxy(store, id).await
}

/// Deletes the proxy; the accounts that used it go direct from then on.
pub async fn delete_proxy(store: &Store, id: i64) -> Result<(), AppError> {
    if store.delete_proxy(id).await? { Ok(()) } else { Err(not_found()) }
}

/// The URL proxy tests fetch.
pub async fn probe_url(store: &Store) -> Result<String, AppError> {
    Ok(store.get_setting(PROBE_URL_SETTING).await?.unwrap_or_else(|| DEFAULT_PROBE_URL.to_owned()))
}

/// Stores the URL proxy tests fetch and returns it as stored (trimmed).
pub async fn set_probe_url(store: &Store, url: &str) -> Result<String, AppError> {
    let url = validate_probe_url(url).map_err(|e| AppError::Invalid(e.to_string()))?;
    store.put_setting(PROBE_URL_SETTING, &url).await?;
    Ok(url)
}

/// Fetches the probe URL through proxy `id` (disabled or not) and reports the latency or
/// what went wrong.
pub async fn test_proxy(store: &Store, secrets: &SecretBox, id: i64) -> Result<ProxyTestResult, AppError> {
    let row = store.find_proxy(id).await?.ok_or_else(not_found)?;
    let fields = row.fields()?;
    let password = match row.password_encrypted.as_str() {
        "" => String::new(),
        sealed => secrets.open_string(sealed).map_err(|e| {
            tracing::error!(proxy_id = id, error = %e, "cannot open a stored proxy password");
            AppError::Internal
        })?,
    };
    let target = ProxyTarget {
        protocol: fields.protocol,
        host: fields.host,
        port: fields.port,
        username: fields.username,
        password,
    };
    let url = probe_url(store).await?;
    let result = outbound::probe(&target, &url, TEST_TIMEOUT).await;
    tracing::info!(proxy_id = id, ok = result.ok, latency_ms = result.latency_ms, "proxy tested");
    Ok(result)
}
