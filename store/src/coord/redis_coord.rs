//! The Redis [`Coordinator`], chosen when `redis.url` is set: several gateway instances share
//! their slots, queues, sticky bindings, cooldowns, locks and counters.
//!
//! Every method that reads and writes is one Lua script (below, each with its contract), so
//! it is atomic on the server. Lease expiries are scored with the server's `TIME`, so
//! instances whose clocks disagree still agree on when a lease ends; cooldown ends are
//! wall-clock instants from upstream headers and are stored as unix milliseconds.
//!
//! Keys, all under the configured prefix (`sub2api:` by default):
//! `slot:{key}` and `queue:{key}` (ZSET lease id → expiry ms), `sticky:{key}` (string account
//! id, PX), `cooldown:{account}` (HASH kind → unix ms, expiring with its latest field),
//! `lock:{key}` (string token, PX), `counter:{key}` (string, PX set once), `ids` (lease and
//! token ids). Channels: `release:{key}` (a slot was given back), `changes` (admin data
//! changed; the payload is the announcing instance).
//!
//! One pub/sub connection per process listens to both; waiters and snapshot listeners are
//! woken from it, so an idle instance sends Redis nothing: no polling loop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use time::OffsetDateTime;
use tokio::sync::{Notify, broadcast};

use super::{
    Cooldown, CooldownKind, CoordError, CoordResult, Coordinator, LockToken, QueueTicket, SlotLease, SlotLoad,
};

/// Longest TTL honoured, as in the memory coordinator.
const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Pause before the listener connects again after losing Redis.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// The server's clock in milliseconds; every lease script starts with it.
const NOW: &str = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) ";

/// KEYS: zset, ids. ARGV: limit, ttl ms, zero_means_unlimited (1/0).
/// Trims expired leases; if the zset has room adds a new id expiring `ttl` from now and
/// returns it, else nil. The key lives as long as its longest lease.
const ACQUIRE: &str = "
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[1])
local unlimited = ARGV[3] == '1' and limit == 0
if not unlimited and redis.call('ZCARD', KEYS[1]) >= limit then return false end
local id = redis.call('INCR', KEYS[2])
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, id)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], math.max(ttl, 1)) end
return id";

/// KEYS: zset. ARGV: id, channel ('' for none). Trims, removes the id; on success publishes
/// on the channel. Returns 1 when the id was live.
const RELEASE: &str = "
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 and ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], '1') end
return removed";

/// KEYS: zset. ARGV: id, ttl ms. Returns 1 and moves the lease's expiry when it is live.
const REFRESH: &str = "
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], math.max(ttl, 1)) end
return 1";

/// KEYS: any zsets. Trims each and returns their sizes in order.
const LOADS: &str = "
local out = {}
for i, k in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
  out[i] = redis.call('ZCARD', k)
end
return out";

/// KEYS: slot zset. ARGV: limit. Returns {1, -1} when there is room, else {0, ms until the
/// earliest lease expires}.
const WAIT_CHECK: &str = "
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[1])
if limit == 0 or redis.call('ZCARD', KEYS[1]) < limit then return {1, -1} end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(first[2]) - now}";

/// KEYS: key. ARGV: expected value. Deletes the key only while it holds that value.
const DELETE_IF: &str = "
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// KEYS: cooldown hash. ARGV: kind, until ms, now ms. The later end wins; an end in the past
/// stores nothing. Returns the end in force (or the asked one when none is).
const SET_COOLDOWN: &str = "
local now = tonumber(ARGV[3])
local wanted = tonumber(ARGV[2])
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if current > now and current >= wanted then return current end
if wanted <= now then return wanted end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local latest = wanted
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  if tonumber(v) > latest then latest = tonumber(v) end
end
redis.call('PEXPIREAT', KEYS[1], latest)
return wanted";

/// KEYS: cooldown hash. ARGV: kind, now ms. Removes the kind; 1 when it was in force.
const CLEAR_COOLDOWN: &str = "
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
redis.call('HDEL', KEYS[1], ARGV[1])
if current > tonumber(ARGV[2]) then return 1 end
return 0";

