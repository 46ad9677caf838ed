//! Run-time settings, shared by the Settings page and `/api/v1/admin/settings`. A value an
//! administrator never stored shows (and applies) as configured in the file.

use domain::settings::{DEFAULT_SITE_NAME, Settings, SettingsInput, keys};
use proxy::gateway::GatewayConfig;
use store::Store;

use crate::AppError;

async fn stored<T: std::str::FromStr>(store: &Store, key: &str) -> Result<Option<T>, AppError> {
    Ok(store.get_setting(key).await?.and_then(|v| v.trim().parse().ok()))
}

/// Every setting with the value in force. `config` is the configuration file's gateway
/// section, the fallback for values never stored.
pub async fn get_settings(store: &Store, config: &GatewayConfig) -> Result<Settings, AppError> {
    Ok(Settings {
        site_name: stored(store, keys::SITE_NAME).await?.unwrap_or_else(|| DEFAULT_SITE_NAME.to_owned()),
        public_base_url: stored(store, keys::PUBLIC_BASE_URL).await?.unwrap_or_default(),
        default_user_concurrency: stored(store, keys::DEFAULT_USER_CONCURRENCY)
            .await?
            .unwrap_or(domain::user::DEFAULT_USER_CONCURRENCY),
        max_account_switches: stored(store, keys::MAX_ACCOUNT_SWITCHES).await?.unwrap_or(config.max_account_switches),
        sticky_ttl_seconds: stored(store, keys::STICKY_TTL_SECONDS).await?.unwrap_or(config.sticky_ttl.as_secs()),
        wait_timeout_seconds: stored(store, keys::WAIT_TIMEOUT_SECONDS).await?.unwrap_or(config.wait_timeout.as_secs()),
        max_extra_waiters: stored(store, keys::MAX_EXTRA_WAITERS).await?.unwrap_or(config.max_extra_waiters),
        overload_cooldown_minutes: stored(store, keys::OVERLOAD_COOLDOWN_MINUTES)
            .await?
            .unwrap_or(config.cooldown.overload_cooldown_minutes),
        fallback_cooldown_seconds: stored(store, keys::FALLBACK_COOLDOWN_SECONDS)
            .await?
            .unwrap_or(config.cooldown.fallback_cooldown_seconds),
        window_threshold_percent: stored(store, keys::WINDOW_THRESHOLD_PERCENT)
            .await?
            .unwrap_or(config.window_threshold_percent),
    })
}

/// Validates and stores the fields present, then returns every setting. The caller's
/// snapshot reload (after any admin change) puts the gateway values in force.
pub async fn update_settings(
    store: &Store,
    config: &GatewayConfig,
    input: SettingsInput,
) -> Result<Settings, AppError> {
    let rows = input.to_rows().map_err(|e| AppError::Invalid(e.to_string()))?;
    for (key, value) in rows {
        if value.is_empty() {
            store.delete_setting(key).await?;
        } else {
            store.put_setting(key, &value).await?;
        }
    }
    get_settings(store, config).await
}

/// The base URL users should configure: the stored public base URL, or `fallback` (derived
/// from the request the admin UI came in on).
pub async fn public_base_url(store: &Store, fallback: &str) -> Result<String, AppError> {
    let stored: Option<String> = stored(store, keys::PUBLIC_BASE_URL).await?;
    Ok(stored.filter(|s| !s.is_empty()).unwrap_or_else(|| fallback.trim_end_matches('/').to_owned()))
}

/// The default concurrency for users created without one.
pub async fn default_user_concurrency(store: &Store) -> Result<i32, AppError> {
    Ok(stored(store, keys::DEFAULT_USER_CONCURRENCY).await?.unwrap_or(domain::user::DEFAULT_USER_CONCURRENCY))
}
