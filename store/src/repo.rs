//! Repository traits (what the rest of the program may ask of the database) and the row
//! structs they return. Implemented once per backend in `sql.rs`.

use async_trait::async_trait;
use domain::{DashboardStats, UserRole, UserStatus, UserView};
use time::OffsetDateTime;

use crate::{StoreError, StoreResult};

/// A `users` row as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub status: String,
    pub concurrency: i32,
    pub last_login_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

impl UserRow {
    pub fn role(&self) -> StoreResult<UserRole> {
        self.role.parse().map_err(|e: domain::UnknownVariant| StoreError::Corrupt(e.to_string()))
    }

    pub fn status(&self) -> StoreResult<UserStatus> {
        self.status.parse().map_err(|e: domain::UnknownVariant| StoreError::Corrupt(e.to_string()))
    }

    pub fn is_active_admin(&self) -> bool {
        matches!((self.role(), self.status()), (Ok(UserRole::Admin), Ok(UserStatus::Active)))
    }

    pub fn view(&self) -> StoreResult<UserView> {
        Ok(UserView {
            id: self.id,
            email: self.email.clone(),
            role: self.role()?,
            status: self.status()?,
            concurrency: self.concurrency,
        })
    }
}

/// Input for `UserRepo::create_user`; the email must already be normalised.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub password_hash: String,
    pub role: UserRole,
    pub status: UserStatus,
    pub concurrency: i32,
}

#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Fails with `Conflict("user")` when the email is taken.
    async fn create_user(&self, user: &NewUser) -> StoreResult<UserRow>;
    async fn find_user(&self, id: i64) -> StoreResult<Option<UserRow>>;
    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRow>>;
    /// Admins whose status is `active`.
    async fn count_active_admins(&self) -> StoreResult<i64>;
    /// Fails with `NotFound("user")` when no such user exists.
    async fn set_password_hash(&self, user_id: i64, password_hash: &str) -> StoreResult<()>;
    async fn record_login(&self, user_id: i64, at: OffsetDateTime) -> StoreResult<()>;
    async fn list_users(&self) -> StoreResult<Vec<UserRow>>;
    /// Updates everything but the password. `NotFound("user")` or `Conflict("user")`.
    async fn update_user(&self, id: i64, user: &UserUpdate) -> StoreResult<UserRow>;
    /// `Ok(true)` when a user was deleted (with their API keys).
    async fn delete_user(&self, id: i64) -> StoreResult<bool>;
}

/// Input for `UserRepo::update_user`; the email must already be normalised.
#[derive(Debug, Clone)]
pub struct UserUpdate {
    pub email: String,
    pub role: UserRole,
    pub status: UserStatus,
    pub concurrency: i32,
}

/// An `api_keys` row. The key itself is never stored, only its SHA-256.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: i64,
    pub user_id: i64,
    pub key_hash: String,
    pub key_prefix: String,
    pub name: String,
    pub group_id: Option<i64>,
    pub status: String,
    pub concurrency: i32,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

impl ApiKeyRow {
    pub fn view(&self) -> StoreResult<domain::ApiKeyView> {
        Ok(domain::ApiKeyView {
            id: self.id,
            user_id: self.user_id,
            name: self.name.clone(),
            key_prefix: self.key_prefix.clone(),
            group_id: self.group_id,
            status: self.status.parse().map_err(|e: domain::UnknownVariant| StoreError::Corrupt(e.to_string()))?,
            concurrency: self.concurrency,
            expires_at: self.expires_at.map(rfc3339),
            last_used_at: self.last_used_at.map(rfc3339),
            created_at: rfc3339(self.created_at),
        })
    }
}

/// What `create_api_key` / `update_api_key` write (hash and prefix only on create).
#[derive(Debug, Clone)]
pub struct ApiKeyFields {
    pub name: String,
    pub group_id: Option<i64>,
    pub status: domain::ApiKeyStatus,
    /// In-flight gateway requests allowed with this key; ≤ 0 is unlimited.
    pub concurrency: i32,
    pub expires_at: Option<OffsetDateTime>,
}

