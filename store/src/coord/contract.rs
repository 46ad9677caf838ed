//! The behaviour every [`Coordinator`] must show, one public function per behaviour, so each
//! implementation runs the same checks (`store/tests/coordinator.rs` runs them for the memory
//! coordinator; the Redis coordinator adds its own variant there).
//!
//! The checks use the real clock (TTLs of a few hundred milliseconds and short sleeps), never
//! a paused one, because a Redis server's clock cannot be paused. Every check names its keys
//! and accounts with random suffixes, so checks may run in parallel against one shared
//! backend, and gives back what it took. A failed check panics; a backend error is returned.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::task::JoinSet;

use super::{
    AcquireAll, Cooldown, CooldownKind, CoordError, CoordResult, Coordinator, QueueGuard, SlotGuard, SlotLoad,
    acquire_all,
};

/// A TTL no check outlives.
const LONG: Duration = Duration::from_secs(60);
/// A TTL a check waits out.
const SHORT: Duration = Duration::from_millis(200);
/// Comfortably past [`SHORT`].
const PAST_SHORT: Duration = Duration::from_millis(350);

/// A key of its own for one check.
fn unique_key(what: &str) -> String {
    format!("contract:{what}:{:016x}", rand::random::<u64>())
}

fn unique_account() -> i64 {
    rand::random_range(1..i64::MAX)
}

#[track_caller]
fn some<T>(value: Option<T>, what: &str) -> T {
    match value {
        Some(value) => value,
        None => panic!("expected {what}"),
    }
}

/// `t` cut to whole milliseconds, the precision a backend must keep.
fn whole_ms(t: OffsetDateTime) -> OffsetDateTime {
    t - time::Duration::nanoseconds(i64::from(t.nanosecond() % 1_000_000))
}

async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// A key never holds more live leases than the caller's limit; the limit is the caller's, not
/// stored with the key, so a raised limit applies at once.
pub async fn slot_limit_is_enforced(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let key = unique_key("limit");
    let first = some(c.try_acquire_slot(&key, 2, LONG).await?, "a first slot under limit 2");
    let second = some(c.try_acquire_slot(&key, 2, LONG).await?, "a second slot under limit 2");
    assert_eq!(first.key(), key);
    assert_ne!(first.id(), second.id(), "leases are distinct");
    assert!(c.try_acquire_slot(&key, 2, LONG).await?.is_none(), "a third slot is over limit 2");
    assert_eq!(c.slot_count(&key).await?, 2);
    let third = some(c.try_acquire_slot(&key, 3, LONG).await?, "a third slot under a raised limit 3");
    assert!(c.try_acquire_slot(&key, 1, LONG).await?.is_none(), "a lowered limit admits nobody");
    assert_eq!(c.slot_count(&key).await?, 3);
    for lease in [first, second, third] {
        assert!(c.release_slot(&lease).await?);
    }
    Ok(())
}

/// Limit 0 is unlimited, and its slots are still counted.
pub async fn unlimited_slots_are_counted(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let key = unique_key("unlimited");
    let mut leases = Vec::new();
    for _ in 0..20 {
        leases.push(some(c.try_acquire_slot(&key, 0, LONG).await?, "a slot under limit 0"));
    }
    assert_eq!(c.slot_count(&key).await?, 20);
    assert!(c.try_acquire_slot(&key, 20, LONG).await?.is_none(), "the unlimited slots count for limited callers");
    for lease in &leases {
        assert!(c.release_slot(lease).await?);
    }
    assert_eq!(c.slot_count(&key).await?, 0);
    Ok(())
}

/// Releasing frees the slot for the next caller; releasing twice changes nothing.
pub async fn release_frees_a_slot_once(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let key = unique_key("release");
    let lease = some(c.try_acquire_slot(&key, 1, LONG).await?, "the only slot");
    assert!(c.try_acquire_slot(&key, 1, LONG).await?.is_none());
    assert!(c.release_slot(&lease).await?, "the first release gives the slot back");
    assert!(!c.release_slot(&lease).await?, "the second release is a no-op");
    let next = some(c.try_acquire_slot(&key, 1, LONG).await?, "the slot after release");
    assert!(!c.release_slot(&lease).await?, "a stale lease does not free the next holder's slot");
    assert_eq!(c.slot_count(&key).await?, 1);
    assert!(c.release_slot(&next).await?);
    Ok(())
}

