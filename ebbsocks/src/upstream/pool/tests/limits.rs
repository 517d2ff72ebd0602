//! Per-destination and global limits, eviction, and spikes.

use super::*;

#[tokio::test]
async fn a_full_destination_gets_no_more_idle_connections() {
    let server = Server::start(Mode::Drain).await;
    let (pool, telemetry) = pool_for(config(2, 10), &server);
    let d = dest(1);
    // Five checkouts before any pre-connect can land: two reserve room,
    // three find the destination full.
    let sessions = tokio::join!(
        pool.get(d),
        pool.get(d),
        pool.get(d),
        pool.get(d),
        pool.get(d)
    );
    settled(&pool).await;
    let stats = pool.stats();
    assert_eq!(stats.total_idle, 2);
    assert_eq!(stats.dropped_full, 3);
    assert_eq!(stats.per_destination[0].dropped, 3);
    assert_eq!(stats.total_created, 7, "never connect-then-discard");
    until("every connect to be accepted", || server.accepted() == 7).await;
    assert_eq!(events(&telemetry, "idle limit reached: new idle"), 3);
    drop(sessions);
}

#[tokio::test]
async fn a_full_pool_evicts_its_oldest_idle_connection() {
    let server = Server::start(Mode::Drain).await;
    let (pool, telemetry) = pool_for(config(2, 2), &server);
    let (a, b, c) = (dest(1), dest(2), dest(3));
    for d in [a, b] {
        drop(pool.get(d).await.unwrap());
        settled(&pool).await;
    }
    assert_eq!(pool.stats().total_idle, 2);

    // C's warm-up needs room: A's connection is the oldest.
    drop(pool.get(c).await.unwrap());
    settled(&pool).await;
    assert_eq!(idle_ports(&pool, a).len(), 0);
    assert_eq!(idle_ports(&pool, b).len(), 1);
    assert_eq!(idle_ports(&pool, c).len(), 1);
    // And now B's is the oldest, not A's bookkeeping order.
    drop(pool.get(a).await.unwrap());
    settled(&pool).await;
    assert_eq!(idle_ports(&pool, b).len(), 0);
    assert_eq!(idle_ports(&pool, c).len(), 1);
    assert_eq!(idle_ports(&pool, a).len(), 1);

    let stats = pool.stats();
    assert_eq!(stats.total_idle, 2);
    assert_eq!(stats.evicted, 2);
    let evicted = |d: SocketAddr| {
        let s = stats
            .per_destination
            .iter()
            .find(|s| s.destination == d.to_string());
        s.unwrap().evicted
    };
    assert_eq!((evicted(a), evicted(b), evicted(c)), (1, 1, 0));
    assert_eq!(events(&telemetry, "evicted the oldest"), 2);
    assert_eq!(pool.slots.load(SeqCst), 2);
}

#[tokio::test]
async fn with_every_slot_reserved_a_warm_up_is_dropped_not_forced() {
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_with(config(2, 2), Slow(server.addr, Duration::from_millis(50)));
    // Two destinations reserve both global slots; the third has nothing to
    // evict, since nothing is idle yet.
    let all = tokio::join!(pool.get(dest(1)), pool.get(dest(2)), pool.get(dest(3)));
    assert_eq!(pool.stats().dropped_full, 1);
    settled(&pool).await;
    assert_eq!(pool.stats().total_idle, 2);
    drop(all);
}

#[tokio::test]
async fn a_spike_to_one_destination_opens_no_replacement_storm() {
    const GETS: usize = 2000;
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_for(config(4, 100), &server);
    let d = dest(1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let pool = pool.clone();
        tasks.spawn(async move {
            for _ in 0..GETS / 200 {
                let mut upstream = pool.get(d).await.unwrap();
                upstream.stream.write_all(b"x").await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    settled(&pool).await;
    let stats = pool.stats();
    assert_eq!(stats.pool_hits + stats.pool_misses, GETS as u64);
    assert!(stats.total_idle <= 4);
    // Each created connection was handed out or is idle: at most
    // `max_idle_per_dest` more than the sessions needed.
    assert_eq!(stats.total_created, GETS as u64 + stats.total_idle as u64);
    let created = stats.total_created as usize;
    until("every connect to be accepted", || {
        server.accepted() == created
    })
    .await;
    assert_eq!(stats.connections_in_use, 0);
    until("upstream to see every session closed", || {
        server.closed.load(SeqCst) == GETS
    })
    .await;
    assert_eq!(server.bytes.load(SeqCst), GETS);
}

#[tokio::test]
async fn preconnects_in_flight_never_exceed_the_cap() {
    let server = Server::start(Mode::Drain).await;
    let (gate, open) = tokio::sync::watch::channel(false);
    let calls = Arc::new(AtomicUsize::new(0));
    let connector = Gated {
        target: server.addr,
        open,
        calls: calls.clone(),
    };
    let (pool, _) = pool_with(config(4, 1000), connector);
    // 300 checkouts over 100 destinations, every connect held at the gate:
    // each checkout asks for a warm-up, and while nothing lands the cap is
    // the only thing that says no. Counted at a point where nothing moves,
    // so the figures are exact, not samples.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let pool = pool.clone();
        tasks.spawn(async move { drop(pool.get(dest(i % 100)).await.unwrap()) });
    }
    until("every checkout to start connecting", || {
        pool.counters.misses.load(SeqCst) == 300
    })
    .await;
    assert_eq!(pool.counters.pending.load(SeqCst), MAX_PENDING_CONNECTS);
    until("every connect to reach the gate", || {
        calls.load(SeqCst) == 300 + MAX_PENDING_CONNECTS
    })
    .await;

    gate.send(true).unwrap();
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    settled(&pool).await;
    // Nothing else was opened: no warm-up ran past the cap, later or not.
    assert_eq!(calls.load(SeqCst), 300 + MAX_PENDING_CONNECTS);
    let stats = pool.stats();
    assert_eq!(stats.total_created, 300 + MAX_PENDING_CONNECTS as u64);
    assert_eq!(stats.total_idle, MAX_PENDING_CONNECTS, "{stats:?}");
}

#[tokio::test]
async fn the_eviction_index_stays_bounded_on_a_busy_destination() {
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_for(config(2, 2), &server);
    for _ in 0..200 {
        drop(pool.get(dest(1)).await.unwrap());
        settled(&pool).await;
    }
    assert!(pool.evictions.len() <= 2 * 2 + 32 + 1);
    pool.cleanup(Instant::now());
    assert!(pool.evictions.len() <= 2);
}
