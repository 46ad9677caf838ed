//! Business rules shared by the server functions and the admin REST API. Nothing here knows
//! whether it was called from a page or from `/api/v1/admin`.

pub mod accounts;
pub mod admin_key;
pub mod auth;
pub mod groups;
pub mod usage;
pub mod users;

use domain::DashboardStats;
use store::Store;
use time::OffsetDateTime;

use crate::AppError;

pub async fn dashboard_stats(store: &Store) -> Result<DashboardStats, AppError> {
    Ok(store.dashboard_stats(OffsetDateTime::now_utc()).await?)
}
