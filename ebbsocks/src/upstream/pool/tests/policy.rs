//! The warm-up policy end to end: who gets spares, how many, and who is
//! backed off. Time moves with tokio's paused clock (`jump`) between
//! checkouts, while no socket I/O is in flight.

use std::sync::atomic::AtomicBool;

use super::*;

/// Asserts a pause has about `secs` left (the clock runs between the
/// strike and the look).
fn assert_paused_for(pool: &Pool, d: SocketAddr, secs: u64) {
    let left = dest_stats(pool, d).warm_paused_ms_left;
    assert!(
        (secs * 1000 - 2000..=secs * 1000).contains(&left),
        "{left} ms left, expected about {secs} s"
    );
}

/// The destination closes the next `n` connections it accepted, the idle
/// spare for `d` among them; returns once the pool sees that spare closed.
async fn close_accepted(server: &mut Server, pool: &Pool, d: SocketAddr, n: usize) {
    drop(server.take_streams(n).await);
    until("the FIN to arrive", || {
        idle_probes(pool, d) == [Probe::Closed]
    })
    .await;
}

fn switch(server: &Server) -> (Switch, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let refuse = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let connector = Switch {
        target: Some(server.addr),
        refuse: refuse.clone(),
        calls: calls.clone(),
    };
    (connector, refuse, calls)
}

#[tokio::test]
async fn one_off_destinations_are_never_warmed() {
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_for(config(4, 100), &server);
    for i in 0..50 {
        drop(pool.get(dest(i)).await.unwrap());
    }
    // Twice, but further apart than the idle timeout: still one-offs.
    let d = dest(1000);
    drop(pool.get(d).await.unwrap());
    settled(&pool).await;
    jump(Duration::from_secs(31)).await;
    drop(pool.get(d).await.unwrap());
    settled(&pool).await;

    let stats = pool.stats();
    assert_eq!(stats.spares_created, 0);
    assert_eq!(stats.total_idle, 0);
    assert_eq!(stats.pool_misses, 52);
    // Exactly one upstream connection per client CONNECT.
    assert_eq!(stats.total_created, stats.pool_misses);
    assert_eq!(dest_stats(&pool, d).demand, 0);
    until("every connect to be accepted", || server.accepted() == 52).await;
}

#[tokio::test]
async fn a_hot_destination_is_warmed_up_to_its_demand_and_no_further() {
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_for(config(4, 100), &server);
    let d = dest(1);

    // One client at a time: one spare, replaced after each hit.
    warm(&pool, d).await;
    for _ in 0..10 {
        assert!(pool.get(d).await.unwrap().reused);
        settled(&pool).await;
        assert_eq!(pool.stats().total_idle, 1);
    }
    assert_eq!(dest_stats(&pool, d).demand, 1);
    assert_eq!(pool.stats().spares_created, 11);

    // Three at once: one hit, two misses; demand is now three.
    let three = tokio::join!(pool.get(d), pool.get(d), pool.get(d));
    settled(&pool).await;
    assert_eq!(dest_stats(&pool, d).demand, 3);
    assert_eq!(pool.stats().total_idle, 3);
    drop(three);
    // More one-at-a-time checkouts keep three warm, not more.
    for _ in 0..5 {
        assert!(pool.get(d).await.unwrap().reused);
        settled(&pool).await;
        assert_eq!(pool.stats().total_idle, 3);
    }

    // Eight at once: demand eight, capped at max_idle_per_dest.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(pool.get(d).await.unwrap());
    }
    settled(&pool).await;
    assert_eq!(dest_stats(&pool, d).demand, 4);
    assert_eq!(pool.stats().total_idle, 4);
    drop(held);

    // Two idle timeouts later the burst is forgotten: the spares expired,
    // and the next checkouts earn one spare again.
    jump(Duration::from_secs(61)).await;
    pool.cleanup(Instant::now());
    assert_eq!(pool.stats().total_idle, 0);
    warm(&pool, d).await;
    assert_eq!(dest_stats(&pool, d).demand, 1);
    assert_eq!(pool.stats().total_idle, 1);
}

