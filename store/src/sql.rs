//! The repository implementations. Both backends accept the same SQL (`$n` placeholders,
//! `RETURNING`, `ON CONFLICT`), so one macro body is expanded for SQLite and for PostgreSQL:
//! the statements cannot drift apart, and the contract tests run every one on both engines.

use async_trait::async_trait;
use domain::dashboard::{LAST_HOUR_MINUTES, RECENT_ERRORS};
use domain::{AccountCounts, DashboardStats, UserRole, UserStatus};
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use time::OffsetDateTime;

use crate::repo::{
    NewUser, SessionRepo, SettingRepo, StatsRepo, StatusFilter, UsageFilter, UsageRepo, UsageRow, UserRepo, UserRow,
    UserUpdate,
};
use crate::{StoreError, StoreResult};

pub(crate) struct SqliteRepos {
    pub(crate) pool: SqlitePool,
}

pub(crate) struct PgRepos {
    pub(crate) pool: PgPool,
}

/// Every timestamp is written in UTC with whole seconds. SQLite keeps them as RFC 3339 text
/// and compares them as strings, which is only correct when all values have the same shape
/// (a value with a fraction would sort before the same second without one).
pub(crate) fn at(t: OffsetDateTime) -> OffsetDateTime {
    let utc = t.to_offset(time::UtcOffset::UTC);
    utc.replace_nanosecond(0).unwrap_or(utc)
}

const USER_COLUMNS: &str = "id, email, password_hash, role, status, concurrency, last_login_at, created_at";

