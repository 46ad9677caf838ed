//! `usage_logs`, for both backends: batched inserts from the usage writer, filtered pages,
//! keyset batches for the export, totals and per-minute/day/model aggregates for the admin.
//! Filters are appended with `QueryBuilder` (constant SQL fragments, bound values) so each
//! query only carries the conditions it needs and can use the indexes.

use async_trait::async_trait;
use domain::{UsageBucket, UsageTotals};

use crate::StoreResult;
use crate::repo::{NewUsage, StatusFilter, UsageFilter, UsageRepo, UsageRow};
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

/// The sums of a bucket, after its key; the same columns as `TOTALS` but the count.
const BUCKET_SUMS: &str = ", COUNT(*), CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT), \
     CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cache_creation_tokens), 0) AS BIGINT), \
     CAST(COALESCE(SUM(cache_read_tokens), 0) AS BIGINT), COALESCE(SUM(total_cost), 0.0), \
     COALESCE(SUM(actual_cost), 0.0) FROM usage_logs WHERE 1 = 1";

type BucketTuple = (String, i64, i64, i64, i64, i64, f64, f64);

fn bucket(
    (key, requests, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, total_cost, actual_cost): BucketTuple,
) -> UsageBucket {
    UsageBucket {
        key,
        requests,
        input_tokens,
        output_tokens,
        cache_creation_tokens,
        cache_read_tokens,
        total_cost,
        actual_cost,
    }
}

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
        match f.status {
            // Spelled exactly as the predicate of the partial index `usage_logs_errors`, so
            // both planners can prove the index applies.
            Some(StatusFilter::Error) => {
                $qb.push(" AND (status_code >= 400 OR error_message <> '')");
            }
            Some(StatusFilter::Ok) => {
                $qb.push(" AND status_code < 400 AND error_message = ''");
            }
            Some(StatusFilter::Code(code)) => {
                $qb.push(" AND status_code = ").push_bind(code);
            }
            None => {}
        }
    };
}

/// The UTC day key (`YYYY-MM-DD`) of a start time: the day aggregates also filter on it, so
/// SQLite can walk its `usage_logs_day_model` index from that day on.
fn day_key(t: time::OffsetDateTime) -> String {
    let d = t.to_offset(time::UtcOffset::UTC).date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// `$minute` and `$day` are the engine's SQL for the UTC minute and day keys of `created_at`;
/// `$day_floor` is the condition on `$day` that lets the engine use a day index, if any.
macro_rules! impl_usage_repo {
    ($repos:ty, $db:ty, minute = $minute:literal, day = $day:literal, day_floor = $day_floor:expr) => {
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

            async fn list_usage_after(
                &self,
                filter: &UsageFilter,
                after_id: i64,
                limit: i64,
            ) -> StoreResult<Vec<UsageRow>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(USAGE_COLUMNS);
                push_filters!(qb, filter);
                qb.push(" AND id > ").push_bind(after_id).push(" ORDER BY id LIMIT ").push_bind(limit);
                Ok(qb.build_query_as::<UsageRow>().fetch_all(&self.pool).await?)
            }

            async fn usage_by_minute(&self, filter: &UsageFilter) -> StoreResult<Vec<UsageBucket>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(concat!("SELECT ", $minute, " AS minute"));
                qb.push(BUCKET_SUMS);
                push_filters!(qb, filter);
                qb.push(" GROUP BY minute ORDER BY minute");
                let rows = qb.build_query_as::<BucketTuple>().fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(bucket).collect())
            }

            async fn usage_by_day_and_model(&self, filter: &UsageFilter) -> StoreResult<Vec<(String, UsageBucket)>> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(concat!("SELECT ", $day, " AS day, requested_model"));
                qb.push(BUCKET_SUMS);
                push_filters!(qb, filter);
                if let (Some(floor), Some(start)) = ($day_floor, filter.start) {
                    qb.push(floor).push_bind(day_key(start));
                }
                qb.push(" GROUP BY day, requested_model ORDER BY day, requested_model");
                let rows = qb.build_query_as::<(String, String, i64, i64, i64, i64, i64, f64, f64)>().fetch_all(&self.pool).await?;
                Ok(rows
                    .into_iter()
                    .map(|(day, model, requests, input, output, cache_creation, cache_read, total_cost, actual_cost)| {
                        (day, bucket((model, requests, input, output, cache_creation, cache_read, total_cost, actual_cost)))
                    })
                    .collect())
            }

            async fn usage_models(&self) -> StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar::<$db, String>(
                    "SELECT DISTINCT requested_model FROM usage_logs WHERE requested_model <> '' ORDER BY requested_model",
                )
                .fetch_all(&self.pool)
                .await?)
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

// SQLite keeps `created_at` as RFC 3339 UTC text (see `sql::at`), so a prefix is the key.
impl_usage_repo!(
    SqliteRepos,
    sqlx::Sqlite,
    minute = "substr(created_at, 1, 16)",
    day = "substr(created_at, 1, 10)",
    day_floor = Some(" AND substr(created_at, 1, 10) >= ")
);
impl_usage_repo!(
    PgRepos,
    sqlx::Postgres,
    minute = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI')",
    day = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    day_floor = None::<&str>
);
