//! Business rules shared by the server functions and the admin REST API. Nothing here knows
//! whether it was called from a page or from `/api/v1/admin`.

pub mod accounts;
pub mod admin_key;
pub mod auth;
pub mod groups;
pub mod models;
pub mod oauth;
pub mod proxies;
pub mod settings;
pub mod usage;
pub mod users;

use domain::dashboard::LAST_HOUR_MINUTES;
use domain::{DashboardStats, UsageBucket};
use store::Store;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::AppError;

/// The dashboard as of now, with every minute of the last hour present (quiet ones empty) so
/// charts and automation need not fill gaps.
pub async fn dashboard_stats(store: &Store) -> Result<DashboardStats, AppError> {
    let now = OffsetDateTime::now_utc();
    let mut stats = store.dashboard_stats(now).await?;
    let this_minute = now.to_offset(UtcOffset::UTC);
    let mut busy: std::collections::HashMap<String, UsageBucket> =
        stats.last_hour.drain(..).map(|b| (b.key.clone(), b)).collect();
    for ago in (0..LAST_HOUR_MINUTES).rev() {
        let key = (this_minute - Duration::minutes(ago))
            .format(format_description!("[year]-[month]-[day]T[hour]:[minute]"))
            .map_err(|_| AppError::Internal)?;
        stats.last_hour.push(busy.remove(&key).unwrap_or_else(|| UsageBucket::empty(key)));
    }
    Ok(stats)
}
