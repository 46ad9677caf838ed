//! The in-process [`Coordinator`], used when no Redis is configured: a single gateway instance
//! whose coordination state lives and dies with the process.
//!
//! All state sits behind one std mutex. Expired entries are dropped lazily whenever their key
//! is touched, and [`MemoryCoordinator::spawn_purge`] sweeps the rest periodically; a key
//! whose leases, tickets and waiters are all gone leaves no entry behind, so the maps only
//! grow with live state. This module must not block or await while holding the mutex.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Cooldown, CooldownKind, CoordResult, Coordinator, LockToken, QueueTicket, SlotLease, SlotLoad};

/// How often the task started by [`MemoryCoordinator::spawn_purge`] sweeps expired entries.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(30);

/// Longest TTL honoured; longer ones are cut to this so deadlines cannot overflow.
const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Coordination state of one process. Cloning is cheap and shares the state.
#[derive(Debug, Clone, Default)]
pub struct MemoryCoordinator {
    /// A std mutex, not tokio's: every critical section is a few map operations, never
    /// awaits, and never blocks, so a lock held across an `.await` cannot happen.
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Slot leases, queue tickets and waiters per slot key. An entry exists only while it has
    /// a live lease or ticket or someone waits on it (see [`KeyState::is_idle`]).
    keys: HashMap<String, KeyState>,
    /// Sticky key → account id.
    sticky: HashMap<String, Expiring<i64>>,
    /// Cooldown end per account and kind; an account without a cooldown in force has no entry
    /// once it is touched or swept.
    cooldowns: HashMap<i64, BTreeMap<CooldownKind, OffsetDateTime>>,
    /// Lock key → the holder's token.
    locks: HashMap<String, Expiring<u64>>,
    /// Counter key → value in the current window.
    counters: HashMap<String, Expiring<i64>>,
    /// Last id handed out for a lease, ticket or lock token; ids are never reused.
    last_id: u64,
}

#[derive(Debug)]
struct Expiring<T> {
    value: T,
    expires_at: Instant,
}

impl<T> Expiring<T> {
    fn is_live(&self, now: Instant) -> bool {
        now < self.expires_at
    }
}

#[derive(Debug, Default)]
struct KeyState {
    slots: Leases,
    queue: Leases,
    /// Wakes `wait_for_release` callers on a release. Present while someone waits: each
    /// waiter holds a clone, so a strong count of one means nobody does.
    wake: Option<Arc<Notify>>,
}

impl KeyState {
    /// Forgets the wake-up once no waiter holds it.
    fn drop_unused_wake(&mut self) {
        if self.wake.as_ref().is_some_and(|wake| Arc::strong_count(wake) == 1) {
            self.wake = None;
        }
    }

    fn is_idle(&self) -> bool {
        self.slots.0.is_empty() && self.queue.0.is_empty() && self.wake.is_none()
    }
}

/// Lease id → expiry.
#[derive(Debug, Default)]
struct Leases(HashMap<u64, Instant>);

impl Leases {
    /// Drops expired leases; returns how many.
    fn purge(&mut self, now: Instant) -> usize {
        let before = self.0.len();
        self.0.retain(|_, expires_at| now < *expires_at);
        before - self.0.len()
    }

    fn count(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX)
    }

    /// Whether one more fits under `limit` (0: unlimited).
    fn has_room(&self, limit: u32) -> bool {
        limit == 0 || self.count() < limit
    }

    fn earliest_expiry(&self) -> Option<Instant> {
        self.0.values().min().copied()
    }
}

impl State {
    fn next_id(&mut self) -> u64 {
        self.last_id = self.last_id.wrapping_add(1);
        self.last_id
    }

    /// The entry of slot key `key`, created if missing, with expired leases and tickets
    /// dropped. Call [`tidy`](Self::tidy) once done with it.
    fn key_mut(&mut self, key: &str, now: Instant) -> &mut KeyState {
        let entry = self.keys.entry(key.to_owned()).or_default();
        entry.slots.purge(now);
        entry.queue.purge(now);
        entry
    }