/// A lease nobody releases (a crashed instance) stops counting after its TTL.
pub async fn expired_lease_frees_capacity(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let key = unique_key("expiry");
    let lost = some(c.try_acquire_slot(&key, 1, SHORT).await?, "a short lease");
    assert!(c.try_acquire_slot(&key, 1, LONG).await?.is_none());
    sleep(PAST_SHORT).await;
    assert_eq!(c.slot_count(&key).await?, 0, "the expired lease no longer counts");
    let next = some(c.try_acquire_slot(&key, 1, LONG).await?, "the slot after expiry");
    assert!(!c.release_slot(&lost).await?, "releasing an expired lease reports false");
    assert!(!c.refresh_slot(&lost, LONG).await?, "an expired lease cannot be revived");
    assert_eq!(c.slot_count(&key).await?, 1, "and leaves the new holder alone");
    assert!(c.release_slot(&next).await?);
    Ok(())
}

/// Refreshing a live lease keeps it past its first TTL; a released lease cannot be refreshed.
pub async fn refresh_extends_a_lease(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let key = unique_key("refresh");
    let lease = some(c.try_acquire_slot(&key, 1, SHORT).await?, "a short lease");
    assert!(c.refresh_slot(&lease, LONG).await?, "a live lease is refreshed");
    sleep(PAST_SHORT).await;
    assert_eq!(c.slot_count(&key).await?, 1, "still held past the first TTL");
    assert!(c.try_acquire_slot(&key, 1, LONG).await?.is_none());
    assert!(c.release_slot(&lease).await?);
    assert!(!c.refresh_slot(&lease, LONG).await?, "a released lease is not refreshed");
    assert_eq!(c.slot_count(&key).await?, 0, "nor brought back");
    Ok(())
}

/// One call reports held slots and waiters for many keys, in order.
pub async fn slot_loads_are_batched(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let (busy, idle, queued) = (unique_key("busy"), unique_key("idle"), unique_key("queued"));
    let leases = [
        some(c.try_acquire_slot(&busy, 0, LONG).await?, "a slot"),
        some(c.try_acquire_slot(&busy, 0, LONG).await?, "a slot"),
        some(c.try_acquire_slot(&queued, 1, LONG).await?, "a slot"),
    ];
    let ticket = some(c.try_enter_queue(&queued, 5, LONG).await?, "a queue place");
    let keys = [busy.as_str(), idle.as_str(), queued.as_str()];
    assert_eq!(
        c.slot_loads(&keys).await?,
        vec![SlotLoad { held: 2, waiting: 0 }, SlotLoad::default(), SlotLoad { held: 1, waiting: 1 }]
    );
    assert_eq!(c.slot_counts(&keys).await?, vec![2, 0, 1]);
    assert_eq!(c.queue_len(&queued).await?, 1);
    assert!(c.slot_loads(&[]).await?.is_empty());
    for lease in &leases {
        c.release_slot(lease).await?;
    }
    assert!(c.leave_queue(&ticket).await?);
    assert_eq!(c.slot_loads(&keys).await?, vec![SlotLoad::default(); 3]);
    Ok(())
}

