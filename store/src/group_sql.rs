//! `groups` and the group side of `account_groups`, for both backends (same macro approach as
//! `sql.rs`: one SQL text, expanded per engine).

use async_trait::async_trait;
use domain::GroupFields;
use time::OffsetDateTime;

use crate::repo::{GroupRepo, GroupRow};
use crate::sql::{PgRepos, SqliteRepos, at};
use crate::{StoreError, StoreResult};

const GROUP_SELECT: &str = "SELECT g.id, g.name, g.description, g.platform, g.rate_multiplier, g.created_at, \
     (SELECT COUNT(*) FROM account_groups ag WHERE ag.group_id = g.id) AS account_count, \
     (SELECT COUNT(*) FROM api_keys k WHERE k.group_id = g.id) AS api_key_count \
     FROM groups g";

macro_rules! impl_group_repo {
    ($repos:ty, $db:ty) => {
        #[async_trait]
        impl GroupRepo for $repos {
            async fn create_group(&self, group: &GroupFields) -> StoreResult<GroupRow> {
                let now = at(OffsetDateTime::now_utc());
                let id = sqlx::query_scalar::<$db, i64>(
                    "INSERT INTO groups (name, description, platform, rate_multiplier, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
                )
                .bind(&group.name)
                .bind(&group.description)
                .bind(group.platform.as_str())
                .bind(group.rate_multiplier)
                .bind(now)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| StoreError::conflict_on_unique(e, "group"))?;
                self.find_group(id).await?.ok_or(StoreError::NotFound("group"))
            }

            async fn find_group(&self, id: i64) -> StoreResult<Option<GroupRow>> {
                let sql = format!("{GROUP_SELECT} WHERE g.id = $1");
                Ok(sqlx::query_as::<$db, GroupRow>(&sql).bind(id).fetch_optional(&self.pool).await?)
            }

            async fn list_groups(&self) -> StoreResult<Vec<GroupRow>> {
                let sql = format!("{GROUP_SELECT} ORDER BY g.id");
                Ok(sqlx::query_as::<$db, GroupRow>(&sql).fetch_all(&self.pool).await?)
            }

            async fn update_group(&self, id: i64, group: &GroupFields) -> StoreResult<GroupRow> {
                let done = sqlx::query::<$db>(
                    "UPDATE groups SET name = $1, description = $2, platform = $3, rate_multiplier = $4, \
                     updated_at = $5 WHERE id = $6",
                )
                .bind(&group.name)
                .bind(&group.description)
                .bind(group.platform.as_str())
                .bind(group.rate_multiplier)
                .bind(at(OffsetDateTime::now_utc()))
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(|e| StoreError::conflict_on_unique(e, "group"))?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound("group"));
                }
                self.find_group(id).await?.ok_or(StoreError::NotFound("group"))
            }

            async fn delete_group(&self, id: i64) -> StoreResult<bool> {
                let done = sqlx::query::<$db>("DELETE FROM groups WHERE id = $1").bind(id).execute(&self.pool).await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

impl_group_repo!(SqliteRepos, sqlx::Sqlite);
impl_group_repo!(PgRepos, sqlx::Postgres);