#[async_trait]
pub trait ApiKeyRepo: Send + Sync {
    async fn create_api_key(
        &self,
        user_id: i64,
        key_hash: &str,
        key_prefix: &str,
        fields: &ApiKeyFields,
    ) -> StoreResult<ApiKeyRow>;
    async fn find_api_key(&self, id: i64) -> StoreResult<Option<ApiKeyRow>>;
    /// The key whose SHA-256 is `key_hash`.
    async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRow>>;
    async fn list_api_keys(&self, user_id: Option<i64>) -> StoreResult<Vec<ApiKeyRow>>;
    async fn update_api_key(&self, id: i64, fields: &ApiKeyFields) -> StoreResult<ApiKeyRow>;
    async fn delete_api_key(&self, id: i64) -> StoreResult<bool>;
    /// Stamps `last_used_at` (written with usage rows, off the hot path).
    async fn touch_api_keys_used(&self, ids: &[i64], used_at: OffsetDateTime) -> StoreResult<()>;
    /// Usage recorded at or after `since`, one row per (user, key) pair that has any, so the
    /// key and user lists can show it without a query per row.
    async fn usage_by_key_since(&self, since: OffsetDateTime) -> StoreResult<Vec<KeyUsageRow>>;
}

/// What one key of one user recorded in a period. Either id is `None` for usage rows whose
/// key or user was deleted since.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct KeyUsageRow {
    pub user_id: Option<i64>,
    pub api_key_id: Option<i64>,
    pub requests: i64,
    /// Input, output and cache tokens together.
    pub tokens: i64,
    pub actual_cost: f64,
}

/// Key/value settings that the admin can change at run time.
#[async_trait]
pub trait SettingRepo: Send + Sync {
    async fn get_setting(&self, key: &str) -> StoreResult<Option<String>>;
    async fn put_setting(&self, key: &str, value: &str) -> StoreResult<()>;
    /// `Ok(true)` when a value was removed.
    async fn delete_setting(&self, key: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait StatsRepo: Send + Sync {
    /// Live figures for the dashboard as of `now`: cooldowns are judged against it, "today"
    /// starts at its UTC midnight and the last hour is the 60 minutes up to its minute.
    /// `last_hour` lists only minutes with traffic.
    async fn dashboard_stats(&self, now: OffsetDateTime) -> StoreResult<DashboardStats>;
}

/// Persistence for admin sign-in sessions; see `session::DbSessionStore`.
#[async_trait]
pub trait SessionRepo: Send + Sync {
    /// Inserts a new session; `Ok(false)` when the id is already taken.
    async fn insert_session(&self, id: &str, data: &[u8], expiry: OffsetDateTime) -> StoreResult<bool>;
    async fn upsert_session(&self, id: &str, data: &[u8], expiry: OffsetDateTime) -> StoreResult<()>;
    /// The session's data if it exists and has not expired at `now`.
    async fn load_session(&self, id: &str, now: OffsetDateTime) -> StoreResult<Option<Vec<u8>>>;
    async fn delete_session(&self, id: &str) -> StoreResult<()>;
    /// Removes sessions that expired before `now`; returns how many.
    async fn delete_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64>;
}

/// A `groups` row with its member and key counts.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub platform: String,
    pub rate_multiplier: f64,
    pub created_at: OffsetDateTime,
    pub account_count: i64,
    pub api_key_count: i64,
}

impl GroupRow {
    pub fn fields(&self) -> StoreResult<domain::GroupFields> {
        Ok(domain::GroupFields {
            name: self.name.clone(),
            description: self.description.clone(),
            platform: self.platform.parse().map_err(|e: domain::UnknownVariant| StoreError::Corrupt(e.to_string()))?,
            rate_multiplier: self.rate_multiplier,
        })
    }