    /// Removes the entry of `key` if nothing in it is live any more.
    fn tidy(&mut self, key: &str) {
        let Some(entry) = self.keys.get_mut(key) else { return };
        entry.drop_unused_wake();
        if entry.is_idle() {
            self.keys.remove(key);
        }
    }

    /// The cooldowns of `account_id` still in force at `now`; drops the account when none is.
    fn live_cooldowns(
        &mut self,
        account_id: i64,
        now: OffsetDateTime,
    ) -> Option<&mut BTreeMap<CooldownKind, OffsetDateTime>> {
        let kinds = self.cooldowns.get_mut(&account_id)?;
        kinds.retain(|_, until| *until > now);
        if kinds.is_empty() {
            self.cooldowns.remove(&account_id);
            return None;
        }
        self.cooldowns.get_mut(&account_id)
    }
}

/// The live entry of `key`, dropping it first if it has expired.
fn live_entry<'m, T>(
    map: &'m mut HashMap<String, Expiring<T>>,
    key: &str,
    now: Instant,
) -> Option<&'m mut Expiring<T>> {
    if map.get(key).is_some_and(|entry| !entry.is_live(now)) {
        map.remove(key);
    }
    map.get_mut(key)
}

/// Drops expired entries of `map`; returns how many.
fn purge_map<T>(map: &mut HashMap<String, Expiring<T>>, now: Instant) -> usize {
    let before = map.len();
    map.retain(|_, entry| entry.is_live(now));
    before - map.len()
}

fn deadline(now: Instant, ttl: Duration) -> Instant {
    now + ttl.min(MAX_TTL)
}

/// Tidies a key's entry when a `wait_for_release` call ends, also when its future is dropped
/// mid-wait, so waiters that gave up leave no state behind.
struct TidyOnDrop<'a> {
    coord: &'a MemoryCoordinator,
    key: &'a str,
}

impl Drop for TidyOnDrop<'_> {
    fn drop(&mut self) {
        self.coord.lock().tidy(self.key);
    }
}

impl MemoryCoordinator {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections leave the maps consistent at every step, so a panic elsewhere
        // while holding the lock does not make the state unusable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops every expired entry and every idle key now; returns how many entries went.
    pub fn purge_expired(&self) -> usize {
        let mut guard = self.lock();
        let state = &mut *guard;
        let now = Instant::now();
        let wall_now = OffsetDateTime::now_utc();
        let mut removed = 0;
        for entry in state.keys.values_mut() {
            removed += entry.slots.purge(now) + entry.queue.purge(now);
            entry.drop_unused_wake();
        }
        state.keys.retain(|_, entry| !entry.is_idle());
        removed += purge_map(&mut state.sticky, now) + purge_map(&mut state.locks, now);
        removed += purge_map(&mut state.counters, now);
        state.cooldowns.retain(|_, kinds| {
            let before = kinds.len();
            kinds.retain(|_, until| *until > wall_now);
            removed += before - kinds.len();
            !kinds.is_empty()
        });
        removed
    }

    /// Sweeps expired entries every [`PURGE_INTERVAL`] on `tasks` until `cancel` fires. Lazy
    /// expiry keeps answers right without it; the sweep bounds memory held by keys nobody
    /// touches again.
    pub fn spawn_purge(&self, tasks: &TaskTracker, cancel: CancellationToken) -> JoinHandle<()> {
        let coord = self.clone();
        tasks.spawn(async move {
            let mut every = tokio::time::interval(PURGE_INTERVAL);
            every.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    _ = every.tick() => {
                        let removed = coord.purge_expired();
                        if removed > 0 {
                            tracing::debug!(removed, "expired coordination entries purged");
                        }
                    }
                }
            }
        })
    }
}

#[async_trait]
impl Coordinator for MemoryCoordinator {
    async fn try_acquire_slot(&self, key: &str, limit: u32, ttl: Duration) -> CoordResult<Option<SlotLease>> {
        let mut state = self.lock();
        let now = Instant::now();
        let id = state.next_id();
        let entry = state.key_mut(key, now);
        let granted = entry.slots.has_room(limit);
        if granted {
            entry.slots.0.insert(id, deadline(now, ttl));
        }
        state.tidy(key);
        Ok(granted.then(|| SlotLease::new(key, id)))
    }

