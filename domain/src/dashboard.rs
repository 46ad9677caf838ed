//! Dashboard figures, shared by the admin page and `GET /api/v1/admin/dashboard/stats`.

use serde::{Deserialize, Serialize};

use crate::usage::{UsageTotals, UsageView};

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
    /// Seconds until the first rate-limited account becomes usable again; `None` when no
    /// account is rate-limited.
    pub next_rate_limit_reset_secs: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DashboardStats {
    pub total_users: i64,
    pub total_api_keys: i64,
    pub active_api_keys: i64,
    pub total_groups: i64,
    pub accounts: AccountCounts,
    /// Usage since 00:00 UTC today.
    pub today: UsageTotals,
    /// Requests per minute over the last hour, oldest first, keyed `YYYY-MM-DDTHH:MM` (UTC).
    /// The store lists only minutes that saw traffic; the service fills in the quiet ones, so
    /// the API and the page always get [`LAST_HOUR_MINUTES`] buckets.
    pub last_hour: Vec<UsageBucket>,
    /// The newest failed requests (status ≥ 400 or an error message), newest first.
    pub recent_errors: Vec<UsageView>,
}

/// Buckets in `DashboardStats::last_hour`, the current minute included.
pub const LAST_HOUR_MINUTES: i64 = 60;

/// How many failed requests `DashboardStats::recent_errors` holds at most.
pub const RECENT_ERRORS: i64 = 10;

/// Usage summed over one bucket: a minute, a day or a model, named by `key`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageBucket {
    pub key: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_tokens: i64,
    pub cache_read_tokens: i64,
    pub total_cost: f64,
    pub actual_cost: f64,
}

impl UsageBucket {
    /// An empty bucket, for a minute or day without traffic.
    pub fn empty(key: impl Into<String>) -> Self {
        UsageBucket { key: key.into(), ..Default::default() }
    }

    /// Adds `other`'s figures to this bucket's (the key stays).
    pub fn add(&mut self, other: &UsageBucket) {
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_creation_tokens += other.cache_creation_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.total_cost += other.total_cost;
        self.actual_cost += other.actual_cost;
    }

    /// Every token the bucket's requests moved: input, output and both cache kinds.
    pub fn tokens(&self) -> i64 {
        self.input_tokens + self.output_tokens + self.cache_creation_tokens + self.cache_read_tokens
    }
}

/// Usage over the last `days` days (today included): per day, oldest first with every day
/// present, and per requested model, busiest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageTrend {
    pub days: Vec<UsageBucket>,
    pub models: Vec<UsageBucket>,
}

/// The ranges the dashboard offers for its trend charts, in days.
pub const TREND_RANGES: [u32; 2] = [7, 30];

/// Longest trend the API serves, in days.
pub const MAX_TREND_DAYS: u32 = 366;

#[cfg(test)]
mod tests {
    use super::UsageBucket;

    #[test]
    fn tokens_add_up_every_kind() {
        let b = UsageBucket {
            requests: 1,
            input_tokens: 1,
            output_tokens: 20,
            cache_creation_tokens: 300,
            cache_read_tokens: 4000,
            actual_cost: 0.5,
            ..UsageBucket::empty("m")
        };
        assert_eq!(b.tokens(), 4321);
        let mut sum = UsageBucket::empty("day");
        sum.add(&b);
        sum.add(&b);
        assert_eq!((sum.key.as_str(), sum.requests, sum.tokens(), sum.actual_cost), ("day", 2, 8642, 1.0));
    }
}