/// A queue admits at most `max_waiters`; leaving is idempotent; 0 admits nobody; a ticket
/// nobody gives back expires.
pub async fn queue_is_bounded(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let key = unique_key("queue");
    let first = some(c.try_enter_queue(&key, 2, LONG).await?, "a first place of 2");
    let second = some(c.try_enter_queue(&key, 2, LONG).await?, "a second place of 2");
    assert!(c.try_enter_queue(&key, 2, LONG).await?.is_none(), "a full queue rejects");
    assert_eq!(c.queue_len(&key).await?, 2);
    assert!(c.leave_queue(&first).await?);
    assert!(!c.leave_queue(&first).await?, "leaving twice is a no-op");
    let third = some(c.try_enter_queue(&key, 2, LONG).await?, "the place freed by leaving");
    assert_eq!(c.slot_count(&key).await?, 0, "waiters hold no slot");
    for ticket in [second, third] {
        assert!(c.leave_queue(&ticket).await?);
    }

    assert!(c.try_enter_queue(&unique_key("no-waiting"), 0, LONG).await?.is_none(), "max 0 admits nobody");

    let key = unique_key("queue-expiry");
    let lost = some(c.try_enter_queue(&key, 1, SHORT).await?, "a short place");
    assert!(c.try_enter_queue(&key, 1, LONG).await?.is_none());
    sleep(PAST_SHORT).await;
    assert_eq!(c.queue_len(&key).await?, 0, "the expired ticket no longer counts");
    let next = some(c.try_enter_queue(&key, 1, LONG).await?, "the place after expiry");
    assert!(!c.leave_queue(&lost).await?);
    assert!(c.leave_queue(&next).await?);
    Ok(())
}

/// A waiter wakes as soon as a slot of its key is released, long before its timeout.
pub async fn wait_wakes_on_release(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let key = unique_key("wake");
    let held = some(c.try_acquire_slot(&key, 1, LONG).await?, "the only slot");
    let releaser = {
        let c = Arc::clone(&c);
        tokio::spawn(async move {
            sleep(Duration::from_millis(100)).await;
            c.release_slot(&held).await
        })
    };
    let start = Instant::now();
    assert!(c.wait_for_release(&key, 1, Duration::from_secs(10)).await?, "woken by the release");
    assert!(start.elapsed() < Duration::from_secs(3), "woken early, after {:?}", start.elapsed());
    match releaser.await {
        Ok(released) => assert!(released?),
        Err(e) => panic!("releasing task failed: {e}"),
    }
    let lease = some(c.try_acquire_slot(&key, 1, LONG).await?, "the released slot");
    c.release_slot(&lease).await?;
    Ok(())
}

/// A waiter on a full key gives up after its timeout; on a key with room it returns at once.
pub async fn wait_times_out_or_returns_at_once(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let key = unique_key("timeout");
    let held = some(c.try_acquire_slot(&key, 1, LONG).await?, "the only slot");
    let start = Instant::now();
    assert!(!c.wait_for_release(&key, 1, SHORT).await?, "nothing released: timed out");
    assert!(start.elapsed() >= SHORT - Duration::from_millis(10), "waited only {:?}", start.elapsed());

    let start = Instant::now();
    assert!(c.wait_for_release(&key, 2, Duration::from_secs(10)).await?, "room under limit 2");
    assert!(c.wait_for_release(&key, 0, Duration::from_secs(10)).await?, "room when unlimited");
    assert!(start.elapsed() < Duration::from_secs(3), "returned at once, after {:?}", start.elapsed());
    c.release_slot(&held).await?;
    Ok(())
}

/// A binding can be set, replaced, read, and deleted; `delete_sticky_if` only deletes a
/// binding to the named account.
pub async fn sticky_binding_round_trip(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let key = unique_key("sticky");
    assert_eq!(c.get_sticky(&key).await?, None);
    c.set_sticky(&key, 7, LONG).await?;
    assert_eq!(c.get_sticky(&key).await?, Some(7));
    c.set_sticky(&key, 8, LONG).await?;
    assert_eq!(c.get_sticky(&key).await?, Some(8), "set replaces");
    assert!(!c.delete_sticky_if(&key, 7).await?, "bound elsewhere: left alone");
    assert_eq!(c.get_sticky(&key).await?, Some(8));
    assert!(c.delete_sticky_if(&key, 8).await?);
    assert_eq!(c.get_sticky(&key).await?, None);
    assert!(!c.delete_sticky_if(&key, 8).await?, "nothing left to delete");
    assert!(!c.delete_sticky(&key).await?);
    c.set_sticky(&key, 9, LONG).await?;
    assert!(c.delete_sticky(&key).await?);
    assert_eq!(c.get_sticky(&key).await?, None);
    Ok(())
}