    async fn release_slot(&self, lease: &SlotLease) -> CoordResult<bool> {
        let mut state = self.lock();
        let now = Instant::now();
        let entry = state.key_mut(lease.key(), now);
        let released = entry.slots.0.remove(&lease.id()).is_some();
        if released && let Some(wake) = &entry.wake {
            wake.notify_waiters();
        }
        state.tidy(lease.key());
        Ok(released)
    }

    async fn refresh_slot(&self, lease: &SlotLease, ttl: Duration) -> CoordResult<bool> {
        let mut state = self.lock();
        let now = Instant::now();
        let entry = state.key_mut(lease.key(), now);
        let refreshed = match entry.slots.0.get_mut(&lease.id()) {
            Some(expires_at) => {
                *expires_at = deadline(now, ttl);
                true
            }
            None => false,
        };
        state.tidy(lease.key());
        Ok(refreshed)
    }

    async fn slot_loads(&self, keys: &[&str]) -> CoordResult<Vec<SlotLoad>> {
        let mut state = self.lock();
        let now = Instant::now();
        let mut loads = Vec::with_capacity(keys.len());
        for key in keys {
            let load = match state.keys.get_mut(*key) {
                Some(entry) => {
                    entry.slots.purge(now);
                    entry.queue.purge(now);
                    SlotLoad { held: entry.slots.count(), waiting: entry.queue.count() }
                }
                None => SlotLoad::default(),
            };
            loads.push(load);
            state.tidy(key);
        }
        Ok(loads)
    }

    async fn wait_for_release(&self, key: &str, limit: u32, timeout: Duration) -> CoordResult<bool> {
        let now = Instant::now();
        let give_up_at = deadline(now, timeout);
        // Declared before the registration so it runs after the `Notified` is dropped.
        let _tidy = TidyOnDrop { coord: self, key };
        let (notified, wake_at, expiry_first) = {
            let mut state = self.lock();
            let entry = state.key_mut(key, now);
            if entry.slots.has_room(limit) {
                return Ok(true);
            }
            let (wake_at, expiry_first) = match entry.slots.earliest_expiry() {
                Some(expiry) if expiry <= give_up_at => (expiry, true),
                _ => (give_up_at, false),
            };
            let wake = Arc::clone(entry.wake.get_or_insert_with(Arc::default));
            let mut notified = Box::pin(wake.notified_owned());
            // Registered while the lock is held: any release from here on wakes this waiter.
            notified.as_mut().enable();
            (notified, wake_at, expiry_first)
        };
        let released = tokio::time::timeout_at(wake_at, notified).await.is_ok();
        // Not released but woken at a lease's expiry: that slot is free now.
        Ok(released || expiry_first)
    }

    async fn try_enter_queue(&self, key: &str, max_waiters: u32, ttl: Duration) -> CoordResult<Option<QueueTicket>> {
        let mut state = self.lock();
        let now = Instant::now();
        let id = state.next_id();
        let entry = state.key_mut(key, now);
        let admitted = entry.queue.count() < max_waiters;
        if admitted {
            entry.queue.0.insert(id, deadline(now, ttl));
        }
        state.tidy(key);
        Ok(admitted.then(|| QueueTicket::new(key, id)))
    }

    async fn leave_queue(&self, ticket: &QueueTicket) -> CoordResult<bool> {
        let mut state = self.lock();
        let now = Instant::now();
        let left = state.key_mut(ticket.key(), now).queue.0.remove(&ticket.id()).is_some();
        state.tidy(ticket.key());
        Ok(left)
    }

    async fn get_sticky(&self, key: &str) -> CoordResult<Option<i64>> {
        let mut state = self.lock();
        Ok(live_entry(&mut state.sticky, key, Instant::now()).map(|binding| binding.value))
    }

    async fn set_sticky(&self, key: &str, account_id: i64, ttl: Duration) -> CoordResult<()> {
        let expires_at = deadline(Instant::now(), ttl);
        self.lock().sticky.insert(key.to_owned(), Expiring { value: account_id, expires_at });
        Ok(())
    }

