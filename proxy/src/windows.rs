//! Subscription usage windows from upstream response headers: Anthropic's
//! `anthropic-ratelimit-unified-{5h,7d,…}-{status,utilization,reset}` and Codex's
//! `x-codex-{primary,secondary}-{used-percent,reset-after-seconds,reset-at,window-minutes}`.
//!
//! Pure parsing; the gateway keeps the latest per account ([`WindowBook`]), stores it when it
//! changes, and benches an account whose window crossed the configured threshold.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::Platform;
use domain::account::UsageWindow;
use http::HeaderMap;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const ANTHROPIC_PREFIX: &str = "anthropic-ratelimit-unified-";
/// A stored window set is rewritten at least this often while it keeps changing a little.
const PERSIST_EVERY: Duration = Duration::from_secs(60);

/// The windows a response describes (empty when it says nothing about them).
pub fn parse(platform: Platform, headers: &HeaderMap, now: OffsetDateTime) -> Vec<UsageWindow> {
    match platform {
        Platform::Anthropic => anthropic(headers, now),
        Platform::Openai => codex(headers, now),
        Platform::Gemini => Vec::new(),
    }
}

fn text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// `5h`, `7d`, `7d_opus`: a window name as Anthropic spells it in the header.
fn is_window_name(name: &str) -> bool {
    let head = name.split('_').next().unwrap_or_default();
    head.len() >= 2 && head.ends_with(['h', 'd']) && head[..head.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

fn anthropic(headers: &HeaderMap, now: OffsetDateTime) -> Vec<UsageWindow> {
    let mut names: Vec<&str> = headers
        .keys()
        .filter_map(|k| k.as_str().strip_prefix(ANTHROPIC_PREFIX))
        .filter_map(|rest| rest.rsplit_once('-').map(|(name, _)| name))
        .filter(|name| is_window_name(name))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let field = |f: &str| text(headers, &format!("{ANTHROPIC_PREFIX}{name}-{f}"));
            let minutes = name.split('_').next().and_then(|head| {
                let n: i64 = head[..head.len() - 1].parse().ok()?;
                Some(if head.ends_with('h') { n * 60 } else { n * 24 * 60 })
            });
            UsageWindow {
                name: name.to_owned(),
                status: field("status").map(str::to_owned),
                // A fraction (0.42 = 42 %).
                used_percent: field("utilization").and_then(|u| u.parse::<f64>().ok()).map(|u| round(u * 100.0)),
                resets_at: field("reset").and_then(parse_instant).map(stamp),
                window_minutes: minutes,
                updated_at: stamp(now),
            }
        })
        .collect()
}

fn codex(headers: &HeaderMap, now: OffsetDateTime) -> Vec<UsageWindow> {
    ["primary", "secondary"]
        .into_iter()
        .filter_map(|name| {
            let field = |f: &str| text(headers, &format!("x-codex-{name}-{f}"));
            let used = field("used-percent").and_then(|u| u.parse::<f64>().ok());
            let resets = field("reset-at").and_then(parse_instant).or_else(|| {
                let after = field("reset-after-seconds")?.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0)?;
                now.checked_add(time::Duration::checked_seconds_f64(after)?)
            });
            (used.is_some() || resets.is_some()).then(|| UsageWindow {
                name: name.to_owned(),
                status: None,
                used_percent: used.map(round),
                resets_at: resets.map(stamp),
                window_minutes: field("window-minutes").and_then(|m| m.parse().ok()),
                updated_at: stamp(now),
            })
        })
        .collect()
}

fn round(p: f64) -> f64 {
    (p * 10.0).round() / 10.0
}

/// Unix seconds or RFC 3339.
fn parse_instant(value: &str) -> Option<OffsetDateTime> {
    match value.parse::<i64>() {
        Ok(secs) => OffsetDateTime::from_unix_timestamp(secs).ok(),
        Err(_) => OffsetDateTime::parse(value, &Rfc3339).ok(),
    }
}

/// When the account should stop being scheduled: the latest reset among windows that are
/// used up or at `threshold` percent or more (0 = only used-up ones count), if in the future.
pub fn bench_until(windows: &[UsageWindow], threshold: u8, now: OffsetDateTime) -> Option<OffsetDateTime> {
    windows
        .iter()
        .filter(|w| w.exhausted() || (threshold > 0 && w.used_percent.is_some_and(|p| p >= f64::from(threshold))))
        .filter_map(|w| w.resets_at.as_deref().and_then(|r| OffsetDateTime::parse(r, &Rfc3339).ok()))
        .filter(|t| *t > now)
        .max()
}

/// The latest windows per account, and what was last stored.
#[derive(Default)]
pub struct WindowBook {
    accounts: Mutex<HashMap<i64, Entry>>,
}