/// KEYS: counter. ARGV: step, ttl ms, the bound to saturate at. Adds the step (saturating),
/// starts the window on a fresh counter, returns the value as a string (exact for i64).
const INCR: &str = "
local ok = pcall(redis.call, 'INCRBY', KEYS[1], ARGV[1])
if not ok then redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL') end
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('GET', KEYS[1])";

struct Scripts {
    acquire: Script,
    release: Script,
    refresh: Script,
    loads: Script,
    wait_check: Script,
    delete_if: Script,
    set_cooldown: Script,
    clear_cooldown: Script,
    incr: Script,
}

impl Scripts {
    fn new() -> Self {
        let timed = |body: &str| Script::new(&format!("{NOW}{body}"));
        Self {
            acquire: timed(ACQUIRE),
            release: timed(RELEASE),
            refresh: timed(REFRESH),
            loads: timed(LOADS),
            wait_check: timed(WAIT_CHECK),
            delete_if: Script::new(DELETE_IF),
            set_cooldown: Script::new(SET_COOLDOWN),
            clear_cooldown: Script::new(CLEAR_COOLDOWN),
            incr: Script::new(INCR),
        }
    }
}

/// Local waiters per slot key, woken by `release:{key}` messages.
#[derive(Default)]
struct Waiters(Mutex<HashMap<String, Arc<Notify>>>);

impl Waiters {
    fn register(&self, key: &str) -> Arc<Notify> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(key.to_owned()).or_default())
    }

    /// Forgets `key`'s wake-up once no waiter holds it.
    fn unregister(&self, key: &str) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(key).is_some_and(|n| Arc::strong_count(n) == 1) {
            map.remove(key);
        }
    }

    fn wake(&self, key: &str) {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = map.get(key) {
            notify.notify_waiters();
        }
    }

    fn wake_all(&self) {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for notify in map.values() {
            notify.notify_waiters();
        }
    }
}

/// Stops the pub/sub listener when the coordinator goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Coordination state in Redis, shared by every instance using the same URL and prefix.
pub struct RedisCoordinator {
    conn: ConnectionManager,
    prefix: String,
    scripts: Scripts,
    waiters: Arc<Waiters>,
    changes: broadcast::Sender<()>,
    /// This process's id in `changes` messages, so it ignores its own announcements.
    instance: String,
    _listener: AbortOnDrop,
}

fn backend(e: impl std::fmt::Display) -> CoordError {
    CoordError::Backend(e.to_string())
}

fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.min(MAX_TTL).as_millis()).unwrap_or(u64::MAX)
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_unix_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn kind_from_str(name: &str) -> Option<CooldownKind> {
    CooldownKind::ALL.into_iter().find(|k| k.as_str() == name)
}

impl RedisCoordinator {
    /// Connects (data connection and pub/sub listener). `prefix` namespaces every key and
    /// channel, so several deployments (or test runs) can share one Redis.
    pub async fn connect(url: &str, prefix: &str) -> CoordResult<RedisCoordinator> {
        let client = redis::Client::open(url).map_err(backend)?;
        // Fail fast at startup and never let a hung Redis hold a request for long: the
        // gateway fails open on coordinator errors.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(1000)
            .set_connection_timeout(Duration::from_secs(3))
            .set_response_timeout(Duration::from_secs(5));
        let conn = ConnectionManager::new_with_config(client.clone(), config).await.map_err(backend)?;
        let waiters = Arc::new(Waiters::default());
        let (changes, _) = broadcast::channel(16);
        let instance = format!("{:016x}", rand::random::<u64>());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let listener = tokio::spawn(listen(
            client,
            prefix.to_owned(),
            Arc::clone(&waiters),
            changes.clone(),
            instance.clone(),
            ready_tx,
        ));
        // The first subscription must be in place before anyone relies on a wake-up.
        match tokio::time::timeout(Duration::from_secs(10), ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(e),
            _ => return Err(backend("the Redis pub/sub listener did not start")),
        }
        Ok(RedisCoordinator {
            conn,
            prefix: prefix.to_owned(),
            scripts: Scripts::new(),
            waiters,
            changes,
            instance,
            _listener: AbortOnDrop(listener),
        })
    }