    async fn touch_sticky(&self, key: &str, ttl: Duration) -> CoordResult<bool> {
        let mut state = self.lock();
        let now = Instant::now();
        let Some(binding) = live_entry(&mut state.sticky, key, now) else { return Ok(false) };
        binding.expires_at = deadline(now, ttl);
        Ok(true)
    }

    async fn delete_sticky(&self, key: &str) -> CoordResult<bool> {
        let mut state = self.lock();
        Ok(state.sticky.remove(key).is_some_and(|binding| binding.is_live(Instant::now())))
    }

    async fn delete_sticky_if(&self, key: &str, account_id: i64) -> CoordResult<bool> {
        let mut state = self.lock();
        let bound_here = live_entry(&mut state.sticky, key, Instant::now()).is_some_and(|b| b.value == account_id);
        if bound_here {
            state.sticky.remove(key);
        }
        Ok(bound_here)
    }

    async fn set_cooldown(
        &self,
        account_id: i64,
        kind: CooldownKind,
        until: OffsetDateTime,
    ) -> CoordResult<OffsetDateTime> {
        let mut state = self.lock();
        let now = OffsetDateTime::now_utc();
        let current = state.live_cooldowns(account_id, now).and_then(|kinds| kinds.get(&kind).copied());
        let in_force = current.map_or(until, |current| current.max(until));
        if in_force > now {
            state.cooldowns.entry(account_id).or_default().insert(kind, in_force);
        }
        Ok(in_force)
    }

    async fn clear_cooldown(&self, account_id: i64, kind: CooldownKind) -> CoordResult<bool> {
        let mut state = self.lock();
        let now = OffsetDateTime::now_utc();
        let cleared = state.live_cooldowns(account_id, now).is_some_and(|kinds| kinds.remove(&kind).is_some());
        // Drops the account's entry if that was its last cooldown.
        state.live_cooldowns(account_id, now);
        Ok(cleared)
    }

    async fn cooldowns(&self, account_ids: &[i64]) -> CoordResult<HashMap<i64, Vec<Cooldown>>> {
        let mut state = self.lock();
        let now = OffsetDateTime::now_utc();
        let mut found = HashMap::new();
        for &account_id in account_ids {
            if let Some(kinds) = state.live_cooldowns(account_id, now) {
                let list = kinds.iter().map(|(&kind, &until)| Cooldown { kind, until }).collect();
                found.insert(account_id, list);
            }
        }
        Ok(found)
    }

    async fn try_lock(&self, key: &str, ttl: Duration) -> CoordResult<Option<LockToken>> {
        let mut state = self.lock();
        let now = Instant::now();
        if live_entry(&mut state.locks, key, now).is_some() {
            return Ok(None);
        }
        let token = state.next_id();
        state.locks.insert(key.to_owned(), Expiring { value: token, expires_at: deadline(now, ttl) });
        Ok(Some(LockToken::new(key, token)))
    }

    async fn unlock(&self, token: &LockToken) -> CoordResult<bool> {
        let mut state = self.lock();
        let held = live_entry(&mut state.locks, token.key(), Instant::now()).is_some_and(|l| l.value == token.token());
        if held {
            state.locks.remove(token.key());
        }
        Ok(held)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> CoordResult<i64> {
        let mut state = self.lock();
        let now = Instant::now();
        if let Some(counter) = live_entry(&mut state.counters, key, now) {
            counter.value = counter.value.saturating_add(by);
            return Ok(counter.value);
        }
        state.counters.insert(key.to_owned(), Expiring { value: by, expires_at: deadline(now, ttl) });
        Ok(by)
    }
}

#[cfg(test)]
mod tests {
    //! Memory-only behaviour, on tokio's paused clock; the shared behaviour is in `contract`.

    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn is_empty(coord: &MemoryCoordinator) -> bool {
        let state = coord.lock();
        state.keys.is_empty()
            && state.sticky.is_empty()
            && state.cooldowns.is_empty()
            && state.locks.is_empty()
            && state.counters.is_empty()
    }

    #[tokio::test(start_paused = true)]
    async fn lease_expires_exactly_at_its_ttl() {
        let coord = MemoryCoordinator::new();
        let lease = coord.try_acquire_slot("account:1", 1, Duration::from_secs(10)).await.unwrap();
        assert!(lease.is_some());
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(coord.try_acquire_slot("account:1", 1, HOUR).await.unwrap().is_none(), "still held 1 ms before");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(coord.slot_count("account:1").await.unwrap(), 0);
        assert!(coord.try_acquire_slot("account:1", 1, HOUR).await.unwrap().is_some(), "free at the TTL");
    }