macro_rules! impl_repos {
    ($repos:ty, $db:ty) => {
        #[async_trait]
        impl UserRepo for $repos {
            async fn create_user(&self, user: &NewUser) -> StoreResult<UserRow> {
                let now = OffsetDateTime::now_utc();
                let sql = format_sql!(
                    "INSERT INTO users (email, password_hash, role, status, concurrency, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
                    USER_COLUMNS
                );
                sqlx::query_as::<$db, UserRow>(&sql)
                    .bind(&user.email)
                    .bind(&user.password_hash)
                    .bind(user.role.as_str())
                    .bind(user.status.as_str())
                    .bind(user.concurrency)
                    .bind(at(now))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(|e| StoreError::conflict_on_unique(e, "user"))
            }

            async fn find_user(&self, id: i64) -> StoreResult<Option<UserRow>> {
                let sql = format_sql!("SELECT ", USER_COLUMNS, " FROM users WHERE id = $1");
                Ok(sqlx::query_as::<$db, UserRow>(&sql).bind(id).fetch_optional(&self.pool).await?)
            }

            async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRow>> {
                let sql = format_sql!("SELECT ", USER_COLUMNS, " FROM users WHERE email = $1");
                Ok(sqlx::query_as::<$db, UserRow>(&sql).bind(email).fetch_optional(&self.pool).await?)
            }

            async fn count_active_admins(&self) -> StoreResult<i64> {
                Ok(sqlx::query_scalar::<$db, i64>("SELECT COUNT(*) FROM users WHERE role = $1 AND status = $2")
                    .bind(UserRole::Admin.as_str())
                    .bind(UserStatus::Active.as_str())
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn set_password_hash(&self, user_id: i64, password_hash: &str) -> StoreResult<()> {
                let done = sqlx::query::<$db>("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
                    .bind(password_hash)
                    .bind(at(OffsetDateTime::now_utc()))
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("user"));
                }
                Ok(())
            }

            async fn record_login(&self, user_id: i64, at: OffsetDateTime) -> StoreResult<()> {
                sqlx::query::<$db>("UPDATE users SET last_login_at = $1 WHERE id = $2")
                    .bind(self::at(at))
                    .bind(user_id)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn list_users(&self) -> StoreResult<Vec<UserRow>> {
                let sql = format_sql!("SELECT ", USER_COLUMNS, " FROM users ORDER BY id");
                Ok(sqlx::query_as::<$db, UserRow>(&sql).fetch_all(&self.pool).await?)
            }

            async fn update_user(&self, id: i64, user: &UserUpdate) -> StoreResult<UserRow> {
                let sql = format_sql!(
                    "UPDATE users SET email = $1, role = $2, status = $3, concurrency = $4, updated_at = $5                      WHERE id = $6 RETURNING ",
                    USER_COLUMNS
                );
                sqlx::query_as::<$db, UserRow>(&sql)
                    .bind(&user.email)
                    .bind(user.role.as_str())
                    .bind(user.status.as_str())
                    .bind(user.concurrency)
                    .bind(at(OffsetDateTime::now_utc()))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| StoreError::conflict_on_unique(e, "user"))?
                    .ok_or(StoreError::NotFound("user"))
            }

            async fn delete_user(&self, id: i64) -> StoreResult<bool> {
                let done = sqlx::query::<$db>("DELETE FROM users WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl SettingRepo for $repos {
            async fn get_setting(&self, key: &str) -> StoreResult<Option<String>> {
                Ok(sqlx::query_scalar::<$db, String>("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn put_setting(&self, key: &str, value: &str) -> StoreResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(key)
                .bind(value)
                .bind(at(OffsetDateTime::now_utc()))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn delete_setting(&self, key: &str) -> StoreResult<bool> {
                let done = sqlx::query::<$db>("DELETE FROM settings WHERE key = $1").bind(key).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl StatsRepo for $repos {
            async fn dashboard_stats(&self, now: OffsetDateTime) -> StoreResult<DashboardStats> {
                let (total_users,): (i64,) =
                    sqlx::query_as::<$db, (i64,)>("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?;
                let (total_api_keys, active_api_keys): (i64, i64) = sqlx::query_as::<$db, (i64, i64)>(
                    "SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), 0) FROM api_keys",
                )
                .fetch_one(&self.pool)
                .await?;
                let (total_groups,): (i64,) =
                    sqlx::query_as::<$db, (i64,)>("SELECT COUNT(*) FROM groups").fetch_one(&self.pool).await?;
                let (total, active, error, disabled, rate_limited, overloaded) =
                    sqlx::query_as::<$db, (i64, i64, i64, i64, i64, i64)>(
                        "SELECT COUNT(*), \
                         COALESCE(SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), 0), \
                         COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0), \
                         COALESCE(SUM(CASE WHEN status = 'disabled' THEN 1 ELSE 0 END), 0), \
                         COALESCE(SUM(CASE WHEN status = 'active' AND rate_limit_reset_at > $1 THEN 1 ELSE 0 END), 0), \
                         COALESCE(SUM(CASE WHEN status = 'active' AND overload_until > $1 THEN 1 ELSE 0 END), 0) \
                         FROM accounts",
                    )
                    .bind(at(now))
                    .fetch_one(&self.pool)
                    .await?;
                let next_reset = sqlx::query_scalar::<$db, OffsetDateTime>(
                    "SELECT rate_limit_reset_at FROM accounts WHERE status = 'active' AND rate_limit_reset_at > $1 \
                     ORDER BY rate_limit_reset_at LIMIT 1",
                )
                .bind(at(now))
                .fetch_optional(&self.pool)
                .await?;
                let now = at(now);
                let midnight = now.replace_time(time::Time::MIDNIGHT);
                let today = UsageFilter { start: Some(midnight), ..Default::default() };
                let this_minute = now.replace_second(0).unwrap_or(now);
                let hour_ago = this_minute - time::Duration::minutes(LAST_HOUR_MINUTES - 1);
                let last_hour = UsageFilter { start: Some(hour_ago), ..Default::default() };
                let errors = UsageFilter { status: Some(StatusFilter::Error), ..Default::default() };
                Ok(DashboardStats {
                    total_users,
                    total_api_keys,
                    active_api_keys,
                    total_groups,
                    accounts: AccountCounts {
                        total,
                        active,
                        error,
                        disabled,
                        rate_limited,
                        overloaded,
                        next_rate_limit_reset_secs: next_reset.map(|t| (t - now).whole_seconds()),
                    },
                    today: self.usage_totals(&today).await?,
                    last_hour: self.usage_by_minute(&last_hour).await?,
                    recent_errors: self
                        .list_usage(&errors, 0, RECENT_ERRORS)
                        .await?
                        .iter()
                        .map(UsageRow::view)
                        .collect(),
                })
            }
        }

        #[async_trait]
        impl SessionRepo for $repos {
            async fn insert_session(&self, id: &str, data: &[u8], expiry: OffsetDateTime) -> StoreResult<bool> {
                let done = sqlx::query::<$db>(
                    "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                )
                .bind(id)
                .bind(data)
                .bind(at(expiry))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn upsert_session(&self, id: &str, data: &[u8], expiry: OffsetDateTime) -> StoreResult<()> {
                sqlx::query::<$db>(
                    "INSERT INTO sessions (id, data, expiry_date) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date",
                )
                .bind(id)
                .bind(data)
                .bind(at(expiry))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn load_session(&self, id: &str, now: OffsetDateTime) -> StoreResult<Option<Vec<u8>>> {
                Ok(sqlx::query_scalar::<$db, Vec<u8>>("SELECT data FROM sessions WHERE id = $1 AND expiry_date > $2")
                    .bind(id)
                    .bind(at(now))
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn delete_session(&self, id: &str) -> StoreResult<()> {
                sqlx::query::<$db>("DELETE FROM sessions WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(())
            }

            async fn delete_expired_sessions(&self, now: OffsetDateTime) -> StoreResult<u64> {
                let done = sqlx::query::<$db>("DELETE FROM sessions WHERE expiry_date <= $1")
                    .bind(at(now))
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

/// Joins SQL fragments that are all compile-time constants (never user input).
macro_rules! format_sql {
    ($($part:expr),+ $(,)?) => {{
        let mut sql = String::new();
        $(sql.push_str($part);)+
        sql
    }};
}

impl_repos!(SqliteRepos, sqlx::Sqlite);
impl_repos!(PgRepos, sqlx::Postgres);
