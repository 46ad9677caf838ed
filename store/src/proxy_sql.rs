//! `proxies`, for both backends (same macro approach as `sql.rs`: one SQL text, expanded per
//! engine). Passwords arrive already sealed; this module never sees them in clear.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::repo::{NewProxy, ProxyRepo, ProxyRow};
use crate::sql::{PgRepos, SqliteRepos, at};
use crate::{StoreError, StoreResult};

const PROXY_SELECT: &str = "SELECT p.id, p.name, p.protocol, p.host, p.port, p.username, p.password_encrypted, \
     p.status, p.created_at, (SELECT COUNT(*) FROM accounts a WHERE a.proxy_id = p.id) AS account_count \
     FROM proxies p";

macro_rules! impl_proxy_repo {
    ($repos:ty, $db:ty) => {
        #[async_trait]
        impl ProxyRepo for $repos {
            async fn create_proxy(&self, proxy: &NewProxy) -> StoreResult<ProxyRow> {
                let f = &proxy.fields;
                let id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO proxies (name, protocol, host, port, username, password_encrypted, status, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
                )
                .bind(&f.name)
                .bind(f.protocol.as_str())
                .bind(&f.host)
                .bind(i32::from(f.port))
                .bind(&f.username)
                .bind(&proxy.password_encrypted)
                .bind(f.status.as_str())
                .bind(at(OffsetDateTime::now_utc()))
                .fetch_one(&self.pool)
                .await?;
                self.find_proxy(id).await?.ok_or(StoreError::NotFound("proxy"))
            }

            async fn find_proxy(&self, id: i64) -> StoreResult<Option<ProxyRow>> {
                let sql = format!("{PROXY_SELECT} WHERE p.id = $1");
                Ok(sqlx::query_as::<$db, ProxyRow>(&sql).bind(id).fetch_optional(&self.pool).await?)
            }

            async fn list_proxies(&self) -> StoreResult<Vec<ProxyRow>> {
                let sql = format!("{PROXY_SELECT} ORDER BY p.id");
                Ok(sqlx::query_as::<$db, ProxyRow>(&sql).fetch_all(&self.pool).await?)
            }

            async fn update_proxy(&self, id: i64, proxy: &NewProxy) -> StoreResult<ProxyRow> {
                let f = &proxy.fields;
                let done = sqlx::query::<$db>(
                    "UPDATE proxies SET name = $1, protocol = $2, host = $3, port = $4, username = $5, \
                     password_encrypted = $6, status = $7, updated_at = $8 WHERE id = $9",
                )
                .bind(&f.name)
                .bind(f.protocol.as_str())
                .bind(&f.host)
                .bind(i32::from(f.port))
                .bind(&f.username)
                .bind(&proxy.password_encrypted)
                .bind(f.status.as_str())
                .bind(at(OffsetDateTime::now_utc()))
                .bind(id)
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("proxy"));
                }
                self.find_proxy(id).await?.ok_or(StoreError::NotFound("proxy"))
            }

            async fn delete_proxy(&self, id: i64) -> StoreResult<bool> {
                let done = sqlx::query::<$db>("DELETE FROM proxies WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

impl_proxy_repo!(SqliteRepos, sqlx::Sqlite);
impl_proxy_repo!(PgRepos, sqlx::Postgres);
