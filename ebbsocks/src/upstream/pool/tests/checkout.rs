//! Hits, misses, LIFO order, and what must never be handed out.

use super::*;

#[tokio::test]
async fn a_spare_is_handed_out_as_a_hit() {
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_for(config(4, 100), &server);
    let d = dest(1);

    let first = pool.get(d).await.unwrap();
    assert!(!first.reused, "nothing was idle yet");
    settled(&pool).await;
    assert_eq!(pool.stats().total_idle, 0, "seen once: no spare");
    let second = pool.get(d).await.unwrap();
    assert!(!second.reused);
    settled(&pool).await;
    assert_eq!(pool.stats().total_idle, 1, "seen twice: one spare");
    let warm = idle_ports(&pool, d);

    let third = pool.get(d).await.unwrap();
    assert!(third.reused);
    assert!(third.lease().reused());
    assert_eq!(third.lease().destination(), d);
    assert_eq!(vec![third.stream.local_addr().unwrap()], warm);
    settled(&pool).await;
    let stats = pool.stats();
    assert_eq!((stats.pool_hits, stats.pool_misses), (1, 2));
    assert_eq!(stats.checkout_created, 2, "the two misses");
    assert_eq!(stats.spares_created, 2, "the spare, the hit's replacement");
    assert_eq!(stats.total_created, 4);
    assert_eq!(stats.total_idle, 1);
    assert_eq!(stats.connections_in_use, 3);
    drop((first, second, third));
    assert_eq!(pool.stats().connections_in_use, 0);
}

#[tokio::test]
async fn checkout_takes_the_newest_idle_connection_first() {
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_for(config(4, 100), &server);
    let d = dest(1);
    // Three concurrent misses: each reserves one pre-connect.
    let (a, b, c) = tokio::join!(pool.get(d), pool.get(d), pool.get(d));
    settled(&pool).await;
    let idle = idle_ports(&pool, d);
    assert_eq!(idle.len(), 3);
    drop((a, b, c));

    let newest = pool.get(d).await.unwrap();
    let next = pool.get(d).await.unwrap();
    assert!(newest.reused && next.reused);
    assert_eq!(newest.stream.local_addr().unwrap(), idle[2]);
    assert_eq!(next.stream.local_addr().unwrap(), idle[1]);
}

#[tokio::test]
async fn a_used_connection_is_closed_with_its_session_and_never_reused() {
    let mut server = Server::start(Mode::Keep).await;
    let (pool, _) = pool_for(config(4, 100), &server);
    let d = dest(1);

    drop(pool.get(d).await.unwrap());
    let session = pool.get(d).await.unwrap();
    let used = session.stream.local_addr().unwrap();
    let (mut stream, lease) = session.into_parts();
    stream.write_all(b"x").await.unwrap();
    settled(&pool).await;
    let mut upstream_side = server.take_streams(3).await;
    let used_peer = upstream_side
        .iter_mut()
        .find(|s| s.peer_addr().unwrap() == used)
        .unwrap();
    let mut byte = [0u8; 1];
    bounded("the byte", used_peer.read_exact(&mut byte))
        .await
        .unwrap();

    assert_eq!(pool.stats().connections_in_use, 1, "the lease counts it");
    drop(stream);
    assert_eq!(pool.stats().connections_in_use, 1, "until the lease drops");
    drop(lease);
    assert_eq!(pool.stats().connections_in_use, 0);
    // The upstream sees the used connection closed, not parked.
    let read = bounded("the close", used_peer.read(&mut byte)).await;
    assert_eq!(read.unwrap(), 0);
    // The pool holds only the pre-connected one, and hands out only that.
    assert!(!idle_ports(&pool, d).contains(&used));
    assert_eq!(pool.stats().total_idle, 1);
    for _ in 0..5 {
        let next = pool.get(d).await.unwrap();
        assert_ne!(next.stream.local_addr().unwrap(), used);
        settled(&pool).await;
    }
}

#[tokio::test]
async fn connections_closed_by_the_upstream_are_discarded_as_stale() {
    let mut server = Server::start(Mode::Keep).await;
    let (pool, telemetry) = pool_for(config(4, 100), &server);
    let d = dest(1);
    let (a, b) = tokio::join!(pool.get(d), pool.get(d));
    drop((a, b));
    settled(&pool).await;
    let idle = idle_ports(&pool, d);
    assert_eq!(idle.len(), 2);

    // The upstream closes everything it accepted; the listener stays up.
    drop(server.take_streams(4).await);
    until("the FINs to arrive", || {
        idle_probes(&pool, d) == [Probe::Closed, Probe::Closed]
    })
    .await;
    let fresh = pool.get(d).await.unwrap();
    assert!(!fresh.reused, "both idle ones were closed by the peer");
    assert!(!idle.contains(&fresh.stream.local_addr().unwrap()));
    settled(&pool).await;
    let stats = pool.stats();
    assert_eq!(stats.stale, 2);
    assert_eq!(stats.per_destination[0].stale, 2);
    assert_eq!(events(&telemetry, "not pristine"), 2);
    let event = &telemetry.query(&Default::default())[0];
    assert_eq!(event.details["reason"], "closed");
    // Two closed connections in one checkout are one verdict: warming is
    // paused once, and the miss opened no spare.
    assert_eq!(stats.warm_pauses, 1);
    assert_eq!(events(&telemetry, "unsuited to pooling"), 1);
    assert_eq!(stats.spares_created, 2);
    assert_eq!(stats.total_idle, 0);
    assert_eq!(
        stats.per_destination[0].warm_paused,
        Some("closes_idle_connections")
    );
}

