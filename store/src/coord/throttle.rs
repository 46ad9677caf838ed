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

    /// Starts a sign-in attempt: `Err(wait)` when any of `keys` is locked out at `now`;
    /// otherwise the attempt is counted as a failure up front, in the same critical section,
    /// so concurrent attempts cannot slip past the limit. Call `record_success` when the
    /// credentials turn out to be right.
    pub fn try_begin(&self, keys: &[&str], now: Instant) -> Result<(), Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let locked = keys
            .iter()
            .filter_map(|k| map.get(*k))
            .filter(|(count, start)| *count >= self.max_failures && now < *start + self.window)
            .map(|(_, start)| *start + self.window - now)
            .max();
        if let Some(wait) = locked {
            return Err(wait);
        }
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
        Ok(())
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
    fn attempts_count_before_the_password_is_checked() {
        let t = LoginThrottle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        // Two attempts in flight at once use up the budget before either finishes.
        assert!(t.try_begin(&["ip:9"], now).is_ok());
        assert!(t.try_begin(&["ip:9"], now).is_ok());
        assert!(t.try_begin(&["ip:9"], now).is_err());
    }

    #[test]
    fn locks_after_limit_and_unlocks_after_window() {
        let t = LoginThrottle::new(3, Duration::from_secs(60));
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.try_begin(&["ip:1", "email:a"], now), Ok(()));
        }
        assert!(t.try_begin(&["ip:1", "email:b"], now + Duration::from_secs(1)).is_err(), "the IP is locked");
        assert!(t.try_begin(&["ip:2", "email:a"], now).is_err(), "the email is locked from any IP");
        assert_eq!(t.try_begin(&["ip:1", "email:c"], now + Duration::from_secs(61)), Ok(()), "window over");
        t.record_success(&["ip:1", "email:a"]);
        assert_eq!(t.try_begin(&["ip:1", "email:a"], now + Duration::from_secs(61)), Ok(()));
    }
}
