//! The coordinator contract (`store::coord::contract`): every behaviour runs against the
//! in-memory coordinator and, when `TEST_REDIS_URL` is set, the Redis coordinator (under a
//! key prefix of its own, deleted afterwards), on a multi-threaded runtime and the real clock.

#![allow(clippy::expect_used, reason = "test code fails loudly on purpose")]

use std::sync::Arc;

use store::coord::{Coordinator, MemoryCoordinator, RedisCoordinator, contract};

/// A Redis coordinator under a fresh prefix, or `None` without `TEST_REDIS_URL`.
async fn redis() -> Option<Arc<RedisCoordinator>> {
    let url = std::env::var("TEST_REDIS_URL").ok().filter(|u| !u.is_empty())?;
    let prefix = format!("sub2api-test:{:016x}:", rand::random::<u64>());
    Some(Arc::new(RedisCoordinator::connect(&url, &prefix).await.expect("connect to TEST_REDIS_URL")))
}

/// Expands `contract!(name, …)` into a module `name` per behaviour with one test per
/// coordinator implementation.
macro_rules! contract {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn memory() {
                    let coord: Arc<dyn Coordinator> = Arc::new(MemoryCoordinator::new());
                    contract::$name(coord).await.expect("the memory coordinator never fails");
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn redis() {
                    let Some(coord) = super::redis().await else {
                        eprintln!("TEST_REDIS_URL not set: Redis variant not run");
                        return;
                    };
                    let result = contract::$name(Arc::clone(&coord) as Arc<dyn Coordinator>).await;
                    // Give dropped guards a moment to hand their leases back, then clean up.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    coord.delete_all().await.expect("clean up the test prefix");
                    result.expect("Redis answered");
                }
            }
        )+
    };
}

contract!(
    slot_limit_is_enforced,
    unlimited_slots_are_counted,
    release_frees_a_slot_once,
    expired_lease_frees_capacity,
    refresh_extends_a_lease,
    slot_loads_are_batched,
    queue_is_bounded,
    wait_wakes_on_release,
    wait_times_out_or_returns_at_once,
    sticky_binding_round_trip,
    sticky_binding_expires_unless_touched,
    cooldown_latest_end_wins,
    cooldown_clear,
    cooldown_expires,
    cooldowns_are_batched,
    lock_is_exclusive_and_expires,
    counter_counts_in_a_fixed_window,
    guard_releases_on_drop,
    acquire_all_is_all_or_nothing,
    concurrent_acquirers_never_exceed_the_limit,
);
