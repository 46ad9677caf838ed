//! Run-time coordination state shared by every gateway instance: the concurrency slots held by
//! in-flight requests, the wait queues in front of them, sticky session bindings, account
//! cooldowns, short locks and window counters.
//!
//! [`Coordinator`] is the contract. [`MemoryCoordinator`] serves a single instance; a Redis
//! implementation (chosen when `redis.url` is set) serves several, and both pass the same
//! contract suite (the `contract` module, built for tests and with the `testing` feature).
//!
//! Every trait method is **one atomic step** against the backend: in Redis, one Lua script. A
//! caller never builds a read-modify-write out of two calls; when it needs one, the trait
//! grows a method. Every entry expires (slots and queue tickets by lease TTL, bindings, locks
//! and counters by TTL, cooldowns at their end time), so the state of a crashed instance comes
//! back by itself.
//!
//! Key spaces: a slot key and its wait queue share one name (the queue of `account:42` is the
//! line of requests waiting for a slot of `account:42`); sticky, lock and counter keys are
//! separate spaces. Callers choose the names (`account:{id}`, `user:{id}`, `api_key:{id}`).
//!
//! Clocks: TTLs are measured by the backend's clock (memory: tokio's clock, so tests can pause
//! it; Redis: the server's `TIME`, so instances with skewed clocks agree). Cooldown ends are
//! wall-clock instants because they come from upstream reset headers.
//!
//! This module must not know about HTTP, database rows or scheduling policy: it stores what
//! the proxy decides and answers questions about it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

#[cfg(any(test, feature = "testing"))]
pub mod contract;
mod memory;
mod redis_coord;
mod throttle;

pub use memory::{MemoryCoordinator, PURGE_INTERVAL};
pub use redis_coord::RedisCoordinator;
pub use throttle::LoginThrottle;

/// A coordination backend failed (connection lost, script error). The text is for logs.
/// Callers decide whether to fail open (admit the request) or closed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CoordError {
    #[error("coordination backend error: {0}")]
    Backend(String),
}

pub type CoordResult<T> = Result<T, CoordError>;

/// One held concurrency slot of `key`. Give it back with [`Coordinator::release_slot`], or
/// hold it in a [`SlotGuard`] that gives it back when dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SlotLease {
    key: String,
    id: u64,
}

impl SlotLease {
    /// For [`Coordinator`] implementations: `id` must be unique among the key's leases.
    pub fn new(key: impl Into<String>, id: u64) -> Self {
        Self { key: key.into(), id }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn id(&self) -> u64 {
        self.id
    }
}

/// A place in the wait queue of a slot key. Give it back with [`Coordinator::leave_queue`],
/// or hold it in a [`QueueGuard`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueTicket {
    key: String,
    id: u64,
}

impl QueueTicket {
    /// For [`Coordinator`] implementations: `id` must be unique among the queue's tickets.
    pub fn new(key: impl Into<String>, id: u64) -> Self {
        Self { key: key.into(), id }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn id(&self) -> u64 {
        self.id
    }
}

/// Proof of holding the lock on `key`; only its holder can [`Coordinator::unlock`] it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockToken {
    key: String,
    token: u64,
}

impl LockToken {
    /// For [`Coordinator`] implementations: `token` must differ from any earlier holder's.
    pub fn new(key: impl Into<String>, token: u64) -> Self {
        Self { key: key.into(), token }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn token(&self) -> u64 {
        self.token
    }
}

/// How busy a slot key is, for load-aware scheduling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotLoad {
    /// Live slot leases.
    pub held: u32,
    /// Live tickets in the key's wait queue.
    pub waiting: u32,
}

/// Why an account is temporarily not schedulable. Kinds are independent: each has its own
/// end time, and an account is cooling down while any of them lies in the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CooldownKind {
    /// The upstream answered 429; ends when its rate-limit window resets.
    RateLimited,
    /// The upstream answered 529.
    Overloaded,
    /// A short block after an error that may heal by itself (an OAuth 401 while the token is
    /// refreshed, a temp-unschedulable rule).
    TempUnschedulable,
}

impl CooldownKind {
    pub const ALL: [CooldownKind; 3] =
        [CooldownKind::RateLimited, CooldownKind::Overloaded, CooldownKind::TempUnschedulable];

    /// Stable name, e.g. a Redis hash field.
    pub fn as_str(self) -> &'static str {
        match self {
            CooldownKind::RateLimited => "rate_limited",
            CooldownKind::Overloaded => "overloaded",
            CooldownKind::TempUnschedulable => "temp_unschedulable",
        }
    }
}

