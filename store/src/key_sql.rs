//! `api_keys`, for both backends. Only hashes and display prefixes are stored.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::repo::{ApiKeyFields, ApiKeyRepo, ApiKeyRow, KeyUsageRow};
use crate::sql::{PgRepos, SqliteRepos, at};
use crate::{StoreError, StoreResult};

const KEY_COLUMNS: &str = "SELECT id, user_id, key_hash, key_prefix, name, group_id, status, concurrency, expires_at, last_used_at, created_at FROM api_keys";

// The casts give both engines the same column types: PostgreSQL sums integers as NUMERIC.
const USAGE_BY_KEY: &str = "SELECT user_id, api_key_id, COUNT(*) AS requests, \
     CAST(COALESCE(SUM(input_tokens + output_tokens + cache_creation_tokens + cache_read_tokens), 0) AS BIGINT) \
     AS tokens, CAST(COALESCE(SUM(actual_cost), 0) AS DOUBLE PRECISION) AS actual_cost \
     FROM usage_logs WHERE created_at >= $1 GROUP BY user_id, api_key_id \
     ORDER BY COALESCE(user_id, 0), COALESCE(api_key_id, 0)";

macro_rules! impl_key_repo {
    ($repos:ty, $db:ty) => {
        #[async_trait]
        impl ApiKeyRepo for $repos {
            async fn create_api_key(
                &self,
                user_id: i64,
                key_hash: &str,
                key_prefix: &str,
                fields: &ApiKeyFields,
            ) -> StoreResult<ApiKeyRow> {
                let id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO api_keys (user_id, key_hash, key_prefix, name, group_id, status, expires_at, \
                     created_at, updated_at, concurrency) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING id",
                )
                .bind(user_id)
                .bind(key_hash)
                .bind(key_prefix)
                .bind(&fields.name)
                .bind(fields.group_id)
                .bind(fields.status.as_str())
                .bind(fields.expires_at.map(at))
                .bind(at(OffsetDateTime::now_utc()))
                .bind(fields.concurrency)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError::conflict_on_unique(e, "API key"))?;
                self.find_api_key(id).await?.ok_or(StoreError::NotFound("API key"))
            }

            async fn find_api_key(&self, id: i64) -> StoreResult<Option<ApiKeyRow>> {
                let sql = format!("{KEY_COLUMNS} WHERE id = $1");
                Ok(sqlx::query_as::<$db, ApiKeyRow>(&sql).bind(id).fetch_optional(&self.pool).await?)
            }

            async fn find_api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKeyRow>> {
                let sql = format!("{KEY_COLUMNS} WHERE key_hash = $1");
                Ok(sqlx::query_as::<$db, ApiKeyRow>(&sql).bind(key_hash).fetch_optional(&self.pool).await?)
            }

            async fn list_api_keys(&self, user_id: Option<i64>) -> StoreResult<Vec<ApiKeyRow>> {
                let sql = format!("{KEY_COLUMNS} WHERE ($1 IS NULL OR user_id = $1) ORDER BY id");
                Ok(sqlx::query_as::<$db, ApiKeyRow>(&sql).bind(user_id).fetch_all(&self.pool).await?)
            }

            async fn update_api_key(&self, id: i64, fields: &ApiKeyFields) -> StoreResult<ApiKeyRow> {
                let done = sqlx::query::<$db>(
                    "UPDATE api_keys SET name = $1, group_id = $2, status = $3, expires_at = $4, updated_at = $5, \
                     concurrency = $7 WHERE id = $6",
                )
                .bind(&fields.name)
                .bind(fields.group_id)
                .bind(fields.status.as_str())
                .bind(fields.expires_at.map(at))
                .bind(at(OffsetDateTime::now_utc()))
                .bind(id)
                .bind(fields.concurrency)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("API key"));
                }
                self.find_api_key(id).await?.ok_or(StoreError::NotFound("API key"))
            }

            async fn touch_api_keys_used(&self, ids: &[i64], used_at: OffsetDateTime) -> StoreResult<()> {
                for id in ids {
                    sqlx::query::<$db>("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                        .bind(at(used_at))
                        .bind(id)
                        .execute(&self.pool)
                        .await?;
                }
                Ok(())
            }

            async fn usage_by_key_since(&self, since: OffsetDateTime) -> StoreResult<Vec<KeyUsageRow>> {
                Ok(sqlx::query_as::<$db, KeyUsageRow>(USAGE_BY_KEY).bind(at(since)).fetch_all(&self.pool).await?)
            }

            async fn delete_api_key(&self, id: i64) -> StoreResult<bool> {
                let done =
                    sqlx::query::<$db>("DELETE FROM api_keys WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

impl_key_repo!(SqliteRepos, sqlx::Sqlite);
impl_key_repo!(PgRepos, sqlx::Postgres);
