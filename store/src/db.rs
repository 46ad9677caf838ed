//! Connecting to SQLite or PostgreSQL from one URL, running the embedded migrations, and the
//! `Store` handle the rest of the program holds.

use std::ops::Deref;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use crate::repo::Repos;
use crate::sql::{PgRepos, SqliteRepos};
use crate::{StoreError, StoreResult};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Which database engine a `Store` talks to.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Connection-pool occupancy, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// A cheap, cloneable handle to the database. Derefs to the repository traits.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    repos: Arc<dyn Repos>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend_name()).finish()
    }
}

impl Deref for Store {
    type Target = dyn Repos;
    fn deref(&self) -> &Self::Target {
        self.repos.as_ref()
    }
}

impl Store {
    /// Opens a pool for `url` (`sqlite://…` or `postgres://…`). For SQLite the parent folder
    /// and the file are created, and WAL, foreign keys and a busy timeout are switched on.
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Store> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "sqlite" => Self::connect_sqlite(url, max_connections).await,
            "postgres" | "postgresql" => {
                let opts = PgConnectOptions::from_str(url)
                    .map_err(|e| StoreError::InvalidUrl(format!("cannot parse PostgreSQL URL: {e}")))?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await?;
                Ok(Self::from_backend(Backend::Postgres(pool)))
            }
            _ => Err(StoreError::InvalidUrl(format!(
                "unsupported database URL `{}` (expected sqlite://… or postgres://…)",
                redact_url(url)
            ))),
        }
    }

    async fn connect_sqlite(url: &str, max_connections: u32) -> StoreResult<Store> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::InvalidUrl(format!("cannot parse SQLite URL: {e}")))?
            .create_if_missing(true)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let file = opts.get_filename();
        let in_memory = file.as_os_str().is_empty() || file == Path::new(":memory:");
        if let Some(parent) = file.parent().filter(|p| !in_memory && !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::InvalidUrl(format!("cannot create folder `{}`: {e}", parent.display())))?;
        }
        // An in-memory database exists once per connection, so it must have exactly one.
        let max = if in_memory { 1 } else { max_connections.max(1) };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        Ok(Self::from_backend(Backend::Sqlite(pool)))
    }

    fn from_backend(backend: Backend) -> Store {
        let repos: Arc<dyn Repos> = match &backend {
            Backend::Sqlite(pool) => Arc::new(SqliteRepos { pool: pool.clone() }),
            Backend::Postgres(pool) => Arc::new(PgRepos { pool: pool.clone() }),
        };
        Store { backend, repos }
    }

    /// Applies every pending forward-only migration for this backend.
    pub async fn migrate(&self) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Backend::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// One round trip to the database; `/ready` uses it.
    pub async fn ping(&self) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop)?,
            Backend::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(drop)?,
        }
        Ok(())
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub fn pool_stats(&self) -> PoolStats {
        let (size, idle, max) = match &self.backend {
            Backend::Sqlite(p) => (p.size(), p.num_idle(), p.options().get_max_connections()),
            Backend::Postgres(p) => (p.size(), p.num_idle(), p.options().get_max_connections()),
        };
        PoolStats { size, idle: u32::try_from(idle).unwrap_or(u32::MAX), max }
    }

    /// Waits for checked-out connections to come back and closes the pool.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }
}

/// The URL with any password replaced by `***`, safe to log or show in an error.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The userinfo ends at the last `@`: a password may itself contain `/`, `?`, `#` or `@`.
    let Some((userinfo, host_and_path)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host_and_path}"),
        None => format!("{scheme}://{userinfo}@{host_and_path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(redact_url("postgres://app:s3cret@db:5432/sub2api"), "postgres://app:***@db:5432/sub2api");
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("sqlite://./data/sub2api.db"), "sqlite://./data/sub2api.db");
        assert_eq!(redact_url("redis://:pw@127.0.0.1:6379"), "redis://:***@127.0.0.1:6379");
        assert_eq!(redact_url("postgres://app:p/w?x#y@db/x"), "postgres://app:***@db/x");
    }
}