/// A cooldown in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooldown {
    pub kind: CooldownKind,
    pub until: OffsetDateTime,
}

/// The shared coordination state of the gateway; see the module docs. Used as
/// `Arc<dyn Coordinator>`. Each method is a single atomic step; the `Redis:` notes say which
/// keys its script touches, so both implementations keep the same semantics.
///
/// A TTL of zero creates an entry that is already expired. Durations longer than ten years
/// are treated as ten years.
#[async_trait]
pub trait Coordinator: Send + Sync {
    // ----- concurrency slots -----

    /// Takes a slot of `key` if fewer than `limit` live leases exist; `limit == 0` means
    /// unlimited (always granted, still counted). The lease expires after `ttl` unless
    /// refreshed, so a crashed holder's slot comes back.
    ///
    /// `Some(lease)`: the slot is held. `None`: the key is at its limit.
    ///
    /// Redis: ZSET `slot:{key}` of lease id → expiry; trim expired, ZCARD, ZADD, PEXPIRE.
    async fn try_acquire_slot(&self, key: &str, limit: u32, ttl: Duration) -> CoordResult<Option<SlotLease>>;

    /// Gives a slot back and wakes [`wait_for_release`](Self::wait_for_release) callers of
    /// its key. Idempotent.
    ///
    /// `true`: the lease was live and is now released. `false`: it was already released or
    /// had expired (nothing changed).
    ///
    /// Redis: trim expired, ZREM, PUBLISH on success.
    async fn release_slot(&self, lease: &SlotLease) -> CoordResult<bool>;

    /// Makes a live lease expire `ttl` from now (for long streams; this may also shorten it).
    ///
    /// `true`: extended. `false`: the lease had expired or was released; the caller no longer
    /// holds a slot and should take a new one if it goes on.
    ///
    /// Redis: trim expired, ZADD XX, PEXPIRE.
    async fn refresh_slot(&self, lease: &SlotLease, ttl: Duration) -> CoordResult<bool>;

    /// Live slot leases and queue tickets of each key, in the order of `keys` (one round trip
    /// for a whole candidate list). Unknown keys are zero.
    ///
    /// Redis: per key, trim expired and ZCARD on `slot:{key}` and `queue:{key}`.
    async fn slot_loads(&self, keys: &[&str]) -> CoordResult<Vec<SlotLoad>>;

    /// Live slot leases of `key`.
    async fn slot_count(&self, key: &str) -> CoordResult<u32> {
        Ok(self.slot_loads(&[key]).await?.first().map_or(0, |load| load.held))
    }

    /// Live slot leases of each key, in the order of `keys`.
    async fn slot_counts(&self, keys: &[&str]) -> CoordResult<Vec<u32>> {
        Ok(self.slot_loads(keys).await?.into_iter().map(|load| load.held).collect())
    }

    /// Waits until a slot of `key` may be free for a caller whose limit is `limit`, at most
    /// `timeout`. Returns at once when the key already has room.
    ///
    /// `true`: capacity may be available (there was room, a lease was released, or one
    /// expired). `false`: the timeout passed with no sign of a free slot.
    ///
    /// This is only a hint: others may take the slot first and `true` may be spurious, so the
    /// caller always retries [`try_acquire_slot`](Self::try_acquire_slot) afterwards, whatever
    /// the answer. A release that happens after the call started is never missed.
    ///
    /// Redis: SUBSCRIBE to the key's release channel, then check the count, then wait for a
    /// message or a short back-off (a lease may expire without a release message).
    async fn wait_for_release(&self, key: &str, limit: u32, timeout: Duration) -> CoordResult<bool>;

    // ----- wait queues -----

    /// Takes a place in the wait queue of slot key `key` if fewer than `max_waiters` live
    /// tickets exist (`max_waiters == 0`: nobody may wait). The ticket expires after `ttl`
    /// (set it a little above the caller's wait timeout), so a crashed waiter frees its place.
    ///
    /// `Some(ticket)`: admitted to wait. `None`: the queue is full; reject the request.
    ///
    /// Redis: ZSET `queue:{key}`; trim expired, ZCARD, ZADD, PEXPIRE.
    async fn try_enter_queue(&self, key: &str, max_waiters: u32, ttl: Duration) -> CoordResult<Option<QueueTicket>>;

    /// Leaves the wait queue. Idempotent.
    ///
    /// `true`: the ticket was live and is now gone. `false`: it had already left or expired.
    async fn leave_queue(&self, ticket: &QueueTicket) -> CoordResult<bool>;

    /// Live tickets in the wait queue of `key`.
    async fn queue_len(&self, key: &str) -> CoordResult<u32> {
        Ok(self.slot_loads(&[key]).await?.first().map_or(0, |load| load.waiting))
    }

