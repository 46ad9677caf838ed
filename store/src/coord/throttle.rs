//! The sign-in throttle: failed sign-ins counted per key (client IP, email) in a fixed window.
//!
//! It lives in one process only and must not be used for gateway coordination shared between
//! instances; that is the [`Coordinator`](super::Coordinator)'s job.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts failed sign-ins per key (client IP, email) in a fixed window and locks a key out
/// once it reaches the limit, until its window ends.
#[derive(Debug)]
pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    /// A std mutex: every critical section is a few map operations and never awaits.
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self { max_failures: max_failures.max(1), window, failures: Mutex::new(HashMap::new()) }
    }

    /// `Some(wait)` when any of `keys` is locked out at `now`.
    pub fn locked_for(&self, keys: &[&str], now: Instant) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|k| map.get(*k))
            .filter(|(count, start)| *count >= self.max_failures && now < *start + self.window)
            .map(|(_, start)| *start + self.window - now)
            .max()
    }

    pub fn record_failure(&self, keys: &[&str], now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Keep the map bounded under a flood of distinct keys.
        if map.len() > 100_000 {
            map.retain(|_, (_, start)| now < *start + self.window);
        }
        for key in keys {
            let entry = map.entry((*key).to_owned()).or_insert((0, now));
            if now >= entry.1 + self.window {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
    }

    pub fn record_success(&self, keys: &[&str]) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            map.remove(*key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_limit_and_unlocks_after_window() {
        let t = LoginThrottle::new(3, Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..2 {
            t.record_failure(&["ip:1", "email:a"], now);
        }
        assert_eq!(t.locked_for(&["ip:1"], now), None);
        t.record_failure(&["ip:1", "email:a"], now);
        assert!(t.locked_for(&["email:a"], now + Duration::from_secs(1)).is_some());
        assert!(t.locked_for(&["ip:2", "email:a"], now).is_some(), "email lock applies from any IP");
        assert_eq!(t.locked_for(&["ip:1"], now + Duration::from_secs(61)), None);
        t.record_success(&["ip:1", "email:a"]);
        assert_eq!(t.locked_for(&["ip:1", "email:a"], now), None);
    }
}
