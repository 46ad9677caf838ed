//! Usage records as the admin UI and REST API show them, and the filters over them.

use serde::{Deserialize, Serialize};

/// One relayed request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageView {
    pub id: i64,
    pub request_id: String,
    pub user_id: Option<i64>,
    pub api_key_id: Option<i64>,
    pub account_id: Option<i64>,
    pub group_id: Option<i64>,
    pub requested_model: String,
    pub upstream_model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_tokens: i64,
    pub cache_creation_5m_tokens: i64,
    pub cache_creation_1h_tokens: i64,
    pub cache_read_tokens: i64,
    pub total_cost: f64,
    pub actual_cost: f64,
    pub rate_multiplier: f64,
    pub stream: bool,
    pub status_code: i32,
    pub error_message: String,
    pub duration_ms: i64,
    pub first_token_ms: Option<i64>,
    pub created_at: String,
}

/// Query of `GET /api/v1/admin/usage`, `/usage/stats` and `/usage/export`. `start`/`end`
/// are RFC 3339 times, or dates (`YYYY-MM-DD`, UTC) meaning the start of that day for
/// `start` and the end of that day for `end`; an RFC 3339 `end` is exclusive. `status` is
/// `ok`, `error` (see [`is_error`]) or one HTTP status code.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    pub user_id: Option<i64>,
    pub api_key_id: Option<i64>,
    pub account_id: Option<i64>,
    pub group_id: Option<i64>,
    pub model: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub status: Option<String>,
}

/// Whether a usage record counts as failed: an error status or an error message (a stream
/// can break after a 200 went out).
pub fn is_error(status_code: i32, error_message: &str) -> bool {
    status_code >= 400 || !error_message.is_empty()
}

/// An id and what to call it, for the choices of a filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedId {
    pub id: i64,
    pub name: String,
}

/// What the usage filters can choose from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageFilterOptions {
    pub users: Vec<NamedId>,
    pub api_keys: Vec<NamedId>,
    pub accounts: Vec<NamedId>,
    pub groups: Vec<NamedId>,
    /// Every requested model that appears in the log.
    pub models: Vec<String>,
}

/// Largest page the API serves.
pub const MAX_PAGE_SIZE: u32 = 500;
pub const DEFAULT_PAGE_SIZE: u32 = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: u32,
    pub page_size: u32,
    pub pages: i64,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, total: i64, page: u32, page_size: u32) -> Self {
        let size = i64::from(page_size.max(1));
        Page { items, total, page, page_size, pages: (total + size - 1) / size }
    }
}

/// Totals over the rows a `UsageQuery` selects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageTotals {
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_tokens: i64,
    pub cache_read_tokens: i64,
    pub total_cost: f64,
    pub actual_cost: f64,
}

#[cfg(test)]
mod tests {
    use super::{Page, is_error};

    #[test]
    fn errors_are_statuses_or_messages() {
        assert!(!is_error(200, ""));
        assert!(!is_error(399, ""));
        assert!(is_error(429, ""));
        assert!(is_error(200, "stream broke"));
    }

    #[test]
    fn pages_round_up() {
        assert_eq!(Page::<u8>::new(vec![], 0, 1, 20).pages, 0);
        assert_eq!(Page::<u8>::new(vec![], 41, 1, 20).pages, 3);
        assert_eq!(Page::<u8>::new(vec![], 40, 1, 20).pages, 2);
    }
}
