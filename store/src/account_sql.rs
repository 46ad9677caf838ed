//! `accounts` and `account_groups`, for both backends. Credentials arrive already sealed
//! (`cipher::SecretBox`); this module never sees them in clear.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::repo::{AccountRepo, AccountRow, NewAccount};
use crate::sql::{PgRepos, SqliteRepos, at};
use crate::{StoreError, StoreResult};

const ACCOUNT_COLUMNS: &str = "SELECT id, name, notes, platform, type, credentials_encrypted, extra, model_mapping, \
     proxy_id, concurrency, priority, status, error_message, schedulable, rate_limit_reset_at, overload_until, \
     last_used_at, created_at, usage_windows FROM accounts";

/// Inserts one `account_groups` row per group inside the transaction `$tx`.
macro_rules! insert_memberships {
    ($db:ty, $tx:ident, $id:expr, $group_ids:expr, $now:expr) => {
        for group_id in $group_ids {
            sqlx::query::<$db>("INSERT INTO account_groups (account_id, group_id, created_at) VALUES ($1, $2, $3)")
                .bind($id)
                .bind(group_id)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

macro_rules! impl_account_repo {
    ($repos:ty, $db:ty) => {
        #[async_trait]
        impl AccountRepo for $repos {
            async fn create_account(&self, account: &NewAccount) -> StoreResult<AccountRow> {
                let now = at(OffsetDateTime::now_utc());
                let mut tx = self.pool.begin().await?;
                let id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO accounts (name, notes, platform, type, credentials_encrypted, extra, model_mapping, \
                     proxy_id, concurrency, priority, schedulable, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
                )
                .bind(&account.name)
                .bind(&account.notes)
                .bind(&account.platform)
                .bind(&account.kind)
                .bind(&account.credentials_encrypted)
                .bind(&account.extra)
                .bind(&account.model_mapping)
                .bind(account.proxy_id)
                .bind(account.concurrency)
                .bind(account.priority)
                .bind(account.schedulable)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                insert_memberships!($db, tx, id, &account.group_ids, now);
                tx.commit().await?;
                self.find_account(id).await?.ok_or(StoreError::NotFound("account"))
            }

            async fn find_account(&self, id: i64) -> StoreResult<Option<AccountRow>> {
                let sql = format!("{ACCOUNT_COLUMNS} WHERE id = $1");
                Ok(sqlx::query_as::<$db, AccountRow>(&sql).bind(id).fetch_optional(&self.pool).await?)
            }

            async fn list_accounts(&self) -> StoreResult<Vec<AccountRow>> {
                let sql = format!("{ACCOUNT_COLUMNS} ORDER BY id");
                Ok(sqlx::query_as::<$db, AccountRow>(&sql).fetch_all(&self.pool).await?)
            }

            async fn update_account(&self, id: i64, account: &NewAccount) -> StoreResult<AccountRow> {
                let now = at(OffsetDateTime::now_utc());
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query::<$db>(
                    "UPDATE accounts SET name = $1, notes = $2, credentials_encrypted = $3, extra = $4, \
                     model_mapping = $5, proxy_id = $6, concurrency = $7, priority = $8, schedulable = $9, \
                     updated_at = $10 WHERE id = $11",
                )
                .bind(&account.name)
                .bind(&account.notes)
                .bind(&account.credentials_encrypted)
                .bind(&account.extra)
                .bind(&account.model_mapping)
                .bind(account.proxy_id)
                .bind(account.concurrency)
                .bind(account.priority)
                .bind(account.schedulable)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("account"));
                }
                sqlx::query::<$db>("DELETE FROM account_groups WHERE account_id = $1").bind(id).execute(&mut *tx).await?;
                insert_memberships!($db, tx, id, &account.group_ids, now);
                tx.commit().await?;
                self.find_account(id).await?.ok_or(StoreError::NotFound("account"))
            }

            async fn delete_account(&self, id: i64) -> StoreResult<bool> {
                let done = sqlx::query::<$db>("DELETE FROM accounts WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn account_memberships(&self) -> StoreResult<Vec<(i64, i64)>> {
                Ok(sqlx::query_as::<$db, (i64, i64)>(
                    "SELECT account_id, group_id FROM account_groups ORDER BY account_id, group_id",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn set_account_status(&self, id: i64, status: &str, error_message: &str) -> StoreResult<()> {
                let done = sqlx::query::<$db>(
                    "UPDATE accounts SET status = $1, error_message = $2, updated_at = $3 WHERE id = $4",
                )
                .bind(status)
                .bind(error_message)
                .bind(at(OffsetDateTime::now_utc()))
                .bind(id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 { Err(StoreError::NotFound("account")) } else { Ok(()) }
            }

            async fn set_accounts_status(&self, ids: &[i64], status: &str) -> StoreResult<u64> {
                let now = at(OffsetDateTime::now_utc());
                let mut tx = self.pool.begin().await?;
                let mut updated = 0;
                for id in ids {
                    let done = sqlx::query::<$db>(
                        "UPDATE accounts SET status = $1, error_message = '', updated_at = $2 WHERE id = $3",
                    )
                    .bind(status)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    updated += done.rows_affected();
                }
                tx.commit().await?;
                Ok(updated)
            }

            async fn set_account_cooldowns(
                &self,
                id: i64,
                rate_limit_reset_at: Option<OffsetDateTime>,
                overload_until: Option<OffsetDateTime>,
            ) -> StoreResult<()> {
                let done = sqlx::query::<$db>(
                    "UPDATE accounts SET rate_limit_reset_at = $1, overload_until = $2, \
                     rate_limited_at = CASE WHEN $1 IS NULL THEN NULL ELSE $3 END, updated_at = $3 WHERE id = $4",
                )
                .bind(rate_limit_reset_at.map(at))
                .bind(overload_until.map(at))
                .bind(at(OffsetDateTime::now_utc()))
                .bind(id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 { Err(StoreError::NotFound("account")) } else { Ok(()) }
            }

            async fn set_account_schedulable(&self, id: i64, schedulable: bool) -> StoreResult<()> {
                let done = sqlx::query::<$db>("UPDATE accounts SET schedulable = $1, updated_at = $2 WHERE id = $3")
                    .bind(schedulable)
                    .bind(at(OffsetDateTime::now_utc()))
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 { Err(StoreError::NotFound("account")) } else { Ok(()) }
            }

            async fn set_account_windows(&self, id: i64, usage_windows: &str) -> StoreResult<()> {
                // Not `updated_at`: this is the upstream's news, not an edit.
                let done = sqlx::query::<$db>("UPDATE accounts SET usage_windows = $1 WHERE id = $2")
                    .bind(usage_windows)
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 0 { Err(StoreError::NotFound("account")) } else { Ok(()) }
            }

            async fn set_account_secrets(&self, id: i64, credentials_encrypted: &str, extra: &str) -> StoreResult<()> {
                let done = sqlx::query::<$db>(
                    "UPDATE accounts SET credentials_encrypted = $1, extra = $2, updated_at = $3 WHERE id = $4",
                )
                .bind(credentials_encrypted)
                .bind(extra)
                .bind(at(OffsetDateTime::now_utc()))
                .bind(id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 { Err(StoreError::NotFound("account")) } else { Ok(()) }
            }

            async fn proxy_exists(&self, id: i64) -> StoreResult<bool> {
                let (n,): (i64,) = sqlx::query_as::<$db, (i64,)>("SELECT COUNT(*) FROM proxies WHERE id = $1")
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n > 0)
            }

            async fn touch_accounts_used(&self, ids: &[i64], used_at: OffsetDateTime) -> StoreResult<()> {
                for id in ids {
                    sqlx::query::<$db>("UPDATE accounts SET last_used_at = $1 WHERE id = $2")
                        .bind(at(used_at))
                        .bind(id)
                        .execute(&self.pool)
                        .await?;
                }
                Ok(())
            }
        }
    };
}

impl_account_repo!(SqliteRepos, sqlx::Sqlite);
impl_account_repo!(PgRepos, sqlx::Postgres);
