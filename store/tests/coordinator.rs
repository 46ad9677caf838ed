//! The coordinator contract (`store::coord::contract`): every behaviour runs against the
//! in-memory coordinator, on a multi-threaded runtime and the real clock.

use std::sync::Arc;

use store::coord::{Coordinator, MemoryCoordinator, contract};

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