    // ----- sticky session bindings -----

    /// The account `key` is bound to, `None` when unbound or expired.
    async fn get_sticky(&self, key: &str) -> CoordResult<Option<i64>>;

    /// Binds `key` to `account_id` for `ttl`, replacing any binding.
    async fn set_sticky(&self, key: &str, account_id: i64, ttl: Duration) -> CoordResult<()>;

    /// Makes an existing binding expire `ttl` from now.
    ///
    /// `true`: refreshed. `false`: there was no live binding (nothing is created).
    async fn touch_sticky(&self, key: &str, ttl: Duration) -> CoordResult<bool>;

    /// Removes the binding of `key`.
    ///
    /// `true`: a live binding was removed. `false`: there was none.
    async fn delete_sticky(&self, key: &str) -> CoordResult<bool>;

    /// Removes the binding of `key` only if it still points at `account_id`, so a request
    /// that found its account unusable cannot drop a binding another request just made.
    ///
    /// `true`: it was bound to `account_id` and is now removed. `false`: unbound or bound
    /// elsewhere (left as it is).
    ///
    /// Redis: GET, compare, DEL.
    async fn delete_sticky_if(&self, key: &str, account_id: i64) -> CoordResult<bool>;

    // ----- account cooldowns -----

    /// Puts `account_id` into a `kind` cooldown until `until`. The later end wins: a shorter
    /// cooldown never cuts an existing longer one of the same kind (clear it first for that).
    /// An `until` in the past stores nothing. Ends keep at least millisecond precision.
    ///
    /// Returns the end of the `kind` cooldown now in force (the later of the existing one and
    /// `until`; in the past when there is none).
    ///
    /// Redis: HASH `cooldown:{account_id}` of kind → unix ms; compare, HSET, PEXPIREAT max.
    async fn set_cooldown(
        &self,
        account_id: i64,
        kind: CooldownKind,
        until: OffsetDateTime,
    ) -> CoordResult<OffsetDateTime>;

    /// Ends the `kind` cooldown of `account_id` now (admin "clear rate limit", a success that
    /// proves the account healthy).
    ///
    /// `true`: a cooldown in force was removed. `false`: there was none.
    async fn clear_cooldown(&self, account_id: i64, kind: CooldownKind) -> CoordResult<bool>;

    /// The cooldowns in force of each account (one round trip for a candidate list). Accounts
    /// without one are absent from the map; each list is ordered by kind.
    async fn cooldowns(&self, account_ids: &[i64]) -> CoordResult<HashMap<i64, Vec<Cooldown>>>;

    // ----- locks -----

    /// Takes the lock `key` for at most `ttl` (e.g. one OAuth token refresh per account).
    /// An expired lock is free.
    ///
    /// `Some(token)`: the caller holds the lock. `None`: someone else holds it.
    ///
    /// Redis: SET key token NX PX ttl.
    async fn try_lock(&self, key: &str, ttl: Duration) -> CoordResult<Option<LockToken>>;

    /// Releases a lock, only if `token` still holds it.
    ///
    /// `true`: released. `false`: the lock had expired (and may now belong to someone else,
    /// whose lock is left alone).
    ///
    /// Redis: GET, compare, DEL.
    async fn unlock(&self, token: &LockToken) -> CoordResult<bool>;

    // ----- counters -----

    /// Adds `by` (may be negative) to the counter `key` and returns the new value. A missing
    /// or expired counter starts from zero with a window of `ttl`; later increments do not
    /// extend the window (fixed-window counting: RPM, error counts). Saturates at the `i64`
    /// bounds.
    ///
    /// Redis: INCRBY, and PEXPIRE only when the key had no TTL.
    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> CoordResult<i64>;

    // ----- change announcements -----

    /// Tells the other instances that admin data (keys, users, groups, accounts) changed, so
    /// they reload what they cache. A single-instance backend has nobody to tell.
    ///
    /// Redis: PUBLISH `changes` with this instance's id.
    async fn announce_change(&self) -> CoordResult<()> {
        Ok(())
    }

    /// Announcements from other instances, when the backend carries them (`None`: this is
    /// the only instance). A lagging receiver should treat `Lagged` as a change.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<()>> {
        None
    }
}

/// Something a [`LeaseGuard`] gives back to the coordinator: a slot, a queue place, a lock.
#[async_trait]
pub trait Lease: Clone + fmt::Debug + Send + Sync + 'static {
    /// Gives the lease back. `true`: it was still held.
    async fn give_back(&self, coord: &dyn Coordinator) -> CoordResult<bool>;
}

