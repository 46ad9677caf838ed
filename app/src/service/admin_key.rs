//! The admin API key (`admin-…`) that automation sends as `x-api-key`. Only its SHA-256 and
//! a short display prefix are stored; the key itself is shown once when generated.

use store::Store;
use store::secret::{constant_time_eq, random_token, sha256_hex};

use crate::AppError;

const HASH_KEY: &str = "admin_api_key_hash";
const PREFIX_KEY: &str = "admin_api_key_prefix";
pub const PREFIX: &str = "admin-";

/// Generates, stores and returns a new key, replacing any previous one.
pub async fn regenerate(store: &Store) -> Result<String, AppError> {
    let key = format!("{PREFIX}{}", random_token(32));
    install(store, &key).await?;
    Ok(key)
}

/// Stores `key` (which must start with `admin-` and be long enough) as the admin API key.
pub async fn install(store: &Store, key: &str) -> Result<(), AppError> {
    if !key.starts_with(PREFIX) || key.len() < PREFIX.len() + 32 || !key.is_ascii() || key.contains(char::is_whitespace)
    {
        return Err(AppError::Invalid(format!(
            "the admin API key must start with `{PREFIX}` and have at least 32 ASCII characters after it"
        )));
    }
    store.put_setting(HASH_KEY, &sha256_hex(key)).await?;
    store.put_setting(PREFIX_KEY, key.get(..PREFIX.len() + 6).unwrap_or(PREFIX)).await?;
    Ok(())
}

/// The display prefix of the current key, if one is set.
pub async fn current_prefix(store: &Store) -> Result<Option<String>, AppError> {
    Ok(store.get_setting(PREFIX_KEY).await?)
}

/// `Ok(true)` when `presented` is the current admin API key.
pub async fn verify(store: &Store, presented: &str) -> Result<bool, AppError> {
    if !presented.starts_with(PREFIX) {
        return Ok(false);
    }
    let Some(stored) = store.get_setting(HASH_KEY).await? else {
        return Ok(false);
    };
    Ok(constant_time_eq(&stored, &sha256_hex(presented)))
}