    pub fn view(&self) -> StoreResult<domain::GroupView> {
        let fields = self.fields()?;
        Ok(domain::GroupView {
            id: self.id,
            name: fields.name,
            description: fields.description,
            platform: fields.platform,
            rate_multiplier: fields.rate_multiplier,
            account_count: self.account_count,
            api_key_count: self.api_key_count,
            created_at: rfc3339(self.created_at),
        })
    }
}

/// Formats a stored timestamp for the API (RFC 3339, UTC).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[async_trait]
pub trait GroupRepo: Send + Sync {
    /// Fails with `Conflict("group")` when the name is taken.
    async fn create_group(&self, group: &domain::GroupFields) -> StoreResult<GroupRow>;
    async fn find_group(&self, id: i64) -> StoreResult<Option<GroupRow>>;
    async fn list_groups(&self) -> StoreResult<Vec<GroupRow>>;
    /// Fails with `NotFound("group")` or `Conflict("group")`.
    async fn update_group(&self, id: i64, group: &domain::GroupFields) -> StoreResult<GroupRow>;
    /// `Ok(true)` when a group was deleted. Its keys become ungrouped; memberships go.
    async fn delete_group(&self, id: i64) -> StoreResult<bool>;
}

/// An `accounts` row as stored. `credentials_encrypted` is sealed; `extra` and
/// `model_mapping` are JSON text.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub id: i64,
    pub name: String,
    pub notes: String,
    pub platform: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub credentials_encrypted: String,
    pub extra: String,
    pub model_mapping: String,
    pub proxy_id: Option<i64>,
    pub concurrency: i32,
    pub priority: i32,
    pub status: String,
    pub error_message: String,
    pub schedulable: bool,
    pub rate_limit_reset_at: Option<OffsetDateTime>,
    pub overload_until: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    /// JSON array of `domain::account::UsageWindow`.
    pub usage_windows: String,
}

/// What `create_account` / `update_account` write. On update `platform` and `kind` are
/// ignored (they never change) and `group_ids` replaces the memberships.
#[derive(Clone)]
pub struct NewAccount {
    pub name: String,
    pub notes: String,
    pub platform: String,
    pub kind: String,
    pub credentials_encrypted: String,
    pub extra: String,
    pub model_mapping: String,
    pub proxy_id: Option<i64>,
    pub concurrency: i32,
    pub priority: i32,
    pub schedulable: bool,
    pub group_ids: Vec<i64>,
}

#[async_trait]
pub trait AccountRepo: Send + Sync {
    async fn create_account(&self, account: &NewAccount) -> StoreResult<AccountRow>;
    async fn find_account(&self, id: i64) -> StoreResult<Option<AccountRow>>;
    async fn list_accounts(&self) -> StoreResult<Vec<AccountRow>>;
    /// Fails with `NotFound("account")`.
    async fn update_account(&self, id: i64, account: &NewAccount) -> StoreResult<AccountRow>;
    /// `Ok(true)` when an account was deleted (its memberships go with it).
    async fn delete_account(&self, id: i64) -> StoreResult<bool>;
    /// Every (account id, group id) membership.
    async fn account_memberships(&self) -> StoreResult<Vec<(i64, i64)>>;
    async fn set_account_status(&self, id: i64, status: &str, error_message: &str) -> StoreResult<()>;
    /// Sets `status` and clears the error message of every account in `ids`, in one
    /// transaction; returns how many existed.
    async fn set_accounts_status(&self, ids: &[i64], status: &str) -> StoreResult<u64>;
    /// Writes both cooldown columns (None clears one), so a restart keeps cooldowns.
    async fn set_account_cooldowns(
        &self,
        id: i64,
        rate_limit_reset_at: Option<OffsetDateTime>,
        overload_until: Option<OffsetDateTime>,
    ) -> StoreResult<()>;
    async fn set_account_schedulable(&self, id: i64, schedulable: bool) -> StoreResult<()>;
    /// Replaces the usage windows the upstream last reported (JSON array).
    async fn set_account_windows(&self, id: i64, usage_windows: &str) -> StoreResult<()>;
    /// Replaces the sealed credentials and the `extra` settings (a token refresh).
    async fn set_account_secrets(&self, id: i64, credentials_encrypted: &str, extra: &str) -> StoreResult<()>;
    async fn touch_accounts_used(&self, ids: &[i64], used_at: OffsetDateTime) -> StoreResult<()>;
    async fn proxy_exists(&self, id: i64) -> StoreResult<bool>;
}