    #[tokio::test(start_paused = true)]
    async fn waiter_wakes_when_the_blocking_lease_expires() {
        let coord = MemoryCoordinator::new();
        coord.try_acquire_slot("account:1", 1, Duration::from_secs(5)).await.unwrap().unwrap();
        let start = Instant::now();
        assert!(coord.wait_for_release("account:1", 1, Duration::from_secs(60)).await.unwrap());
        assert_eq!(start.elapsed(), Duration::from_secs(5), "woken at the expiry, not the timeout");
        assert!(coord.try_acquire_slot("account:1", 1, HOUR).await.unwrap().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn finished_work_leaves_no_state() {
        let coord = MemoryCoordinator::new();
        let lease = coord.try_acquire_slot("account:1", 0, HOUR).await.unwrap().unwrap();
        assert!(coord.try_acquire_slot("account:2", 1, HOUR).await.unwrap().is_some());
        let ticket = coord.try_enter_queue("account:1", 5, HOUR).await.unwrap().unwrap();
        // A waiter that times out, and one whose future is dropped mid-wait.
        let blocked = coord.wait_for_release("account:2", 1, Duration::from_millis(10)).await.unwrap();
        assert!(!blocked);
        let abandoned = tokio::time::timeout(Duration::from_millis(10), coord.wait_for_release("account:2", 1, HOUR));
        assert!(abandoned.await.is_err());
        assert!(coord.lock().keys.get("account:2").is_some_and(|entry| entry.wake.is_none()), "no waiter left");
        coord.release_slot(&lease).await.unwrap();
        coord.leave_queue(&ticket).await.unwrap();
        coord.set_sticky("s", 1, HOUR).await.unwrap();
        coord.delete_sticky("s").await.unwrap();
        let token = coord.try_lock("l", HOUR).await.unwrap().unwrap();
        coord.unlock(&token).await.unwrap();
        coord.set_cooldown(1, CooldownKind::Overloaded, OffsetDateTime::now_utc() + HOUR).await.unwrap();
        coord.clear_cooldown(1, CooldownKind::Overloaded).await.unwrap();
        assert_eq!(coord.lock().keys.len(), 1, "only account:2's lease is left");
        tokio::time::advance(HOUR).await;
        assert_eq!(coord.slot_loads(&["account:2"]).await.unwrap(), vec![SlotLoad::default()]);
        assert!(is_empty(&coord), "{:?}", coord.lock());
    }

    #[tokio::test(start_paused = true)]
    async fn purge_task_sweeps_keys_nobody_touches_again() {
        let coord = MemoryCoordinator::new();
        let ttl = Duration::from_secs(1);
        coord.try_acquire_slot("account:1", 3, ttl).await.unwrap().unwrap();
        coord.try_enter_queue("account:1", 3, ttl).await.unwrap().unwrap();
        coord.set_sticky("s", 1, ttl).await.unwrap();
        coord.try_lock("l", ttl).await.unwrap().unwrap();
        coord.incr("c", 1, ttl).await.unwrap();
        assert!(!is_empty(&coord));

        let (tasks, cancel) = (TaskTracker::new(), CancellationToken::new());
        let purge = coord.spawn_purge(&tasks, cancel.clone());
        tokio::time::sleep(PURGE_INTERVAL + Duration::from_secs(1)).await;
        assert!(is_empty(&coord), "{:?}", coord.lock());

        cancel.cancel();
        purge.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn purge_expired_counts_what_it_removed() {
        let coord = MemoryCoordinator::new();
        coord.try_acquire_slot("a", 0, Duration::from_secs(1)).await.unwrap().unwrap();
        coord.try_acquire_slot("a", 0, HOUR).await.unwrap().unwrap();
        coord.set_sticky("s", 1, Duration::from_secs(1)).await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(coord.purge_expired(), 2);
        assert_eq!(coord.slot_count("a").await.unwrap(), 1);
    }
}
