//! Storage for sub2api: one set of repository traits with a SQLite and a PostgreSQL
//! implementation chosen from the database URL, the migration runner, the admin-session store,
//! password and token hashing, and in-process coordination.
//!
//! This crate knows nothing of HTTP. Queries are checked at run time (`query_as` with bound
//! parameters); SQL text is assembled only from constants, never from input.

mod account_sql;
pub mod cipher;
pub mod coord;
pub mod credentials;
pub mod db;
mod group_sql;
mod key_sql;
mod proxy_sql;
pub mod repo;
pub mod secret;
pub mod session;
mod sql;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod usage_sql;

pub use db::{Backend, PoolStats, Store};
pub use repo::{
    AccountRepo, AccountRow, ApiKeyFields, ApiKeyRepo, ApiKeyRow, GroupRepo, GroupRow, NewAccount, NewUsage, Repos,
    SessionRepo, SettingRepo, StatsRepo, StatusFilter, UsageFilter, UsageRepo, UsageRow, UserRepo, UserRow, UserUpdate,
};
pub use repo::{NewProxy, ProxyRepo, ProxyRow};

/// Failures of the storage layer. Callers map them to their protocol; the text of
/// `Database` is for logs only (it may contain SQL).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database.url: {0}")]
    InvalidUrl(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("stored value is invalid: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Turns a unique-constraint violation into `Conflict(what)`, leaving other errors as they are.
    pub(crate) fn conflict_on_unique(err: sqlx::Error, what: &'static str) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
            _ => StoreError::Database(err),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
