//! Usage log queries, shared by the admin REST API, the Usage page and the dashboard: parsing
//! a `UsageQuery` into a store filter, pages, totals, keyset batches for the CSV export, the
//! filter choices and the daily / per-model trend.

use std::collections::{BTreeMap, HashMap};

use domain::dashboard::MAX_TREND_DAYS;
use domain::usage::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use domain::{NamedId, Page, UsageBucket, UsageFilterOptions, UsageQuery, UsageTotals, UsageTrend, UsageView};
use store::{StatusFilter, Store, UsageFilter};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, Time, UtcOffset};

use crate::AppError;

const DATE: &[time::format_description::BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// Which end of a range a time field is: a bare date means the start of that day for
/// `Start` and the start of the next day (the whole day included) for `End`.
#[derive(Clone, Copy)]
enum Bound {
    Start,
    End,
}

fn time_field(field: &str, raw: Option<&str>, bound: Bound) -> Result<Option<OffsetDateTime>, AppError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Ok(Some(t));
    }
    let date = Date::parse(raw, DATE).ok().and_then(|d| match bound {
        Bound::Start => Some(d),
        Bound::End => d.next_day(),
    });
    date.map(|d| Some(d.with_time(Time::MIDNIGHT).assume_utc())).ok_or_else(|| {
        AppError::Invalid(format!(
            "{field}: must be a date such as 2026-11-26 or an RFC 3339 time such as 2026-11-26T00:00:00Z"
        ))
    })
}

fn status_field(raw: Option<&str>) -> Result<Option<StatusFilter>, AppError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some("ok") => Ok(Some(StatusFilter::Ok)),
        Some("error") => Ok(Some(StatusFilter::Error)),
        Some(code) => match code.parse::<i32>() {
            Ok(code) if (100..=599).contains(&code) => Ok(Some(StatusFilter::Code(code))),
            _ => Err(AppError::Invalid("status: must be ok, error or an HTTP status code such as 429".into())),
        },
    }
}

/// The store filter a query describes; errors name the offending field.
pub fn filter(q: &UsageQuery) -> Result<UsageFilter, AppError> {
    Ok(UsageFilter {
        user_id: q.user_id,
        api_key_id: q.api_key_id,
        account_id: q.account_id,
        group_id: q.group_id,
        model: q.model.clone().filter(|m| !m.is_empty()),
        start: time_field("start", q.start.as_deref(), Bound::Start)?,
        end: time_field("end", q.end.as_deref(), Bound::End)?,
        status: status_field(q.status.as_deref())?,
    })
}

pub async fn list_usage(store: &Store, q: &UsageQuery) -> Result<Page<UsageView>, AppError> {
    let filter = filter(q)?;
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
    Ok(store.usage_totals(&filter(q)?).await?)
}

/// The next `limit` rows of `filter` after `after_id`, oldest first (one export batch).
pub async fn usage_after(
    store: &Store,
    filter: &UsageFilter,
    after_id: i64,
    limit: i64,
) -> Result<Vec<UsageView>, AppError> {
    Ok(store.list_usage_after(filter, after_id, limit).await?.iter().map(store::UsageRow::view).collect())
}

/// Users, keys, accounts, groups and models to filter by. Every list is small next to the
/// log, so the page loads them whole.
pub async fn filter_options(store: &Store) -> Result<UsageFilterOptions, AppError> {
    let named = |id: i64, name: String| NamedId { id, name };
    Ok(UsageFilterOptions {
        users: store.list_users().await?.into_iter().map(|u| named(u.id, u.email)).collect(),
        api_keys: store
            .list_api_keys(None)
            .await?
            .into_iter()
            .map(|k| named(k.id, format!("{} ({}…)", k.name, k.key_prefix)))
            .collect(),
        accounts: store.list_accounts().await?.into_iter().map(|a| named(a.id, a.name)).collect(),
        groups: store.list_groups().await?.into_iter().map(|g| named(g.id, g.name)).collect(),
        models: store.usage_models().await?,
    })
}

/// Requests, tokens and cost per UTC day for the last `days` days up to `now` (every day
/// present, quiet ones empty) and per requested model over the same days.
pub async fn usage_trend(store: &Store, days: u32, now: OffsetDateTime) -> Result<UsageTrend, AppError> {
    if !(1..=MAX_TREND_DAYS).contains(&days) {
        return Err(AppError::Invalid(format!("days: must be between 1 and {MAX_TREND_DAYS}")));
    }
    let today = now.to_offset(UtcOffset::UTC).date();
    let first = today - Duration::days(i64::from(days) - 1);
    let filter = UsageFilter { start: Some(first.with_time(Time::MIDNIGHT).assume_utc()), ..Default::default() };
    let rows = store.usage_by_day_and_model(&filter).await?;

    let mut per_day: BTreeMap<String, UsageBucket> = BTreeMap::new();
    let mut day = first;
    while day <= today {
        let key = day.format(DATE).map_err(|_| AppError::Internal)?;
        per_day.insert(key.clone(), UsageBucket::empty(key));
        day = day.next_day().ok_or(AppError::Internal)?;
    }
    let mut per_model: HashMap<String, UsageBucket> = HashMap::new();
    for (day, usage) in &rows {
        // Rows stamped after `now` (clock skew between instances) still count for today.
        let key =
            if per_day.contains_key(day) { day.clone() } else { today.format(DATE).map_err(|_| AppError::Internal)? };
        per_day.entry(key.clone()).or_insert_with(|| UsageBucket::empty(key)).add(usage);
        per_model.entry(usage.key.clone()).or_insert_with(|| UsageBucket::empty(usage.key.clone())).add(usage);
    }
    let mut models: Vec<UsageBucket> = per_model.into_values().collect();
    models.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.key.cmp(&b.key)));
    Ok(UsageTrend { days: per_day.into_values().collect(), models })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn dates_cover_whole_days_and_times_pass_through() {
        let start = time_field("start", Some("2026-11-26"), Bound::Start).unwrap();
        let end = time_field("end", Some("2026-11-26"), Bound::End).unwrap();
        assert_eq!(start, Some(datetime!(2026-11-26 0:00 UTC)));
        assert_eq!(end, Some(datetime!(2026-11-27 0:00 UTC)), "the end date is included");
        let exact = time_field("end", Some("2026-11-26T12:30:00Z"), Bound::End).unwrap();
        assert_eq!(exact, Some(datetime!(2026-11-26 12:30 UTC)));
        assert_eq!(time_field("end", Some("  "), Bound::End), Ok(None));
        let bad = time_field("end", Some("26/11/2026"), Bound::End);
        assert!(matches!(&bad, Err(AppError::Invalid(m)) if m.starts_with("end:")), "{bad:?}");
    }

    #[test]
    fn status_is_ok_error_or_a_code() {
        assert_eq!(status_field(None), Ok(None));
        assert_eq!(status_field(Some("ok")), Ok(Some(StatusFilter::Ok)));
        assert_eq!(status_field(Some("error")), Ok(Some(StatusFilter::Error)));
        assert_eq!(status_field(Some("429")), Ok(Some(StatusFilter::Code(429))));
        assert!(status_field(Some("42")).is_err());
        assert!(status_field(Some("failed")).is_err());
    }
}