    fn key(&self, space: &str, name: &str) -> String {
        format!("{}{space}:{name}", self.prefix)
    }

    fn ids(&self) -> String {
        format!("{}ids", self.prefix)
    }

    fn con(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Deletes every key under the prefix (tests clean up with this).
    pub async fn delete_all(&self) -> CoordResult<u64> {
        let mut con = self.con();
        let pattern = format!("{}*", self.prefix);
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut con)
                .await
                .map_err(backend)?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        if keys.is_empty() {
            return Ok(0);
        }
        let mut con = self.con();
        con.del(&keys).await.map_err(backend)
    }

    async fn acquire(
        &self,
        space: &str,
        key: &str,
        limit: u32,
        ttl: Duration,
        zero_unlimited: bool,
    ) -> CoordResult<Option<u64>> {
        let mut con = self.con();
        self.scripts
            .acquire
            .key(self.key(space, key))
            .key(self.ids())
            .arg(limit)
            .arg(ttl_ms(ttl))
            .arg(if zero_unlimited { "1" } else { "0" })
            .invoke_async(&mut con)
            .await
            .map_err(backend)
    }

    async fn release(&self, space: &str, key: &str, id: u64, channel: &str) -> CoordResult<bool> {
        let mut con = self.con();
        let removed: i64 = self
            .scripts
            .release
            .key(self.key(space, key))
            .arg(id)
            .arg(channel)
            .invoke_async(&mut con)
            .await
            .map_err(backend)?;
        Ok(removed == 1)
    }
}

/// Receives `release:*` and `changes` messages until the coordinator is dropped, connecting
/// again after a lost connection (and then waking everyone, since messages may have been
/// missed).
async fn listen(
    client: redis::Client,
    prefix: String,
    waiters: Arc<Waiters>,
    changes: broadcast::Sender<()>,
    instance: String,
    ready: tokio::sync::oneshot::Sender<CoordResult<()>>,
) {
    let release_prefix = format!("{prefix}release:");
    let changes_channel = format!("{prefix}changes");
    let mut ready = Some(ready);
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.psubscribe(format!("{release_prefix}*")).await?;
            pubsub.subscribe(&changes_channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        let pubsub = match subscribed {
            Ok(pubsub) => pubsub,
            Err(e) => {
                match ready.take() {
                    Some(tx) => {
                        let _ = tx.send(Err(backend(e)));
                        return;
                    }
                    None => tracing::warn!(error = %e, "Redis pub/sub reconnect failed; retrying"),
                }
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        match ready.take() {
            Some(tx) => {
                let _ = tx.send(Ok(()));
            }
            None => {
                tracing::info!("Redis pub/sub reconnected");
                waiters.wake_all();
                let _ = changes.send(());
            }
        }
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let channel = msg.get_channel_name();
            if let Some(key) = channel.strip_prefix(&release_prefix) {
                waiters.wake(key);
            } else if channel == changes_channel {
                let from: String = msg.get_payload().unwrap_or_default();
                if from != instance {
                    let _ = changes.send(());
                }
            }
        }
        tracing::warn!("Redis pub/sub connection lost; reconnecting");
        tokio::time::sleep(RECONNECT_DELAY).await;
    }
}

/// Unregisters a waiter however `wait_for_release` ends.
struct Unregister<'a> {
    waiters: &'a Waiters,
    key: &'a str,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.waiters.unregister(self.key);
    }
}

#[async_trait]
impl Coordinator for RedisCoordinator {
    async fn try_acquire_slot(&self, key: &str, limit: u32, ttl: Duration) -> CoordResult<Option<SlotLease>> {
        Ok(self.acquire("slot", key, limit, ttl, true).await?.map(|id| SlotLease::new(key, id)))
    }

    async fn release_slot(&self, lease: &SlotLease) -> CoordResult<bool> {
        let channel = self.key("release", lease.key());
        self.release("slot", lease.key(), lease.id(), &channel).await
    }