#[async_trait]
impl Lease for SlotLease {
    async fn give_back(&self, coord: &dyn Coordinator) -> CoordResult<bool> {
        coord.release_slot(self).await
    }
}

#[async_trait]
impl Lease for QueueTicket {
    async fn give_back(&self, coord: &dyn Coordinator) -> CoordResult<bool> {
        coord.leave_queue(self).await
    }
}

#[async_trait]
impl Lease for LockToken {
    async fn give_back(&self, coord: &dyn Coordinator) -> CoordResult<bool> {
        coord.unlock(self).await
    }
}

/// Holds a lease and gives it back when dropped, so a request that ends any way (last byte
/// sent, client gone, task cancelled) frees its slot.
///
/// Dropping spawns the give-back on the current tokio runtime: it completes within
/// milliseconds, not before `drop` returns. Dropped outside a runtime, the lease is left to
/// expire after its TTL (logged). Call [`release`](Self::release) to give it back and know
/// when it is done.
pub struct LeaseGuard<L: Lease> {
    coord: Arc<dyn Coordinator>,
    lease: L,
    /// False once the lease was given back explicitly; `drop` then has nothing to do.
    armed: bool,
}

/// A held concurrency slot.
pub type SlotGuard = LeaseGuard<SlotLease>;
/// A held place in a wait queue.
pub type QueueGuard = LeaseGuard<QueueTicket>;
/// A held lock.
pub type LockGuard = LeaseGuard<LockToken>;

impl<L: Lease> LeaseGuard<L> {
    pub fn new(coord: Arc<dyn Coordinator>, lease: L) -> Self {
        Self { coord, lease, armed: true }
    }

    pub fn lease(&self) -> &L {
        &self.lease
    }

    /// Gives the lease back now. `true`: it was still held. If this future is dropped before
    /// it completes, the guard's `drop` gives the lease back instead.
    pub async fn release(mut self) -> CoordResult<bool> {
        let released = self.lease.give_back(&*self.coord).await;
        self.armed = false;
        released
    }
}

impl SlotGuard {
    /// See [`Coordinator::refresh_slot`].
    pub async fn refresh(&self, ttl: Duration) -> CoordResult<bool> {
        self.coord.refresh_slot(&self.lease, ttl).await
    }
}

impl<L: Lease> fmt::Debug for LeaseGuard<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseGuard").field("lease", &self.lease).field("armed", &self.armed).finish()
    }
}

impl<L: Lease> Drop for LeaseGuard<L> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let lease = self.lease.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let coord = Arc::clone(&self.coord);
                runtime.spawn(async move {
                    if let Err(e) = lease.give_back(&*coord).await {
                        tracing::warn!(error = %e, ?lease, "giving back a dropped lease failed; it expires by TTL");
                    }
                });
            }
            Err(_) => tracing::warn!(?lease, "lease dropped outside a tokio runtime; it expires by TTL"),
        }
    }
}

/// Outcome of [`acquire_all`].
#[derive(Debug)]
pub enum AcquireAll {
    /// Every slot is held, one guard per requested key, in order.
    Acquired(Vec<SlotGuard>),
    /// `slots[index]` was at its limit; no slot is held.
    Full { index: usize },
}

impl AcquireAll {
    pub fn into_guards(self) -> Option<Vec<SlotGuard>> {
        match self {
            AcquireAll::Acquired(guards) => Some(guards),
            AcquireAll::Full { .. } => None,
        }
    }
}

/// Takes a slot of every `(key, limit)` in `slots` (e.g. account, user and API key), all or
/// nothing: when one is full or fails, the slots already taken are given back before this
/// returns. Not one atomic step: between the first and the last acquisition, other callers
/// may briefly see the earlier slots taken.
pub async fn acquire_all(
    coord: &Arc<dyn Coordinator>,
    slots: &[(&str, u32)],
    ttl: Duration,
) -> CoordResult<AcquireAll> {
    let mut guards = Vec::with_capacity(slots.len());
    for (index, (key, limit)) in slots.iter().enumerate() {
        let outcome = match coord.try_acquire_slot(key, *limit, ttl).await {
            Ok(Some(lease)) => {
                guards.push(SlotGuard::new(Arc::clone(coord), lease));
                continue;
            }
            Ok(None) => Ok(AcquireAll::Full { index }),
            Err(e) => Err(e),
        };
        for guard in guards {
            if let Err(e) = guard.release().await {
                tracing::warn!(error = %e, "giving back a slot after a partial acquisition failed; it expires by TTL");
            }
        }
        return outcome;
    }
    Ok(AcquireAll::Acquired(guards))
}
