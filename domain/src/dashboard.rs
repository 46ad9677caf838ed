//! Dashboard figures, shared by the admin page and `GET /api/v1/admin/dashboard/stats`.

use serde::{Deserialize, Serialize};

/// Accounts by state. `rate_limited` and `overloaded` count active accounts whose cooldown
/// has not yet passed, so they overlap with `active`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountCounts {
    pub total: i64,
    pub active: i64,
    pub error: i64,
    pub disabled: i64,
    pub rate_limited: i64,
    pub overloaded: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardStats {
    pub total_users: i64,
    pub total_api_keys: i64,
    pub active_api_keys: i64,
    pub total_groups: i64,
    pub accounts: AccountCounts,
}
