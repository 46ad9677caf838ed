//! Settings an administrator changes at run time (Settings page, `PUT /api/v1/admin/settings`).
//! Each is stored as one row of the `settings` table; a value not stored falls back to the
//! configuration file, so a fresh install behaves exactly as configured. The gateway reads
//! the stored values with its snapshot, so a change applies on the next request of every
//! instance without a restart.

use serde::{Deserialize, Serialize};

use crate::FieldError;

/// Storage keys, one per setting.
pub mod keys {
    pub const SITE_NAME: &str = "site.name";
    pub const PUBLIC_BASE_URL: &str = "site.public_base_url";
    pub const DEFAULT_USER_CONCURRENCY: &str = "users.default_concurrency";
    pub const MAX_ACCOUNT_SWITCHES: &str = "gateway.max_account_switches";
    pub const STICKY_TTL_SECONDS: &str = "gateway.sticky_ttl_seconds";
    pub const WAIT_TIMEOUT_SECONDS: &str = "gateway.wait_timeout_seconds";
    pub const MAX_EXTRA_WAITERS: &str = "gateway.max_extra_waiters";
    pub const OVERLOAD_COOLDOWN_MINUTES: &str = "rate_limit.overload_cooldown_minutes";
    pub const FALLBACK_COOLDOWN_SECONDS: &str = "rate_limit.fallback_cooldown_seconds";
    pub const WINDOW_THRESHOLD_PERCENT: &str = "rate_limit.window_threshold_percent";

    /// The settings the relay reads on every request.
    pub const GATEWAY: &[&str] = &[
        MAX_ACCOUNT_SWITCHES,
        STICKY_TTL_SECONDS,
        WAIT_TIMEOUT_SECONDS,
        MAX_EXTRA_WAITERS,
        OVERLOAD_COOLDOWN_MINUTES,
        FALLBACK_COOLDOWN_SECONDS,
        WINDOW_THRESHOLD_PERCENT,
    ];
}

pub const DEFAULT_SITE_NAME: &str = "sub2api";

/// The relay's tunables that may change at run time. `None`: use the configuration file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayOverrides {
    pub max_account_switches: Option<u32>,
    pub sticky_ttl_seconds: Option<u64>,
    pub wait_timeout_seconds: Option<u64>,
    pub max_extra_waiters: Option<u32>,
    pub overload_cooldown_minutes: Option<u64>,
    pub fallback_cooldown_seconds: Option<u64>,
    pub window_threshold_percent: Option<u8>,
}

impl GatewayOverrides {
    /// Reads the stored gateway settings; values that do not parse are ignored (and the
    /// configured value applies), so one bad row cannot stop the relay.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut o = GatewayOverrides::default();
        for (key, value) in pairs {
            let value = value.trim();
            match key {
                keys::MAX_ACCOUNT_SWITCHES => o.max_account_switches = value.parse().ok(),
                keys::STICKY_TTL_SECONDS => o.sticky_ttl_seconds = value.parse().ok(),
                keys::WAIT_TIMEOUT_SECONDS => o.wait_timeout_seconds = value.parse().ok(),
                keys::MAX_EXTRA_WAITERS => o.max_extra_waiters = value.parse().ok(),
                keys::OVERLOAD_COOLDOWN_MINUTES => o.overload_cooldown_minutes = value.parse().ok(),
                keys::FALLBACK_COOLDOWN_SECONDS => o.fallback_cooldown_seconds = value.parse().ok(),
                keys::WINDOW_THRESHOLD_PERCENT => o.window_threshold_percent = value.parse().ok().filter(|p| *p <= 100),
                _ => {}
            }
        }
        o
    }
}

/// Every setting with the value in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub site_name: String,
    /// How users reach this gateway (`https://gw.example.com`); empty: derived from the
    /// address the admin UI was opened with.
    pub public_base_url: String,
    pub default_user_concurrency: i32,
    pub max_account_switches: u32,
    pub sticky_ttl_seconds: u64,
    pub wait_timeout_seconds: u64,
    pub max_extra_waiters: u32,
    pub overload_cooldown_minutes: u64,
    pub fallback_cooldown_seconds: u64,
    /// A subscription account whose usage window is this full (percent) is not scheduled
    /// until the window resets; 0: only when used up.
    #[serde(default)]
    pub window_threshold_percent: u8,
}

/// Body of `PUT /api/v1/admin/settings`: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsInput {
    pub site_name: Option<String>,
    pub public_base_url: Option<String>,
    pub default_user_concurrency: Option<i32>,
    pub max_account_switches: Option<u32>,
    pub sticky_ttl_seconds: Option<u64>,
    pub wait_timeout_seconds: Option<u64>,
    pub max_extra_waiters: Option<u32>,
    pub overload_cooldown_minutes: Option<u64>,
    pub fallback_cooldown_seconds: Option<u64>,
    #[serde(default)]
    pub window_threshold_percent: Option<u8>,
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &'static str,
    value: Option<T>,
    min: T,
    max: T,
) -> Result<(), FieldError> {
    match value {
        Some(v) if v < min || v > max => Err(FieldError::new(field, format!("must be between {min} and {max}"))),
        _ => Ok(()),
    }
}

