//! The cost of per-destination bookkeeping under a flood of one-off
//! destinations: when the cleanup task runs early, and what it visits.

use super::*;
use cleanup::early_pass_above;

/// Three quarters of the cap: what an early pass prunes down to.
const PRUNE_TO: usize = MAX_TRACKED_DESTINATIONS * 3 / 4;

#[test]
fn the_early_pass_threshold_doubles_only_over_busy_destinations() {
    let cap = MAX_TRACKED_DESTINATIONS;
    // Under the cap, or pruned back to the target: the cap.
    assert_eq!(early_pass_above(100, 100), cap);
    assert_eq!(early_pass_above(cap, cap), cap);
    assert_eq!(early_pass_above(cap + 1, PRUNE_TO), cap);
    assert_eq!(early_pass_above(3 * cap, PRUNE_TO), cap);
    // Over the cap and stuck above the target: twice what was kept.
    assert_eq!(early_pass_above(cap + 1, PRUNE_TO + 1), 2 * (PRUNE_TO + 1));
    assert_eq!(early_pass_above(3 * cap, 3 * cap), 6 * cap);
    assert_eq!(early_pass_above(usize::MAX, usize::MAX), usize::MAX);
}

/// Destinations whose connects never finish stay busy, so no pass can
/// prune them: before the threshold doubled, every new one past the cap
/// woke a pass over all of them (about 33 million visits for this flood).
#[tokio::test]
async fn a_flood_of_busy_destinations_costs_amortised_passes() {
    const FLOOD: u32 = 3 * MAX_TRACKED_DESTINATIONS as u32;
    let mut cfg = config(4, 100);
    cfg.connect_timeout_ms = 3_600_000;
    cfg.idle_timeout_secs = 3600; // No periodic pass during the test.
    let pool = Pool::with_connector(cfg, Arc::new(Telemetry::default()), Arc::new(Hangs));
    let mut checkouts = tokio::task::JoinSet::new();
    for i in 0..FLOOD {
        let pool = pool.clone();
        checkouts.spawn(async move { pool.get(dest(i)).await });
        // Lets the checkout, and the cleanup task when woken, run now.
        tokio::task::yield_now().await;
    }
    until("every checkout to start connecting", || {
        pool.counters.misses.load(SeqCst) == u64::from(FLOOD)
    })
    .await;
    let passes = pool.trigger.passes.load(SeqCst);
    let visited = pool.trigger.visited.load(SeqCst);
    assert!(passes >= 1, "the cap was crossed: at least one early pass");
    // Thresholds 4096, then at least 8194 and 16390: two passes.
    assert!(passes <= 3, "{passes} passes");
    assert!(
        visited <= 2 * u64::from(FLOOD),
        "{visited} visits in {passes} passes"
    );
    assert_eq!(pool.stats().destinations, FLOOD as usize, "busy ones stay");

    // Once they stop being busy, one pass prunes to the target and the
    // threshold is the cap again.
    checkouts.shutdown().await;
    pool.cleanup(Instant::now());
    assert_eq!(pool.stats().destinations, PRUNE_TO);
    assert_eq!(pool.trigger.above.load(SeqCst), MAX_TRACKED_DESTINATIONS);
}

#[tokio::test]
async fn an_early_pass_prunes_unused_destinations_by_last_activity() {
    let (pool, _) = pool_with(config(4, 100), Refused);
    for i in 0..MAX_TRACKED_DESTINATIONS as u32 + 100 {
        assert!(pool.get(dest(i)).await.is_err());
        // Distinct activity times, oldest first.
        jump(Duration::from_millis(1)).await;
    }
    pool.cleanup(Instant::now());
    assert_eq!(pool.stats().destinations, PRUNE_TO);
    let map = read(&pool.dests);
    // The newest PRUNE_TO stayed; the oldest went.
    let oldest_kept = MAX_TRACKED_DESTINATIONS as u32 + 100 - PRUNE_TO as u32;
    assert!(map.contains_key(&dest(oldest_kept)));
    assert!(!map.contains_key(&dest(oldest_kept - 1)));
}