/// A `usage_logs` row as stored: its id and the written fields.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UsageRow {
    pub id: i64,
    #[sqlx(flatten)]
    pub data: NewUsage,
}

impl UsageRow {
    pub fn view(&self) -> domain::UsageView {
        let d = &self.data;
        domain::UsageView {
            id: self.id,
            request_id: d.request_id.clone(),
            user_id: d.user_id,
            api_key_id: d.api_key_id,
            account_id: d.account_id,
            group_id: d.group_id,
            requested_model: d.requested_model.clone(),
            upstream_model: d.upstream_model.clone(),
            input_tokens: d.input_tokens,
            output_tokens: d.output_tokens,
            cache_creation_tokens: d.cache_creation_tokens,
            cache_creation_5m_tokens: d.cache_creation_5m_tokens,
            cache_creation_1h_tokens: d.cache_creation_1h_tokens,
            cache_read_tokens: d.cache_read_tokens,
            total_cost: d.total_cost,
            actual_cost: d.actual_cost,
            rate_multiplier: d.rate_multiplier,
            stream: d.stream,
            status_code: d.status_code,
            error_message: d.error_message.clone(),
            duration_ms: d.duration_ms,
            first_token_ms: d.first_token_ms,
            created_at: rfc3339(d.created_at),
        }
    }
}

/// One usage row to write (the usage writer batches these).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NewUsage {
    pub request_id: String,
    pub user_id: Option<i64>,
    pub api_key_id: Option<i64>,
    pub account_id: Option<i64>,
    pub group_id: Option<i64>,
    pub requested_model: String,
    pub upstream_model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_tokens: i64,
    pub cache_creation_5m_tokens: i64,
    pub cache_creation_1h_tokens: i64,
    pub cache_read_tokens: i64,
    pub input_cost: f64,
    pub output_cost: f64,
    pub cache_creation_cost: f64,
    pub cache_read_cost: f64,
    pub total_cost: f64,
    pub actual_cost: f64,
    pub rate_multiplier: f64,
    pub stream: bool,
    pub status_code: i32,
    pub error_message: String,
    pub duration_ms: i64,
    pub first_token_ms: Option<i64>,
    pub user_agent: String,
    pub created_at: OffsetDateTime,
}

/// Which usage rows a list or total covers; `end` is exclusive.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub user_id: Option<i64>,
    pub api_key_id: Option<i64>,
    pub account_id: Option<i64>,
    pub group_id: Option<i64>,
    pub model: Option<String>,
    pub start: Option<OffsetDateTime>,
    pub end: Option<OffsetDateTime>,
    pub status: Option<StatusFilter>,
}

/// Which outcomes a usage filter keeps; failure is judged as `domain::usage::is_error` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Status below 400 and no error message.
    Ok,
    /// Status 400 or above, or an error message.
    Error,
    /// Exactly this HTTP status.
    Code(i32),
}