#[tokio::test]
async fn a_destination_that_speaks_first_never_gets_a_pooled_connection() {
    let server = Server::start(Mode::Banner).await;
    let (pool, telemetry) = pool_for(config(4, 100), &server);
    let d = dest(1);
    drop(pool.get(d).await.unwrap());
    let first = pool.get(d).await.unwrap();
    settled(&pool).await;
    let mut first = first;
    let mut banner = vec![0u8; BANNER.len()];
    bounded("the banner", first.stream.read_exact(&mut banner))
        .await
        .unwrap();
    until("the banner on the idle one", || {
        idle_probes(&pool, d) == [Probe::Data]
    })
    .await;

    for _ in 0..5 {
        let upstream = pool.get(d).await.unwrap();
        assert!(!upstream.reused);
    }
    settled(&pool).await;
    let stats = pool.stats();
    assert_eq!(stats.stale, 1);
    assert_eq!(stats.pool_hits, 0);
    assert_eq!(
        (stats.total_created, stats.spares_created),
        (8, 1),
        "7 checkouts and 1 spare: warm-up paused"
    );
    until("every connect to be accepted", || server.accepted() == 8).await;
    let event = &telemetry.query(&Default::default())[0];
    assert_eq!(event.details["reason"], "data");
    assert_eq!(stats.per_destination[0].warm_paused, Some("speaks_first"));
    let paused = &telemetry.query(&Default::default())[1];
    assert_eq!(paused.details["reason"], "speaks_first");
    assert_eq!(paused.details["paused_secs"], 30);
}

#[tokio::test]
async fn disabled_pool_connects_and_counts_but_keeps_nothing() {
    let server = Server::start(Mode::Drain).await;
    let mut cfg = config(4, 100);
    cfg.enabled = false;
    let (pool, _) = pool_for(cfg, &server);
    let a = pool.get(dest(1)).await.unwrap();
    let b = pool.get(dest(1)).await.unwrap();
    assert!(!a.reused && !b.reused);
    let stats = pool.stats();
    assert_eq!((stats.total_created, stats.checkout_created), (2, 2));
    assert_eq!(stats.pool_misses, 2);
    assert_eq!(stats.connections_in_use, 2);
    assert_eq!(
        (stats.total_idle, stats.destinations, stats.pending_creates),
        (0, 0, 0)
    );
    assert!(!stats.enabled);
    drop((a, b));
    assert_eq!(pool.stats().connections_in_use, 0);
    until("closes seen upstream", || server.closed.load(SeqCst) == 2).await;
    assert_eq!(server.accepted(), 2, "no pre-connects");
}

#[tokio::test]
async fn a_refused_connect_is_an_error_and_a_telemetry_event() {
    let (pool, telemetry) = pool_with(config(4, 100), Refused);
    let err = pool.get(dest(1)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    settled(&pool).await;
    // A second checkout would make it in demand: still nothing is warmed,
    // since a failed connect warms nothing.
    assert!(pool.get(dest(1)).await.is_err());
    settled(&pool).await;
    let stats = pool.stats();
    assert_eq!((stats.pool_misses, stats.total_created), (2, 0));
    assert_eq!((stats.spares_created, stats.spares_failed), (0, 0));
    assert_eq!(stats.connections_in_use, 0);
    assert_eq!(stats.total_idle, 0);
    let failures = telemetry.query(&Default::default());
    assert_eq!(failures.len(), 2, "the checkouts' own connects, no spare");
    assert!(failures.iter().all(|e| e.category == "upstream"));
    assert!(failures.iter().all(|e| e.details["during"] == "checkout"));
    assert_eq!(pool.slots.load(SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_connect_that_hangs_times_out() {
    let mut cfg = config(4, 100);
    cfg.connect_timeout_ms = 250;
    let (pool, _) = pool_with(cfg, Hangs);
    let started = Instant::now();
    let err = pool.get(dest(1)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    settled(&pool).await;
    assert_eq!(
        read(&pool.dests).values().next().unwrap().lock().connecting,
        0
    );
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_checkout_is_uncounted() {
    let (pool, _) = pool_with(config(4, 100), Hangs);
    let gave_up = tokio::time::timeout(Duration::from_millis(10), pool.get(dest(1))).await;
    assert!(gave_up.is_err());
    let node = read(&pool.dests).get(&dest(1)).unwrap().clone();
    assert_eq!(node.lock().connecting, 0);
    assert_eq!(pool.stats().connections_in_use, 0);
}
