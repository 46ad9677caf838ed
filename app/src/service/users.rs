//! Users and their gateway API keys, shared by the admin REST API and the UI pages.

use std::collections::HashMap;

use domain::api_key::{ApiKeyListing, UsageSummary};
use domain::user::UserListing;
use domain::{ApiKeyInput, ApiKeyStatus, ApiKeyView, CreatedApiKey, UserInput, UserRole, UserStatus, UserView};
use store::repo::NewUser;
use store::secret::{hash_password, random_token, sha256_hex};
use store::{ApiKeyFields, Store, UserUpdate};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AppError;

/// Gateway keys are `sk-` and 64 hex characters (256 random bits).
pub const KEY_PREFIX: &str = "sk-";
/// How much of a key is kept for display.
const DISPLAY_PREFIX_LEN: usize = 10;

fn user_not_found() -> AppError {
    AppError::NotFound("user".into())
}

fn key_not_found() -> AppError {
    AppError::NotFound("API key".into())
}

fn email_taken(err: store::StoreError) -> AppError {
    match err {
        store::StoreError::Conflict(_) => AppError::Invalid("email: a user with this email already exists".into()),
        other => other.into(),
    }
}

async fn hash(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|_| AppError::Internal)?
        .map_err(|_| AppError::Internal)
}

pub async fn list_users(store: &Store) -> Result<Vec<UserView>, AppError> {
    store.list_users().await?.iter().map(|u| Ok(u.view()?)).collect()
}

pub async fn get_user(store: &Store, id: i64) -> Result<UserView, AppError> {
    Ok(store.find_user(id).await?.ok_or_else(user_not_found)?.view()?)
}

pub async fn create_user(store: &Store, mut input: UserInput) -> Result<UserView, AppError> {
    // A user created without a concurrency gets the operator's default from Settings.
    if input.concurrency.is_none() {
        input.concurrency = Some(crate::service::settings::default_user_concurrency(store).await?);
    }
    let fields = input.resolve(None).map_err(|e| AppError::Invalid(e.to_string()))?;
    let password = fields.password.ok_or_else(|| AppError::Invalid("password: is required".into()))?;
    let user = NewUser {
        email: fields.email,
        password_hash: hash(password).await?,
        role: fields.role,
        status: fields.status,
        concurrency: fields.concurrency,
    };
    Ok(store.create_user(&user).await.map_err(email_taken)?.view()?)
}

pub async fn update_user(store: &Store, id: i64, input: UserInput) -> Result<UserView, AppError> {
    let current = get_user(store, id).await?;
    let fields = input.resolve(Some(&current)).map_err(|e| AppError::Invalid(e.to_string()))?;
    let stays_admin = fields.role == UserRole::Admin && fields.status == UserStatus::Active;
    if is_active_admin(&current) && !stays_admin {
        ensure_another_admin(store).await?;
    }
    let update =
        UserUpdate { email: fields.email, role: fields.role, status: fields.status, concurrency: fields.concurrency };
    let row = store.update_user(id, &update).await.map_err(email_taken)?;
    if let Some(password) = fields.password {
        store.set_password_hash(id, &hash(password).await?).await?;
    }
    Ok(row.view()?)
}

pub async fn delete_user(store: &Store, id: i64) -> Result<(), AppError> {
    let current = get_user(store, id).await?;
    if is_active_admin(&current) {
        ensure_another_admin(store).await?;
    }
    if store.delete_user(id).await? { Ok(()) } else { Err(user_not_found()) }
}

fn is_active_admin(user: &UserView) -> bool {
    user.role == UserRole::Admin && user.status == UserStatus::Active
}

async fn ensure_another_admin(store: &Store) -> Result<(), AppError> {
    if store.count_active_admins().await? <= 1 {
        return Err(AppError::Invalid("role: the last active administrator cannot be removed or demoted".into()));
    }
    Ok(())
}

fn parse_expiry(raw: Option<String>, current: Option<OffsetDateTime>) -> Result<Option<OffsetDateTime>, AppError> {
    match raw {
        None => Ok(current),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => OffsetDateTime::parse(s.trim(), &Rfc3339)
            .map(Some)
            .map_err(|_| AppError::Invalid("expires_at: must be an RFC 3339 time such as 2027-01-31T00:00:00Z".into())),
    }
}

async fn check_group(store: &Store, group_id: Option<i64>) -> Result<(), AppError> {
    if let Some(id) = group_id {
        store.find_group(id).await?.ok_or_else(|| AppError::Invalid(format!("group_id: group {id} does not exist")))?;
    }
    Ok(())
}

fn key_fields(input: ApiKeyInput, current: Option<&store::ApiKeyRow>) -> Result<ApiKeyFields, AppError> {
    let name = input.name.map(|n| n.trim().to_owned()).or(current.map(|c| c.name.clone())).unwrap_or_default();
    if name.is_empty() || name.len() > 100 {
        return Err(AppError::Invalid("name: must be 1 to 100 characters".into()));
    }
    let status = match (input.status, current) {
        (Some(s), _) => s,
        (None, Some(c)) => c.status.parse().map_err(|_| AppError::Internal)?,
        (None, None) => ApiKeyStatus::Active,
    };
    Ok(ApiKeyFields {
        name,
        group_id: input.group_id.unwrap_or(current.and_then(|c| c.group_id)),
        status,
        concurrency: input.concurrency.or(current.map(|c| c.concurrency)).unwrap_or(0).max(0),
        expires_at: parse_expiry(input.expires_at, current.and_then(|c| c.expires_at))?,
    })
}

