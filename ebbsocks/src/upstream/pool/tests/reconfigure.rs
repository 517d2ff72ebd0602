//! `Pool::reconfigure`: limits, idle timeout and enable/disable changed for
//! the running pool.

use super::*;

/// `n` sessions to `d` started at once, then closed: each of the `n`
/// misses finds the destination in demand (`n` checkouts) once its own
/// connect succeeds, so it gets `n` spares, up to the limit.
async fn burst(pool: &Arc<Pool>, d: SocketAddr, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let pool = pool.clone();
        tasks.spawn(async move { pool.get(d).await.unwrap() });
    }
    let held = tasks.join_all().await;
    assert!(held.iter().all(|upstream| !upstream.reused));
    drop(held);
    settled(pool).await;
}

#[tokio::test]
async fn lowered_limits_are_enforced_by_the_next_cleanup_pass() {
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_for(config(4, 100), &server);
    burst(&pool, dest(1), 4).await;
    jump(Duration::from_millis(10)).await;
    burst(&pool, dest(2), 4).await;
    assert_eq!(pool.stats().total_idle, 8);

    let mut smaller = config(2, 3);
    smaller.idle_timeout_secs = 60;
    pool.reconfigure(smaller.clone());
    let stats = pool.stats();
    assert_eq!(
        (
            stats.max_idle_per_dest,
            stats.max_total_idle,
            stats.idle_timeout_secs
        ),
        (2, 3, 60),
        "the stats show the new configuration at once"
    );
    assert_eq!(stats.total_idle, 8, "nothing is closed until the pass");
    assert_eq!(*pool.config(), smaller);

    pool.cleanup(Instant::now());
    let stats = pool.stats();
    // Two per destination, then the oldest anywhere (dest 1's) to three.
    assert_eq!(stats.total_idle, 3);
    assert_eq!(stats.evicted, 5);
    assert_eq!(idle_ports(&pool, dest(1)).len(), 1);
    assert_eq!(idle_ports(&pool, dest(2)).len(), 2);
    assert_eq!(pool.slots.load(SeqCst), 3);
    until("the upstream to see them closed", || {
        server.closed.load(SeqCst) == 8 + 5
    })
    .await;
    // New spares respect the new limits.
    burst(&pool, dest(3), 4).await;
    assert_eq!(idle_ports(&pool, dest(3)).len(), 2);
    assert_eq!(pool.stats().total_idle, 3);
}

#[tokio::test]
async fn a_shorter_idle_timeout_expires_at_the_next_pass() {
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_for(config(4, 100), &server);
    warm(&pool, dest(1)).await;
    jump(Duration::from_secs(10)).await;
    pool.cleanup(Instant::now());
    assert_eq!(pool.stats().total_idle, 1, "30 s timeout: still fresh");
    let mut shorter = config(4, 100);
    shorter.idle_timeout_secs = 5;
    pool.reconfigure(shorter);
    pool.cleanup(Instant::now());
    let stats = pool.stats();
    assert_eq!((stats.total_idle, stats.expired), (0, 1));
}

#[tokio::test]
async fn disabling_closes_idle_connections_and_enabling_starts_empty() {
    let server = Server::start(Mode::Drain).await;
    let (pool, _) = pool_for(config(4, 100), &server);
    burst(&pool, dest(1), 3).await;
    let held = pool.get(dest(1)).await.unwrap();
    assert!(held.reused);
    settled(&pool).await;

    let mut off = config(4, 100);
    off.enabled = false;
    pool.reconfigure(off);
    let stats = pool.stats();
    assert!(!stats.enabled);
    assert_eq!((stats.total_idle, stats.destinations), (0, 0));
    assert_eq!(stats.evicted, 3);
    assert_eq!(pool.slots.load(SeqCst), 0);
    assert_eq!(
        stats.connections_in_use, 1,
        "sessions keep their connections"
    );
    for _ in 0..3 {
        let direct = pool.get(dest(1)).await.unwrap();
        assert!(!direct.reused);
    }
    settled(&pool).await;
    let created = pool.stats().total_created;
    drop(held);
    assert_eq!(pool.stats().connections_in_use, 0);
    assert_eq!(pool.stats().destinations, 0, "nothing is tracked while off");

    pool.reconfigure(config(4, 100));
    assert!(pool.cleanup_started.load(SeqCst), "enabling starts cleanup");
    warm(&pool, dest(1)).await;
    let stats = pool.stats();
    assert!(stats.enabled);
    assert_eq!(stats.total_idle, 1);
    assert_eq!(stats.total_created, created + 3);
    assert!(pool.get(dest(1)).await.unwrap().reused);
}

#[tokio::test]
async fn a_spare_landing_after_the_pool_was_disabled_is_turned_away() {
    let server = Server::start(Mode::Drain).await;
    let (connector, gate, _) = Gated::new(server.addr, 2);
    let (pool, _) = pool_with(config(4, 100), connector);
    drop(pool.get(dest(1)).await.unwrap());
    drop(pool.get(dest(1)).await.unwrap());
    assert_eq!(
        pool.stats().pending_creates,
        1,
        "the spare waits at the gate"
    );

    let mut off = config(4, 100);
    off.enabled = false;
    pool.reconfigure(off);
    gate.send(true).unwrap();
    settled(&pool).await;
    let stats = pool.stats();
    assert_eq!((stats.spares_created, stats.dropped_full), (1, 1));
    assert_eq!(stats.total_idle, 0);
    assert_eq!(pool.slots.load(SeqCst), 0);
    until("the upstream to see it closed", || {
        server.closed.load(SeqCst) == 3
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_pool_started_disabled_gets_its_cleanup_task_when_enabled() {
    let mut off = config(4, 100);
    off.enabled = false;
    let pool = Pool::with_connector(off, Arc::new(Telemetry::default()), Arc::new(Refused));
    assert!(!pool.cleanup_started.load(SeqCst));
    let passes = || pool.trigger.passes.load(SeqCst);
    pool.reconfigure(config(4, 100));
    assert!(pool.cleanup_started.load(SeqCst));
    // Woken by the reconfigure, then every period.
    let period = cleanup::period(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(passes(), 1);
    tokio::time::sleep(period).await;
    assert_eq!(passes(), 2);
    // Disabled again: the task waits to be woken, no periodic passes.
    let mut off = config(4, 100);
    off.enabled = false;
    pool.reconfigure(off);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let after = passes();
    tokio::time::sleep(period * 10).await;
    assert_eq!(passes(), after);
}