impl SettingsInput {
    /// Validates and normalises the input, returning the `(key, value)` rows to store.
    pub fn to_rows(&self) -> Result<Vec<(&'static str, String)>, FieldError> {
        let mut rows = Vec::new();
        if let Some(name) = &self.site_name {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 60 {
                return Err(FieldError::new("site_name", "must be 1 to 60 characters"));
            }
            rows.push((keys::SITE_NAME, name.to_owned()));
        }
        if let Some(url) = &self.public_base_url {
            rows.push((keys::PUBLIC_BASE_URL, normalize_base_url(url)?));
        }
        in_range("default_user_concurrency", self.default_user_concurrency, 0, 10_000)?;
        in_range("max_account_switches", self.max_account_switches, 0, 20)?;
        in_range("sticky_ttl_seconds", self.sticky_ttl_seconds, 0, 7 * 24 * 3600)?;
        in_range("wait_timeout_seconds", self.wait_timeout_seconds, 0, 600)?;
        in_range("max_extra_waiters", self.max_extra_waiters, 0, 10_000)?;
        in_range("overload_cooldown_minutes", self.overload_cooldown_minutes, 0, 24 * 60)?;
        in_range("fallback_cooldown_seconds", self.fallback_cooldown_seconds, 0, 24 * 3600)?;
        in_range("window_threshold_percent", self.window_threshold_percent, 0, 100)?;
        let numbers = [
            (keys::DEFAULT_USER_CONCURRENCY, self.default_user_concurrency.map(|v| v.to_string())),
            (keys::MAX_ACCOUNT_SWITCHES, self.max_account_switches.map(|v| v.to_string())),
            (keys::STICKY_TTL_SECONDS, self.sticky_ttl_seconds.map(|v| v.to_string())),
            (keys::WAIT_TIMEOUT_SECONDS, self.wait_timeout_seconds.map(|v| v.to_string())),
            (keys::MAX_EXTRA_WAITERS, self.max_extra_waiters.map(|v| v.to_string())),
            (keys::OVERLOAD_COOLDOWN_MINUTES, self.overload_cooldown_minutes.map(|v| v.to_string())),
            (keys::FALLBACK_COOLDOWN_SECONDS, self.fallback_cooldown_seconds.map(|v| v.to_string())),
            (keys::WINDOW_THRESHOLD_PERCENT, self.window_threshold_percent.map(|v| v.to_string())),
        ];
        rows.extend(numbers.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        Ok(rows)
    }
}

/// An `http(s)://host[:port][/path]` URL without a trailing slash, or empty.
pub fn normalize_base_url(raw: &str) -> Result<String, FieldError> {
    let url = raw.trim().trim_end_matches('/');
    if url.is_empty() {
        return Ok(String::new());
    }
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') && !url.contains(char::is_whitespace) => {
            Ok(url.to_owned())
        }
        _ => {
            Err(FieldError::new("public_base_url", "must be an http:// or https:// URL such as https://gw.example.com"))
        }
    }
}

/// Body of the change-password form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_validated_and_normalised() {
        let input = SettingsInput {
            site_name: Some("  My gateway ".into()),
            public_base_url: Some("https://gw.example.com/".into()),
            max_account_switches: Some(0),
            fallback_cooldown_seconds: Some(90),
            ..Default::default()
        };
        let rows = input.to_rows().unwrap();
        assert_eq!(
            rows,
            vec![
                (keys::SITE_NAME, "My gateway".to_owned()),
                (keys::PUBLIC_BASE_URL, "https://gw.example.com".to_owned()),
                (keys::MAX_ACCOUNT_SWITCHES, "0".to_owned()),
                (keys::FALLBACK_COOLDOWN_SECONDS, "90".to_owned()),
            ]
        );
        let too_many = SettingsInput { max_account_switches: Some(21), ..Default::default() };
        assert_eq!(too_many.to_rows().unwrap_err().field, "max_account_switches");
        let bad_url = SettingsInput { public_base_url: Some("gw.example.com".into()), ..Default::default() };
        assert_eq!(bad_url.to_rows().unwrap_err().field, "public_base_url");
        assert_eq!(normalize_base_url(" ").unwrap(), "");
    }

    #[test]
    fn overrides_ignore_unparsable_values() {
        let o = GatewayOverrides::from_pairs([
            (keys::MAX_ACCOUNT_SWITCHES, "1"),
            (keys::STICKY_TTL_SECONDS, "soon"),
            (keys::FALLBACK_COOLDOWN_SECONDS, " 30 "),
        ]);
        assert_eq!(o.max_account_switches, Some(1));
        assert_eq!(o.sticky_ttl_seconds, None);
        assert_eq!(o.fallback_cooldown_seconds, Some(30));
    }
}