/// Creates a key for `user_id` and returns it in full, the only time it is shown.
pub async fn create_api_key(store: &Store, user_id: i64, input: ApiKeyInput) -> Result<CreatedApiKey, AppError> {
    store.find_user(user_id).await?.ok_or_else(user_not_found)?;
    let fields = key_fields(input, None)?;
    check_group(store, fields.group_id).await?;
    let key = format!("{KEY_PREFIX}{}", random_token(32));
    let row = store.create_api_key(user_id, &sha256_hex(&key), &key[..DISPLAY_PREFIX_LEN], &fields).await?;
    Ok(CreatedApiKey { view: row.view()?, key })
}

pub async fn list_api_keys(store: &Store, user_id: Option<i64>) -> Result<Vec<ApiKeyView>, AppError> {
    if let Some(id) = user_id {
        store.find_user(id).await?.ok_or_else(user_not_found)?;
    }
    store.list_api_keys(user_id).await?.iter().map(|k| Ok(k.view()?)).collect()
}

pub async fn update_api_key(store: &Store, id: i64, input: ApiKeyInput) -> Result<ApiKeyView, AppError> {
    let current = store.find_api_key(id).await?.ok_or_else(key_not_found)?;
    let fields = key_fields(input, Some(&current))?;
    check_group(store, fields.group_id).await?;
    Ok(store.update_api_key(id, &fields).await?.view()?)
}

pub async fn delete_api_key(store: &Store, id: i64) -> Result<(), AppError> {
    if store.delete_api_key(id).await? { Ok(()) } else { Err(key_not_found()) }
}

/// Usage since midnight UTC, per key and per user.
struct TodayUsage {
    by_key: HashMap<i64, UsageSummary>,
    by_user: HashMap<i64, UsageSummary>,
}

async fn today_usage(store: &Store) -> Result<TodayUsage, AppError> {
    let midnight = OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
    let mut usage = TodayUsage { by_key: HashMap::new(), by_user: HashMap::new() };
    for row in store.usage_by_key_since(midnight).await? {
        let summary = UsageSummary { requests: row.requests, tokens: row.tokens, cost: row.actual_cost };
        if let Some(key) = row.api_key_id {
            usage.by_key.entry(key).or_default().add(summary);
        }
        if let Some(user) = row.user_id {
            usage.by_user.entry(user).or_default().add(summary);
        }
    }
    Ok(usage)
}

/// Every user with their key count and today's usage.
pub async fn list_user_listings(store: &Store) -> Result<Vec<UserListing>, AppError> {
    let mut key_counts: HashMap<i64, i64> = HashMap::new();
    for key in store.list_api_keys(None).await? {
        *key_counts.entry(key.user_id).or_default() += 1;
    }
    let usage = today_usage(store).await?;
    list_users(store)
        .await?
        .into_iter()
        .map(|user| {
            Ok(UserListing {
                api_key_count: key_counts.get(&user.id).copied().unwrap_or(0),
                today: usage.by_user.get(&user.id).copied().unwrap_or_default(),
                user,
            })
        })
        .collect()
}

/// The keys (of one user, or all) with owner, group and today's usage.
pub async fn list_key_listings(store: &Store, user_id: Option<i64>) -> Result<Vec<ApiKeyListing>, AppError> {
    let keys = list_api_keys(store, user_id).await?;
    let emails: HashMap<i64, String> = store.list_users().await?.into_iter().map(|u| (u.id, u.email)).collect();
    let groups: HashMap<i64, store::GroupRow> = store.list_groups().await?.into_iter().map(|g| (g.id, g)).collect();
    let usage = today_usage(store).await?;
    keys.into_iter()
        .map(|key| {
            let group = key.group_id.and_then(|id| groups.get(&id));
            Ok(ApiKeyListing {
                user_email: emails.get(&key.user_id).cloned().unwrap_or_default(),
                group_name: group.map(|g| g.name.clone()),
                group_platform: group.map(|g| g.fields()).transpose()?.map(|f| f.platform),
                today: usage.by_key.get(&key.id).copied().unwrap_or_default(),
                key,
            })
        })
        .collect()
}

/// The address clients should use for the gateway: the `site.public_base_url` setting, or
/// else `http://` and the host the admin reached this server by.
pub async fn public_base_url(store: &Store, request_host: Option<&str>) -> Result<String, AppError> {
    let configured = store.get_setting(domain::settings::keys::PUBLIC_BASE_URL).await?;
    if let Some(url) = configured.map(|u| u.trim().trim_end_matches('/').to_owned()).filter(|u| !u.is_empty()) {
        return Ok(url);
    }
    // The Host header is the client's word: anything that is not a plain host[:port] is not
    // worth echoing into snippets meant for pasting into a shell.
    let plain = |h: &&str| {
        !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    };
    Ok(format!("http://{}", request_host.filter(plain).unwrap_or("localhost")))
}
