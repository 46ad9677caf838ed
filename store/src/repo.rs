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
    /// Live counts for the dashboard; cooldowns are judged against `now`.
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

/// Every repository, as one object-safe trait so `Store` can hold either backend.
pub trait Repos: UserRepo + SettingRepo + StatsRepo + SessionRepo + Send + Sync {}
impl<T: UserRepo + SettingRepo + StatsRepo + SessionRepo + Send + Sync> Repos for T {}