struct Entry {
    windows: Vec<UsageWindow>,
    stored: Vec<UsageWindow>,
    stored_at: Instant,
}

impl WindowBook {
    /// Merges what a response said into the account's windows. `Some(all windows)` when they
    /// changed enough to be stored again (a status or reset changed, a new window, usage moved
    /// by a point or more, or a minute passed).
    pub fn observe(&self, account_id: i64, fresh: Vec<UsageWindow>) -> Option<Vec<UsageWindow>> {
        if fresh.is_empty() {
            return None;
        }
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        let entry = accounts.entry(account_id).or_insert_with(|| Entry {
            windows: Vec::new(),
            stored: Vec::new(),
            stored_at: Instant::now(),
        });
        for w in fresh {
            match entry.windows.iter_mut().find(|old| old.name == w.name) {
                Some(old) => *old = w,
                None => entry.windows.push(w),
            }
        }
        entry.windows.sort_by(|a, b| a.name.cmp(&b.name));
        let changed = entry.windows.len() != entry.stored.len()
            || entry.windows.iter().zip(&entry.stored).any(|(new, old)| {
                new.name != old.name
                    || new.status != old.status
                    || new.resets_at != old.resets_at
                    || (new.used_percent.unwrap_or(0.0) - old.used_percent.unwrap_or(0.0)).abs() >= 1.0
            });
        if !changed && entry.stored_at.elapsed() < PERSIST_EVERY {
            return None;
        }
        entry.stored.clone_from(&entry.windows);
        entry.stored_at = Instant::now();
        Some(entry.windows.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn anthropic_windows_from_unified_headers() {
        let h = headers(&[
            ("anthropic-ratelimit-unified-status", "allowed"),
            ("anthropic-ratelimit-unified-reset", "1800003600"),
            ("anthropic-ratelimit-unified-5h-status", "allowed_warning"),
            ("anthropic-ratelimit-unified-5h-utilization", "0.92"),
            ("anthropic-ratelimit-unified-5h-reset", "1800003600"),
            ("anthropic-ratelimit-unified-7d-status", "allowed"),
            ("anthropic-ratelimit-unified-7d-utilization", "0.31"),
            ("anthropic-ratelimit-unified-7d-reset", "1800500000"),
            ("anthropic-ratelimit-unified-representative-claim", "five_hour"),
        ]);
        let w = parse(Platform::Anthropic, &h, now());
        assert_eq!(w.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["5h", "7d"]);
        assert_eq!(
            (w[0].status.as_deref(), w[0].used_percent, w[0].window_minutes),
            (Some("allowed_warning"), Some(92.0), Some(300))
        );
        assert_eq!(w[0].resets_at.as_deref(), Some("2027-01-15T09:00:00Z"));
        assert_eq!(w[1].window_minutes, Some(7 * 24 * 60));
        assert_eq!(bench_until(&w, 0, now()), None, "nothing used up");
        let until = bench_until(&w, 90, now());
        assert_eq!(until.map(|t| t.unix_timestamp()), Some(1_800_003_600), "the 5h window crossed 90 %");
        assert!(parse(Platform::Anthropic, &HeaderMap::new(), now()).is_empty());
    }

    #[test]
    fn codex_windows_and_only_the_exhausted_one_benches() {
        let h = headers(&[
            ("x-codex-primary-used-percent", "40"),
            ("x-codex-primary-reset-after-seconds", "600"),
            ("x-codex-primary-window-minutes", "300"),
            ("x-codex-secondary-used-percent", "100"),
            ("x-codex-secondary-reset-after-seconds", "86400"),
            ("x-codex-secondary-window-minutes", "10080"),
        ]);
        let w = parse(Platform::Openai, &h, now());
        assert_eq!(w.len(), 2);
        assert!(!w[0].exhausted() && w[1].exhausted());
        assert_eq!(bench_until(&w, 0, now()).map(|t| t.unix_timestamp()), Some(1_800_086_400), "the secondary's reset");
    }

    #[test]
    fn the_book_stores_changes_not_every_response() {
        let book = WindowBook::default();
        let w = |used: f64, status: &str| UsageWindow {
            name: "5h".into(),
            status: Some(status.into()),
            used_percent: Some(used),
            resets_at: Some("2027-01-15T09:20:00Z".into()),
            window_minutes: Some(300),
            updated_at: String::new(),
        };
        assert!(book.observe(1, vec![w(10.0, "allowed")]).is_some(), "first sight");
        assert!(book.observe(1, vec![w(10.4, "allowed")]).is_none(), "a small move waits");
        assert!(book.observe(1, vec![w(11.5, "allowed")]).is_some(), "a point or more");
        assert!(book.observe(1, vec![w(11.5, "rejected")]).is_some(), "status changed");
        assert!(book.observe(1, vec![]).is_none());
    }
}