    async fn refresh_slot(&self, lease: &SlotLease, ttl: Duration) -> CoordResult<bool> {
        let mut con = self.con();
        let refreshed: i64 = self
            .scripts
            .refresh
            .key(self.key("slot", lease.key()))
            .arg(lease.id())
            .arg(ttl_ms(ttl))
            .invoke_async(&mut con)
            .await
            .map_err(backend)?;
        Ok(refreshed == 1)
    }

    async fn slot_loads(&self, keys: &[&str]) -> CoordResult<Vec<SlotLoad>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.scripts.loads.prepare_invoke();
        for key in keys {
            invocation.key(self.key("slot", key)).key(self.key("queue", key));
        }
        let mut con = self.con();
        let sizes: Vec<u32> = invocation.invoke_async(&mut con).await.map_err(backend)?;
        Ok(sizes.chunks(2).map(|pair| SlotLoad { held: pair[0], waiting: pair.get(1).copied().unwrap_or(0) }).collect())
    }

    async fn wait_for_release(&self, key: &str, limit: u32, timeout: Duration) -> CoordResult<bool> {
        let notify = self.waiters.register(key);
        let _unregister = Unregister { waiters: &self.waiters, key };
        let mut notified = Box::pin(Arc::clone(&notify).notified_owned());
        // Registered before the check: a release published after it wakes this waiter.
        notified.as_mut().enable();
        drop(notify);
        let mut con = self.con();
        let (room, until_expiry): (i64, i64) = self
            .scripts
            .wait_check
            .key(self.key("slot", key))
            .arg(limit)
            .invoke_async(&mut con)
            .await
            .map_err(backend)?;
        if room == 1 {
            return Ok(true);
        }
        let timeout = timeout.min(MAX_TTL);
        let expiry = Duration::from_millis(u64::try_from(until_expiry.max(0)).unwrap_or(0));
        let (wake_in, expiry_first) = if expiry <= timeout { (expiry, true) } else { (timeout, false) };
        let released = tokio::time::timeout(wake_in, notified).await.is_ok();
        Ok(released || expiry_first)
    }

    async fn try_enter_queue(&self, key: &str, max_waiters: u32, ttl: Duration) -> CoordResult<Option<QueueTicket>> {
        Ok(self.acquire("queue", key, max_waiters, ttl, false).await?.map(|id| QueueTicket::new(key, id)))
    }

    async fn leave_queue(&self, ticket: &QueueTicket) -> CoordResult<bool> {
        self.release("queue", ticket.key(), ticket.id(), "").await
    }

    async fn get_sticky(&self, key: &str) -> CoordResult<Option<i64>> {
        let mut con = self.con();
        con.get(self.key("sticky", key)).await.map_err(backend)
    }

    async fn set_sticky(&self, key: &str, account_id: i64, ttl: Duration) -> CoordResult<()> {
        let mut con = self.con();
        let name = self.key("sticky", key);
        let ms = ttl_ms(ttl);
        if ms == 0 {
            // Already expired: it replaces any binding and leaves none.
            return con.del::<_, ()>(name).await.map_err(backend);
        }
        con.pset_ex::<_, _, ()>(name, account_id, ms).await.map_err(backend)
    }

    async fn touch_sticky(&self, key: &str, ttl: Duration) -> CoordResult<bool> {
        let mut con = self.con();
        let ms = i64::try_from(ttl_ms(ttl)).unwrap_or(i64::MAX);
        con.pexpire(self.key("sticky", key), ms).await.map_err(backend)
    }

    async fn delete_sticky(&self, key: &str) -> CoordResult<bool> {
        let mut con = self.con();
        let removed: i64 = con.del(self.key("sticky", key)).await.map_err(backend)?;
        Ok(removed > 0)
    }

    async fn delete_sticky_if(&self, key: &str, account_id: i64) -> CoordResult<bool> {
        let mut con = self.con();
        let removed: i64 = self
            .scripts
            .delete_if
            .key(self.key("sticky", key))
            .arg(account_id)
            .invoke_async(&mut con)
            .await
            .map_err(backend)?;
        Ok(removed > 0)
    }

    async fn set_cooldown(
        &self,
        account_id: i64,
        kind: CooldownKind,
        until: OffsetDateTime,
    ) -> CoordResult<OffsetDateTime> {
        let mut con = self.con();
        let in_force: i64 = self
            .scripts
            .set_cooldown
            .key(self.key("cooldown", &account_id.to_string()))
            .arg(kind.as_str())
            .arg(unix_ms(until))
            .arg(unix_ms(OffsetDateTime::now_utc()))
            .invoke_async(&mut con)
            .await
            .map_err(backend)?;
        // Redis keeps milliseconds; hand back the caller's own instant when it is the one in
        // force, so nothing finer is lost.
        Ok(if in_force == unix_ms(until) { until } else { from_unix_ms(in_force) })
    }

    async fn clear_cooldown(&self, account_id: i64, kind: CooldownKind) -> CoordResult<bool> {
        let mut con = self.con();
        let cleared: i64 = self
            .scripts
            .clear_cooldown
            .key(self.key("cooldown", &account_id.to_string()))
            .arg(kind.as_str())
            .arg(unix_ms(OffsetDateTime::now_utc()))
            .invoke_async(&mut con)
            .await
            .map_err(backend)?;
        Ok(cleared == 1)
    }

    async fn cooldowns(&self, account_ids: &[i64]) -> CoordResult<HashMap<i64, Vec<Cooldown>>> {
        if account_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for id in account_ids {
            pipe.hgetall(self.key("cooldown", &id.to_string()));
        }
        let mut con = self.con();
        let all: Vec<HashMap<String, i64>> = pipe.query_async(&mut con).await.map_err(backend)?;
        let now = unix_ms(OffsetDateTime::now_utc());
        let mut found = HashMap::new();
        for (id, fields) in account_ids.iter().zip(all) {
            let mut list: Vec<Cooldown> = fields
                .into_iter()
                .filter(|(_, until)| *until > now)
                .filter_map(|(kind, until)| Some(Cooldown { kind: kind_from_str(&kind)?, until: from_unix_ms(until) }))
                .collect();
            if !list.is_empty() {
                list.sort_by_key(|c| c.kind);
                found.insert(*id, list);
            }
        }
        Ok(found)
    }

    async fn try_lock(&self, key: &str, ttl: Duration) -> CoordResult<Option<LockToken>> {
        let mut con = self.con();
        let token: u64 = con.incr(self.ids(), 1).await.map_err(backend)?;
        let ms = ttl_ms(ttl);
        if ms == 0 {
            // Expired at once: held by nobody afterwards.
            return Ok(Some(LockToken::new(key, token)));
        }
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(ms));
        let taken: Option<String> = con.set_options(self.key("lock", key), token, options).await.map_err(backend)?;
        Ok(taken.map(|_| LockToken::new(key, token)))
    }

    async fn unlock(&self, token: &LockToken) -> CoordResult<bool> {
        let mut con = self.con();
        let removed: i64 = self
            .scripts
            .delete_if
            .key(self.key("lock", token.key()))
            .arg(token.token())
            .invoke_async(&mut con)
            .await
            .map_err(backend)?;
        Ok(removed > 0)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Duration) -> CoordResult<i64> {
        let mut con = self.con();
        let bound = if by >= 0 { i64::MAX } else { i64::MIN };
        let value: String = self
            .scripts
            .incr
            .key(self.key("counter", key))
            .arg(by)
            .arg(ttl_ms(ttl).max(1))
            .arg(bound)
            .invoke_async(&mut con)
            .await
            .map_err(backend)?;
        value.parse().map_err(backend)
    }

    async fn announce_change(&self) -> CoordResult<()> {
        let mut con = self.con();
        con.publish::<_, _, ()>(format!("{}changes", self.prefix), &self.instance).await.map_err(backend)
    }

    fn changes(&self) -> Option<broadcast::Receiver<()>> {
        Some(self.changes.subscribe())
    }
}