/// A binding expires after its TTL unless touched; touching never creates one.
pub async fn sticky_binding_expires_unless_touched(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let (kept, dropped) = (unique_key("touched"), unique_key("untouched"));
    c.set_sticky(&kept, 1, SHORT).await?;
    c.set_sticky(&dropped, 2, SHORT).await?;
    assert!(c.touch_sticky(&kept, LONG).await?);
    sleep(PAST_SHORT).await;
    assert_eq!(c.get_sticky(&kept).await?, Some(1), "touched: still bound");
    assert_eq!(c.get_sticky(&dropped).await?, None, "untouched: expired");
    assert!(!c.touch_sticky(&dropped, LONG).await?, "an expired binding is not revived");
    assert_eq!(c.get_sticky(&dropped).await?, None);
    assert!(!c.delete_sticky_if(&dropped, 2).await?);
    assert!(c.delete_sticky(&kept).await?);
    Ok(())
}

/// The cooldowns in force of one account (empty when it is absent from the answer).
async fn in_force(c: &dyn Coordinator, account: i64) -> CoordResult<Vec<Cooldown>> {
    Ok(c.cooldowns(&[account]).await?.remove(&account).unwrap_or_default())
}

/// Of two cooldowns of one kind the later end wins; kinds are independent; an end in the
/// past stores nothing.
pub async fn cooldown_latest_end_wins(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    use CooldownKind::{Overloaded, RateLimited, TempUnschedulable};
    let account = unique_account();
    let now = whole_ms(OffsetDateTime::now_utc());
    let at = |seconds| now + time::Duration::seconds(seconds);
    assert_eq!(c.set_cooldown(account, RateLimited, at(60)).await?, at(60));
    assert_eq!(c.set_cooldown(account, RateLimited, at(30)).await?, at(60), "a shorter one does not cut it");
    assert_eq!(c.set_cooldown(account, Overloaded, at(30)).await?, at(30), "kinds are independent");
    assert_eq!(
        in_force(&*c, account).await?,
        [Cooldown { kind: RateLimited, until: at(60) }, Cooldown { kind: Overloaded, until: at(30) }]
    );
    assert_eq!(c.set_cooldown(account, RateLimited, at(90)).await?, at(90), "a longer one extends");
    assert_eq!(c.set_cooldown(account, TempUnschedulable, at(-5)).await?, at(-5), "already over");
    assert_eq!(
        in_force(&*c, account).await?,
        [Cooldown { kind: RateLimited, until: at(90) }, Cooldown { kind: Overloaded, until: at(30) }]
    );
    for kind in CooldownKind::ALL {
        c.clear_cooldown(account, kind).await?;
    }
    Ok(())
}

/// Clearing ends a cooldown at once, even a long one; the account is then absent.
pub async fn cooldown_clear(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    use CooldownKind::{Overloaded, RateLimited};
    let account = unique_account();
    let until = whole_ms(OffsetDateTime::now_utc()) + time::Duration::hours(1);
    let shorter = until - time::Duration::minutes(30);
    c.set_cooldown(account, RateLimited, until).await?;
    c.set_cooldown(account, Overloaded, until).await?;
    assert!(c.clear_cooldown(account, RateLimited).await?);
    assert!(!c.clear_cooldown(account, RateLimited).await?, "clearing twice is a no-op");
    assert_eq!(in_force(&*c, account).await?, [Cooldown { kind: Overloaded, until }], "only the cleared kind went");
    assert_eq!(c.set_cooldown(account, Overloaded, shorter).await?, until);
    assert!(c.clear_cooldown(account, Overloaded).await?);
    assert!(c.cooldowns(&[account]).await?.is_empty(), "no cooldown left: account absent");
    assert_eq!(c.set_cooldown(account, Overloaded, shorter).await?, shorter, "after a clear, a shorter one holds");
    assert!(c.clear_cooldown(account, Overloaded).await?);
    Ok(())
}

