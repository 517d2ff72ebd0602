//! Per-destination and global limits, eviction, and spikes.

use super::*;

#[tokio::test]
async fn a_destination_gets_no_more_spares_than_max_idle_per_dest() {
    let server = Server::start(Mode::Drain).await;
    let (pool, telemetry) = pool_for(config(2, 10), &server);
    let d = dest(1);
    // Five sessions at once: demand is five, capped at two spares. The
    // others were never wanted, so nothing counts as turned away.
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
    assert_eq!(stats.per_destination[0].demand, 2);
    assert_eq!(stats.dropped_full, 0);
    assert_eq!(stats.per_destination[0].dropped, 0);
    assert_eq!(stats.total_created, 7, "never connect-then-discard");
    until("every connect to be accepted", || server.accepted() == 7).await;
    assert_eq!(events(&telemetry, "idle limit reached"), 0);
    drop(sessions);
}

#[tokio::test]
async fn a_full_pool_evicts_its_oldest_idle_connection() {
    let server = Server::start(Mode::Drain).await;
    let (pool, telemetry) = pool_for(config(2, 2), &server);
    let (a, b, c) = (dest(1), dest(2), dest(3));
    for d in [a, b] {
        warm(&pool, d).await;
    }
    assert_eq!(pool.stats().total_idle, 2);

    // C's warm-up needs room: A's connection is the oldest.
    warm(&pool, c).await;
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
async fn with_every_slot_reserved_a_spare_is_dropped_not_forced() {
    let server = Server::start(Mode::Drain).await;
    // Each destination's two checkouts connect; its spare waits at the gate.
    let (connector, _gate, _) = Gated::new(server.addr, 2);
    let (pool, telemetry) = pool_with(config(1, 2), connector);
    // Two destinations reserve both pool-wide slots; the third has nothing
    // to evict, since nothing is idle yet: its one spare is turned away.
    for d in [dest(1), dest(2), dest(3)] {
        drop(pool.get(d).await.unwrap());
        drop(pool.get(d).await.unwrap());
    }
    let stats = pool.stats();
    assert_eq!(stats.dropped_full, 1);
    assert_eq!(dest_stats(&pool, dest(3)).dropped, 1);
    assert_eq!(dest_stats(&pool, dest(1)).dropped, 0);
    assert_eq!(stats.pending_creates, 2);
    assert_eq!(stats.evicted, 0);
    assert_eq!(events(&telemetry, "idle limit reached"), 1);
    // A fourth destination, with both slots still reserved, is one more
    // spare turned away.
    drop(pool.get(dest(4)).await.unwrap());
    drop(pool.get(dest(4)).await.unwrap());
    assert_eq!(pool.stats().dropped_full, 2);
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
async fn spares_in_flight_never_exceed_the_cap() {
    let server = Server::start(Mode::Drain).await;
    // Three checkouts per destination connect at once; every spare is held
    // at the gate.
    let (connector, gate, calls) = Gated::new(server.addr, 3);
    let (pool, _) = pool_with(config(4, 1000), connector);
    // 300 checkouts over 100 destinations, all in demand: each successful
    // miss asks for a spare, and while none lands the cap is the only
    // thing that says no. Counted at a point where nothing moves, so the
    // figures are exact, not samples.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let pool = pool.clone();
        tasks.spawn(async move { drop(pool.get(dest(i % 100)).await.unwrap()) });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(pool.counters.pending.load(SeqCst), MAX_PENDING_CONNECTS);
    until("every spare to reach the gate", || {
        calls.load(SeqCst) == 300 + MAX_PENDING_CONNECTS
    })
    .await;

    gate.send(true).unwrap();
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
