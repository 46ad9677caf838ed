//! Usage log queries, shared by the admin REST API and the Usage page.

use domain::usage::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use domain::{Page, UsageQuery, UsageTotals, UsageView};
use store::{Store, UsageFilter};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AppError;

fn time_field(field: &str, raw: Option<&str>) -> Result<Option<OffsetDateTime>, AppError> {
    raw.filter(|s| !s.trim().is_empty())
        .map(|s| {
            OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|_| {
                AppError::Invalid(format!("{field}: must be an RFC 3339 time such as 2026-11-26T00:00:00Z"))
            })
        })
        .transpose()
}

fn filter_of(q: &UsageQuery) -> Result<UsageFilter, AppError> {
    Ok(UsageFilter {
        user_id: q.user_id,
        api_key_id: q.api_key_id,
        account_id: q.account_id,
        group_id: q.group_id,
        model: q.model.clone().filter(|m| !m.is_empty()),
        start: time_field("start", q.start.as_deref())?,
        end: time_field("end", q.end.as_deref())?,
    })
}

pub async fn list_usage(store: &Store, q: &UsageQuery) -> Result<Page<UsageView>, AppError> {
    let filter = filter_of(q)?;
    let page = q.page.unwrap_or(1).max(1);
    let page_size = q.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(AppError::Invalid(format!("page_size: must be between 1 and {MAX_PAGE_SIZE}")));
    }
    let offset = i64::from(page - 1) * i64::from(page_size);
    let rows = store.list_usage(&filter, offset, i64::from(page_size)).await?;
    let total = store.usage_totals(&filter).await?.requests;
    Ok(Page::new(rows.iter().map(store::UsageRow::view).collect(), total, page, page_size))
}

pub async fn usage_stats(store: &Store, q: &UsageQuery) -> Result<UsageTotals, AppError> {
    Ok(store.usage_totals(&filter_of(q)?).await?)
}