/// A cooldown stops being reported at its end; a new one can follow.
pub async fn cooldown_expires(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let account = unique_account();
    let until = OffsetDateTime::now_utc() + SHORT;
    c.set_cooldown(account, CooldownKind::Overloaded, until).await?;
    assert!(c.cooldowns(&[account]).await?.contains_key(&account));
    sleep(PAST_SHORT).await;
    assert!(c.cooldowns(&[account]).await?.is_empty(), "expired cooldowns are not reported");
    assert!(!c.clear_cooldown(account, CooldownKind::Overloaded).await?, "an expired cooldown is not in force");
    let next = whole_ms(OffsetDateTime::now_utc()) + time::Duration::seconds(5);
    assert_eq!(c.set_cooldown(account, CooldownKind::Overloaded, next).await?, next, "the expired end does not win");
    c.clear_cooldown(account, CooldownKind::Overloaded).await?;
    Ok(())
}

/// One call returns the cooldowns of many accounts, only of those that have one.
pub async fn cooldowns_are_batched(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let (a, b, idle) = (unique_account(), unique_account(), unique_account());
    let until = whole_ms(OffsetDateTime::now_utc()) + time::Duration::minutes(5);
    c.set_cooldown(a, CooldownKind::RateLimited, until).await?;
    c.set_cooldown(b, CooldownKind::TempUnschedulable, until).await?;
    let found = c.cooldowns(&[a, idle, b]).await?;
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[&a], [Cooldown { kind: CooldownKind::RateLimited, until }]);
    assert_eq!(found[&b], [Cooldown { kind: CooldownKind::TempUnschedulable, until }]);
    assert!(c.cooldowns(&[]).await?.is_empty());
    c.clear_cooldown(a, CooldownKind::RateLimited).await?;
    c.clear_cooldown(b, CooldownKind::TempUnschedulable).await?;
    Ok(())
}

/// A lock has one holder; only that holder unlocks it; an expired lock is free, and its old
/// holder cannot unlock the next one's.
pub async fn lock_is_exclusive_and_expires(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let key = unique_key("lock");
    let first = some(c.try_lock(&key, LONG).await?, "a free lock");
    assert!(c.try_lock(&key, LONG).await?.is_none(), "held: nobody else gets it");
    assert!(c.unlock(&first).await?);
    assert!(!c.unlock(&first).await?, "unlocking twice is a no-op");

    let expired = some(c.try_lock(&key, SHORT).await?, "the lock again");
    sleep(PAST_SHORT).await;
    let current = some(c.try_lock(&key, LONG).await?, "an expired lock is free");
    assert_ne!(expired.token(), current.token());
    assert!(!c.unlock(&expired).await?, "the old holder cannot unlock");
    assert!(c.try_lock(&key, LONG).await?.is_none(), "the new holder still holds it");
    assert!(c.unlock(&current).await?);
    Ok(())
}

/// A counter adds up within its window, which later increments do not extend, then starts over.
pub async fn counter_counts_in_a_fixed_window(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let key = unique_key("counter");
    // The middle increment comes well inside the window; the last one after the window but
    // before the end a wrongly extended window would have.
    let window = Duration::from_millis(400);
    assert_eq!(c.incr(&key, 1, window).await?, 1);
    assert_eq!(c.incr(&key, 2, window).await?, 3);
    assert_eq!(c.incr(&key, -1, window).await?, 2, "negative steps subtract");
    sleep(Duration::from_millis(200)).await;
    assert_eq!(c.incr(&key, 1, window).await?, 3, "same window");
    sleep(Duration::from_millis(300)).await;
    assert_eq!(c.incr(&key, 5, window).await?, 5, "the window was not extended: a new one starts");
    assert_eq!(c.incr(&unique_key("other"), 1, window).await?, 1, "counters are independent");
    Ok(())
}