#[tokio::test]
async fn a_refusing_destination_is_not_retried_by_the_warmer() {
    let server = Server::start(Mode::Drain).await;
    let (connector, refuse, calls) = switch(&server);
    let (pool, telemetry) = pool_with(config(4, 100), connector);
    let d = dest(1);

    // Refusing from the start: ten checkouts, ten connects, no spare.
    refuse.store(true, SeqCst);
    for _ in 0..10 {
        assert!(pool.get(d).await.is_err());
    }
    settled(&pool).await;
    assert_eq!(calls.load(SeqCst), 10);
    assert_eq!(pool.stats().spares_failed, 0);

    // Accepting clients but refusing the spare they start: one spare
    // connect, then the warmer stays away for an idle timeout.
    let e = dest(2);
    let before = calls.load(SeqCst);
    for _ in 0..5 {
        refuse.store(false, SeqCst);
        drop(pool.get(e).await.unwrap());
        // The spare's task has not run yet: it will be refused.
        refuse.store(true, SeqCst);
        settled(&pool).await;
    }
    let stats = pool.stats();
    assert_eq!(
        calls.load(SeqCst) - before,
        5 + 1,
        "five checkouts, one spare"
    );
    assert_eq!((stats.spares_failed, stats.spares_created), (1, 0));
    assert_eq!(stats.warm_pauses, 1);
    let paused = dest_stats(&pool, e);
    assert_eq!(paused.warm_paused, Some("spare_connect_failed"));
    assert_paused_for(&pool, e, 30);
    assert_eq!(events(&telemetry, "unsuited to pooling"), 1);

    // After the pause (and a quiet spell that ends the demand) the warmer
    // tries again once the destination is in demand; a second failure
    // pauses it twice as long.
    jump(Duration::from_secs(31)).await;
    for _ in 0..2 {
        refuse.store(false, SeqCst);
        drop(pool.get(e).await.unwrap());
        refuse.store(true, SeqCst);
        settled(&pool).await;
    }
    assert_eq!(pool.stats().spares_failed, 2);
    assert_paused_for(&pool, e, 60);
}

#[tokio::test]
async fn a_destination_that_closes_idle_connections_is_backed_off() {
    let mut server = Server::start(Mode::Keep).await;
    let (pool, telemetry) = pool_for(config(4, 100), &server);
    let d = dest(1);

    // Warm, then the destination closes the idle spare.
    warm(&pool, d).await;
    close_accepted(&mut server, &pool, d, 3).await;
    let session = pool.get(d).await.unwrap();
    assert!(!session.reused, "the spare was found closed");
    settled(&pool).await;
    let stats = pool.stats();
    assert_eq!((stats.stale, stats.warm_pauses), (1, 1));
    assert_eq!(
        dest_stats(&pool, d).warm_paused,
        Some("closes_idle_connections")
    );
    assert_eq!(events(&telemetry, "unsuited to pooling"), 1);

    // Paused: checkouts open no spares.
    for _ in 0..5 {
        drop(pool.get(d).await.unwrap());
        settled(&pool).await;
    }
    assert_eq!(pool.stats().spares_created, 1);
    assert_eq!(pool.stats().total_idle, 0);

    // After one idle timeout it is warmed again (once in demand); closed
    // again, the pause is twice as long.
    jump(Duration::from_secs(31)).await;
    warm(&pool, d).await;
    assert_eq!(pool.stats().spares_created, 2);
    // The stale miss, five paused checkouts, two more and the spare.
    close_accepted(&mut server, &pool, d, 9).await;
    drop(pool.get(d).await.unwrap());
    settled(&pool).await;
    assert_eq!(pool.stats().warm_pauses, 2);
    assert_paused_for(&pool, d, 60);

    // A paused destination outlives the usual pruning (31 s unused), so
    // the back-off is not forgotten in a quiet spell; and it still holds.
    jump(Duration::from_secs(31)).await;
    pool.cleanup(Instant::now());
    assert_eq!(pool.stats().destinations, 1);
    warm(&pool, d).await;
    assert_eq!(pool.stats().spares_created, 2, "still paused");
}

#[tokio::test]
async fn a_hit_clears_the_strikes() {
    let mut server = Server::start(Mode::Keep).await;
    let (pool, _) = pool_for(config(4, 100), &server);
    let d = dest(1);
    warm(&pool, d).await;
    close_accepted(&mut server, &pool, d, 3).await;
    drop(pool.get(d).await.unwrap());
    settled(&pool).await;
    assert_eq!(pool.stats().warm_pauses, 1);

    // After the pause, a spare that is still good when taken is a hit.
    jump(Duration::from_secs(31)).await;
    warm(&pool, d).await;
    // The stale miss, the two checkouts and the spare, kept open.
    let _kept = server.take_streams(4).await;
    assert!(pool.get(d).await.unwrap().reused);
    settled(&pool).await;
    // So the next closed one is a first strike again: one timeout.
    close_accepted(&mut server, &pool, d, 1).await;
    drop(pool.get(d).await.unwrap());
    assert_eq!(pool.stats().warm_pauses, 2);
    assert_paused_for(&pool, d, 30);
}
