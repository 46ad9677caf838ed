//! `usage_logs`, for both backends: batched inserts from the usage writer, filtered pages and
//! totals for the admin. Filters are appended with `QueryBuilder` (constant SQL fragments,
//! bound values) so each query only carries the conditions it needs and can use the indexes.

use async_trait::async_trait;
use domain::UsageTotals;

use crate::StoreResult;
use crate::repo::{NewUsage, UsageFilter, UsageRepo, UsageRow};
use crate::sql::{PgRepos, SqliteRepos, at};

const USAGE_COLUMNS: &str = "SELECT id, request_id, user_id, api_key_id, account_id, group_id, requested_model, \
     upstream_model, input_tokens, output_tokens, cache_creation_tokens, cache_creation_5m_tokens, \
     cache_creation_1h_tokens, cache_read_tokens, input_cost, output_cost, cache_creation_cost, cache_read_cost, \
     total_cost, actual_cost, rate_multiplier, stream, status_code, error_message, duration_ms, first_token_ms, \
     user_agent, created_at FROM usage_logs WHERE 1 = 1";

const TOTALS: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), \
     CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cache_creation_tokens), 0) AS BIGINT), \
     CAST(COALESCE(SUM(cache_read_tokens), 0) AS BIGINT), COALESCE(SUM(total_cost), 0.0), \
     COALESCE(SUM(actual_cost), 0.0) FROM usage_logs WHERE 1 = 1";

/// Appends the conditions of `$filter` to the query builder `$qb`.
macro_rules! push_filters {
    ($qb:ident, $filter:expr) => {
        let f: &UsageFilter = $filter;
        if let Some(v) = f.user_id {
            $qb.push(" AND user_id = ").push_bind(v);
        }
        if let Some(v) = f.api_key_id {
            $qb.push(" AND api_key_id = ").push_bind(v);
        }
        if let Some(v) = f.account_id {
            $qb.push(" AND account_id = ").push_bind(v);
        }
        if let Some(v) = f.group_id {
            $qb.push(" AND group_id = ").push_bind(v);
        }
        if let Some(v) = &f.model {
            $qb.push(" AND requested_model = ").push_bind(v.clone());
        }
        if let Some(v) = f.start {
            $qb.push(" AND created_at >= ").push_bind(at(v));
        }
        if let Some(v) = f.end {
            $qb.push(" AND created_at < ").push_bind(at(v));
        }
    };
}

macro_rules! impl_usage_repo {
    ($repos:ty, $db:ty) => {
        #[async_trait]
        impl UsageRepo for $repos {
            async fn insert_usage(&self, rows: &[NewUsage]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                for r in rows {
                    sqlx::query::<$db>(
                        "INSERT INTO usage_logs (request_id, user_id, api_key_id, account_id, group_id, \
                         requested_model, upstream_model, input_tokens, output_tokens, cache_creation_tokens, \
                         cache_creation_5m_tokens, cache_creation_1h_tokens, cache_read_tokens, input_cost, \
                         output_cost, cache_creation_cost, cache_read_cost, total_cost, actual_cost, rate_multiplier, \
                         stream, status_code, error_message, duration_ms, first_token_ms, user_agent, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
                         $19, $20, $21, $22, $23, $24, $25, $26, $27)",
                    )
                    .bind(&r.request_id)
                    .bind(r.user_id)
                    .bind(r.api_key_id)
                    .bind(r.account_id)
                    .bind(r.group_id)
                    .bind(&r.requested_model)
                    .bind(&r.upstream_model)
                    .bind(r.input_tokens)
                    .bind(r.output_tokens)
                    .bind(r.cache_creation_tokens)
                    .bind(r.cache_creation_5m_tokens)
                    .bind(r.cache_creation_1h_tokens)
                    .bind(r.cache_read_tokens)
                    .bind(r.input_cost)
                    .bind(r.output_cost)
                    .bind(r.cache_creation_cost)
                    .bind(r.cache_read_cost)
                    .bind(r.total_cost)
                    .bind(r.actual_cost)
                    .bind(r.rate_multiplier)
                    .bind(r.stream)
                    .bind(r.status_code)
                    .bind(&r.error_message)
                    .bind(r.duration_ms)
                    .bind(r.first_token_ms)
                    .bind(&r.user_agent)
                    .bind(at(r.created_at))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_usage(&self, filter: &UsageFilter, offset: i64, limit: i64) -> StoreResult<Vec<UsageRow>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(USAGE_COLUMNS);
                push_filters!(qb, filter);
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(limit).push(" OFFSET ").push_bind(offset);
                Ok(qb.build_query_as::<UsageRow>().fetch_all(&self.pool).await?)
            }

            async fn usage_totals(&self, filter: &UsageFilter) -> StoreResult<UsageTotals> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(TOTALS);
                push_filters!(qb, filter);
                let (requests, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, total_cost, actual_cost) =
                    qb.build_query_as::<(i64, i64, i64, i64, i64, f64, f64)>().fetch_one(&self.pool).await?;
                Ok(UsageTotals {
                    requests,
                    input_tokens,
                    output_tokens,
                    cache_creation_tokens,
                    cache_read_tokens,
                    total_cost,
                    actual_cost,
                })
            }
        }
    };
}

impl_usage_repo!(SqliteRepos, sqlx::Sqlite);
impl_usage_repo!(PgRepos, sqlx::Postgres);