#[async_trait]
pub trait UsageRepo: Send + Sync {
    /// Writes the rows in one transaction.
    async fn insert_usage(&self, rows: &[NewUsage]) -> StoreResult<()>;
    /// Newest first.
    async fn list_usage(&self, filter: &UsageFilter, offset: i64, limit: i64) -> StoreResult<Vec<UsageRow>>;
    /// Up to `limit` rows with an id above `after_id`, oldest first: keyset pages that stay
    /// fast however deep an export goes.
    async fn list_usage_after(&self, filter: &UsageFilter, after_id: i64, limit: i64) -> StoreResult<Vec<UsageRow>>;
    async fn usage_totals(&self, filter: &UsageFilter) -> StoreResult<domain::UsageTotals>;
    /// Totals per UTC minute (keys `YYYY-MM-DDTHH:MM`), oldest first; quiet minutes are
    /// absent.
    async fn usage_by_minute(&self, filter: &UsageFilter) -> StoreResult<Vec<domain::UsageBucket>>;
    /// Totals per UTC day (`YYYY-MM-DD`) and requested model, the bucket keyed by the model,
    /// ordered by day then model. One pass over the rows serves both the daily trend and the
    /// per-model breakdown.
    async fn usage_by_day_and_model(&self, filter: &UsageFilter) -> StoreResult<Vec<(String, domain::UsageBucket)>>;
    /// Every requested model in the log, sorted.
    async fn usage_models(&self) -> StoreResult<Vec<String>>;
}

/// A `proxies` row with the number of accounts using it. `password_encrypted` is sealed
/// (`cipher::SecretBox`), empty when there is no password.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProxyRow {
    pub id: i64,
    pub name: String,
    pub protocol: String,
    pub host: String,
    pub port: i32,
    pub username: String,
    pub password_encrypted: String,
    pub status: String,
    pub created_at: OffsetDateTime,
    pub account_count: i64,
}

impl ProxyRow {
    /// The stored fields; `password` is `None` (the sealed value stays here).
    pub fn fields(&self) -> StoreResult<domain::proxies::ProxyFields> {
        let corrupt = |e: domain::UnknownVariant| StoreError::Corrupt(e.to_string());
        Ok(domain::proxies::ProxyFields {
            name: self.name.clone(),
            protocol: self.protocol.parse().map_err(corrupt)?,
            host: self.host.clone(),
            port: u16::try_from(self.port).map_err(|_| StoreError::Corrupt(format!("proxy port {}", self.port)))?,
            username: self.username.clone(),
            password: None,
            status: self.status.parse().map_err(corrupt)?,
        })
    }
}

/// What `create_proxy` / `update_proxy` write; the password arrives sealed (or empty).
#[derive(Clone)]
pub struct NewProxy {
    pub fields: domain::proxies::ProxyFields,
    pub password_encrypted: String,
}

#[async_trait]
pub trait ProxyRepo: Send + Sync {
    async fn create_proxy(&self, proxy: &NewProxy) -> StoreResult<ProxyRow>;
    async fn find_proxy(&self, id: i64) -> StoreResult<Option<ProxyRow>>;
    /// Every proxy, by id, with its account counts.
    async fn list_proxies(&self) -> StoreResult<Vec<ProxyRow>>;
    /// Fails with `NotFound("proxy")`.
    async fn update_proxy(&self, id: i64, proxy: &NewProxy) -> StoreResult<ProxyRow>;
    /// `Ok(true)` when a proxy was deleted; its accounts are left without a proxy.
    async fn delete_proxy(&self, id: i64) -> StoreResult<bool>;
}

/// Every repository, as one object-safe trait so `Store` can hold either backend.
pub trait Repos:
    UserRepo
    + SettingRepo
    + StatsRepo
    + SessionRepo
    + GroupRepo
    + AccountRepo
    + ApiKeyRepo
    + UsageRepo
    + ProxyRepo
    + Send
    + Sync
{
}
impl<T> Repos for T where
    T: UserRepo
        + SettingRepo
        + StatsRepo
        + SessionRepo
        + GroupRepo
        + AccountRepo
        + ApiKeyRepo
        + UsageRepo
        + ProxyRepo
        + Send
        + Sync
{
}