/// A dropped guard gives its slot (or queue place) back within moments; `release` does it at once.
pub async fn guard_releases_on_drop(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let key = unique_key("guard");
    let guard = SlotGuard::new(Arc::clone(&c), some(c.try_acquire_slot(&key, 1, LONG).await?, "a slot"));
    let queued = QueueGuard::new(Arc::clone(&c), some(c.try_enter_queue(&key, 1, LONG).await?, "a place"));
    assert_eq!(c.slot_loads(&[key.as_str()]).await?, vec![SlotLoad { held: 1, waiting: 1 }]);
    drop(guard);
    drop(queued);
    let start = Instant::now();
    while c.slot_loads(&[key.as_str()]).await? != vec![SlotLoad::default()] {
        assert!(start.elapsed() < Duration::from_secs(2), "dropped guards did not give back their lease");
        sleep(Duration::from_millis(5)).await;
    }

    let guard = SlotGuard::new(Arc::clone(&c), some(c.try_acquire_slot(&key, 1, LONG).await?, "the slot again"));
    assert!(guard.refresh(LONG).await?);
    assert!(guard.release().await?, "an explicit release gives it back");
    assert_eq!(c.slot_count(&key).await?, 0, "at once");
    Ok(())
}

/// `acquire_all` takes every slot or none: when one key is full, the slots it had already
/// taken are given back before it returns.
pub async fn acquire_all_is_all_or_nothing(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    let (account, user, api_key) = (unique_key("account"), unique_key("user"), unique_key("api-key"));
    let blocker = some(c.try_acquire_slot(&user, 1, LONG).await?, "the user's only slot");
    let slots = [(account.as_str(), 1), (user.as_str(), 1), (api_key.as_str(), 0)];
    match acquire_all(&c, &slots, LONG).await? {
        AcquireAll::Full { index } => assert_eq!(index, 1, "the user key is the full one"),
        AcquireAll::Acquired(_) => panic!("acquired past a full key"),
    }
    assert_eq!(
        c.slot_counts(&[account.as_str(), user.as_str(), api_key.as_str()]).await?,
        vec![0, 1, 0],
        "nothing kept"
    );

    assert!(c.release_slot(&blocker).await?);
    let guards = some(acquire_all(&c, &slots, LONG).await?.into_guards(), "all three slots");
    let keys: Vec<&str> = guards.iter().map(|g| g.lease().key()).collect();
    assert_eq!(keys, [account.as_str(), user.as_str(), api_key.as_str()]);
    assert_eq!(c.slot_counts(&[account.as_str(), user.as_str(), api_key.as_str()]).await?, vec![1, 1, 1]);
    for guard in guards {
        assert!(guard.release().await?);
    }
    assert!(acquire_all(&c, &[], LONG).await?.into_guards().is_some_and(|g| g.is_empty()));
    Ok(())
}

/// Fifty tasks competing for a key with limit 3 never hold more than 3 slots at once, and all
/// of them get their turn.
pub async fn concurrent_acquirers_never_exceed_the_limit(c: Arc<dyn Coordinator>) -> CoordResult<()> {
    const TASKS: usize = 50;
    const LIMIT: u32 = 3;
    let key = Arc::new(unique_key("hammer"));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..TASKS {
        let (c, key) = (Arc::clone(&c), Arc::clone(&key));
        let (in_flight, peak, served) = (Arc::clone(&in_flight), Arc::clone(&peak), Arc::clone(&served));
        tasks.spawn(async move {
            loop {
                if let Some(lease) = c.try_acquire_slot(&key, LIMIT, LONG).await? {
                    // Counted after the grant and uncounted before the release, so the
                    // counter never runs ahead of the coordinator.
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    sleep(Duration::from_millis(2)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    served.fetch_add(1, Ordering::SeqCst);
                    c.release_slot(&lease).await?;
                    return Ok::<(), CoordError>(());
                }
                c.wait_for_release(&key, LIMIT, Duration::from_millis(100)).await?;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(outcome) => outcome?,
            Err(e) => panic!("acquiring task failed: {e}"),
        }
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!((1..=3).contains(&peak), "at most {LIMIT} at once, saw {peak}");
    assert_eq!(served.load(Ordering::SeqCst), TASKS, "every task was served");
    assert_eq!(c.slot_count(&key).await?, 0);
    Ok(())
}
