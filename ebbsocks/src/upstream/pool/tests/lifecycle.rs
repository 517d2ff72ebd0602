//! Expiry, the cleanup task, bounded bookkeeping and the stats snapshot.

use super::*;

#[tokio::test]
async fn an_idle_connection_past_the_timeout_is_never_handed_out() {
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_for(config(4, 100), &server);
    let d = dest(1);
    warm(&pool, d).await;
    let stale_port = idle_ports(&pool, d);
    assert_eq!(stale_port.len(), 1);

    jump(Duration::from_secs(30)).await;
    let upstream = pool.get(d).await.unwrap();
    assert!(!upstream.reused);
    assert_ne!(vec![upstream.stream.local_addr().unwrap()], stale_port);
    let stats = pool.stats();
    assert_eq!((stats.expired, stats.stale), (1, 0));
    assert_eq!(stats.per_destination[0].expired, 1);
}

#[tokio::test]
async fn cleanup_closes_expired_connections_and_keeps_fresh_ones() {
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_for(config(4, 100), &server);
    warm(&pool, dest(1)).await;
    jump(Duration::from_secs(20)).await;
    warm(&pool, dest(2)).await;

    jump(Duration::from_secs(10)).await;
    pool.cleanup(Instant::now());
    assert_eq!(idle_ports(&pool, dest(1)).len(), 0);
    assert_eq!(idle_ports(&pool, dest(2)).len(), 1);
    let stats = pool.stats();
    assert_eq!((stats.expired, stats.total_idle), (1, 1));
    assert_eq!(pool.slots.load(SeqCst), 1);
    // Four sessions and the expired spare.
    until("the upstream to see it closed", || {
        server.closed.load(SeqCst) == 5
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_cleanup_task_runs_while_the_pool_lives_and_ends_with_it() {
    let (pool, _) = pool_with(config(4, 100), Refused);
    let task = cleanup::spawn(&pool);
    let period = cleanup::period(pool.config().idle_timeout());
    for _ in 0..5 {
        tokio::time::sleep(period).await;
        assert!(!task.is_finished());
    }
    drop(pool);
    // Well before the next tick: the pool's drop wakes the task.
    tokio::time::timeout(period / 10, task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_started_pool_ends_its_task_when_dropped() {
    let telemetry = Arc::new(Telemetry::default());
    let pool = Pool::with_connector(config(4, 100), telemetry, Arc::new(Refused));
    let weak = Arc::downgrade(&pool);
    let _ = pool.get(dest(1)).await;
    settled(&pool).await;
    drop(pool);
    assert!(weak.upgrade().is_none(), "no task keeps the pool alive");
}

#[tokio::test(start_paused = true)]
async fn bookkeeping_for_thousands_of_destinations_is_pruned() {
    let telemetry = Arc::new(Telemetry::new(1000));
    let pool = Pool::with_connector(config(4, 100), telemetry.clone(), Arc::new(Refused));
    for i in 0..5000 {
        assert!(pool.get(dest(i)).await.is_err());
    }
    settled(&pool).await;
    // Past the cap, the cleanup task was woken and trimmed at once.
    until("the cap to be enforced", || {
        pool.stats().destinations <= MAX_TRACKED_DESTINATIONS
    })
    .await;
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(pool.get(dest(123)).await.is_err());
    let stats = pool.stats();
    assert_eq!(stats.per_destination.len(), PER_DESTINATION_LIMIT);
    assert_eq!(stats.per_destination[0].destination, dest(123).to_string());
    assert_eq!(stats.per_destination[0].last_activity_ms_ago, 0);
    assert_eq!(stats.per_destination[1].last_activity_ms_ago, 1);
    // Failures were coalesced: 5000 checkouts and their pre-connects.
    assert!(telemetry.len() <= 20, "{} events", telemetry.len());

    // After a quiet idle timeout, nothing is remembered.
    tokio::time::sleep(Duration::from_secs(30) + cleanup::period(Duration::from_secs(30))).await;
    until("pruning", || pool.stats().destinations == 0).await;
    assert!(
        read(&pool.dests).capacity() < 1000,
        "the map gave its memory back"
    );
    assert_eq!(pool.stats().pool_misses, 5001, "pool-wide counters stay");
}

#[tokio::test]
async fn a_destination_in_use_is_not_pruned() {
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_for(config(4, 100), &server);
    let held = pool.get(dest(1)).await.unwrap();
    drop(pool.get(dest(2)).await.unwrap());
    jump(Duration::from_secs(60)).await;
    pool.cleanup(Instant::now());
    // dest(1) has a live session; dest(2) has been unused for 60 s.
    assert_eq!(pool.stats().destinations, 1);
    drop(held);
    pool.cleanup(Instant::now());
    assert_eq!(
        pool.stats().destinations,
        1,
        "activity is the session's end, not its start"
    );
    jump(Duration::from_secs(60)).await;
    pool.cleanup(Instant::now());
    assert_eq!(pool.stats().destinations, 0);
    // And a pruned destination comes back on its next checkout.
    assert!(!pool.get(dest(1)).await.unwrap().reused);
    assert_eq!(pool.stats().destinations, 1);
}

#[tokio::test]
async fn stats_match_what_happened() {
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_for(config(2, 100), &server);
    let d = dest(7);
    drop(pool.get(d).await.unwrap()); // miss, seen once: no spare
    drop(pool.get(d).await.unwrap()); // miss, in demand: a spare
    settled(&pool).await;
    let held = pool.get(d).await.unwrap(); // hit; replacement
    settled(&pool).await;

    let stats = pool.stats();
    let expected = PoolStats {
        total_idle: 1,
        destinations: 1,
        connections_in_use: 1,
        total_created: 4,
        checkout_created: 2,
        spares_created: 2,
        spares_failed: 0,
        pool_hits: 1,
        pool_misses: 2,
        dropped_full: 0,
        evicted: 0,
        expired: 0,
        stale: 0,
        warm_pauses: 0,
        pending_creates: 0,
        per_destination: vec![DestinationStats {
            destination: "10.0.0.7:443".into(),
            idle: 1,
            in_use: 1,
            hits: 1,
            misses: 2,
            created: 4,
            spares_created: 2,
            dropped: 0,
            evicted: 0,
            expired: 0,
            stale: 0,
            demand: 1,
            warm_paused: None,
            warm_paused_ms_left: 0,
            last_activity_ms_ago: stats.per_destination[0].last_activity_ms_ago,
        }],
        enabled: true,
        max_idle_per_dest: 2,
        max_total_idle: 100,
        idle_timeout_secs: 30,
        connect_timeout_ms: 5000,
        warm_after_checkouts: 2,
    };
    assert_eq!(stats, expected);
    drop(held);
    assert_eq!(pool.stats().connections_in_use, 0);
    assert_eq!(pool.stats().per_destination[0].in_use, 0);

    let json = serde_json::to_value(pool.stats()).unwrap();
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "checkout_created",
            "connect_timeout_ms",
            "connections_in_use",
            "destinations",
            "dropped_full",
            "enabled",
            "evicted",
            "expired",
            "idle_timeout_secs",
            "max_idle_per_dest",
            "max_total_idle",
            "pending_creates",
            "per_destination",
            "pool_hits",
            "pool_misses",
            "spares_created",
            "spares_failed",
            "stale",
            "total_created",
            "total_idle",
            "warm_after_checkouts",
            "warm_pauses",
        ]
    );
    assert!(json["per_destination"][0]["last_activity_ms_ago"].is_u64());
    assert!(json["per_destination"][0]["warm_paused"].is_null());
}
