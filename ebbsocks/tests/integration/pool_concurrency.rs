//! Concurrent checkouts against real loopback upstreams, through the public
//! API only: hundreds of sessions from many tasks on a multi-thread runtime,
//! then every counter must balance and nothing may stay in use.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use ebbsocks::config::PoolConfig;
use ebbsocks::stats::Telemetry;
use ebbsocks::upstream::pool::{Pool, PoolStats, MAX_PENDING_CONNECTS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// An upstream that reads each connection to its end, counting what it saw.
#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    closed: AtomicUsize,
    bytes: AtomicUsize,
}

async fn upstream(seen: Arc<Seen>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            seen.accepted.fetch_add(1, SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    seen.bytes.fetch_add(n, SeqCst);
                }
                seen.closed.fetch_add(1, SeqCst);
            });
        }
    });
    addr
}

/// Polls `cond` until it holds; fails the test with `what` and the last
/// value seen (from `state`) once `deadline` passes.
async fn wait_for<T: std::fmt::Debug>(
    what: &str,
    deadline: Instant,
    mut state: impl FnMut() -> T,
    mut cond: impl FnMut(&T) -> bool,
) {
    loop {
        let now = state();
        if cond(&now) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last seen: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The whole of one scenario, sessions and waits included.
const SCENARIO_DEADLINE: Duration = Duration::from_secs(30);

/// Runs a scenario under [`SCENARIO_DEADLINE`]. The waits inside have the
/// same deadline and say what they waited for; this timeout, a little later
/// so that theirs fire first, catches the rest (a session task that never
/// finishes).
async fn within_deadline(config: PoolConfig, destinations: usize) -> PoolStats {
    let deadline = Instant::now() + SCENARIO_DEADLINE;
    let run = concurrent_checkouts(config, destinations, deadline);
    tokio::time::timeout_at(deadline + Duration::from_secs(1), run)
        .await
        .unwrap_or_else(|_| panic!("scenario did not finish within {SCENARIO_DEADLINE:?}"))
}

async fn concurrent_checkouts(
    config: PoolConfig,
    destinations: usize,
    deadline: Instant,
) -> PoolStats {
    const TASKS: usize = 50;
    const PER_TASK: usize = 8;
    const SESSIONS: usize = TASKS * PER_TASK;

    let seen = Arc::new(Seen::default());
    let mut dests = Vec::new();
    for _ in 0..destinations {
        dests.push(upstream(seen.clone()).await);
    }
    let pool = Pool::new(config, Arc::new(Telemetry::default()));

    let max_pending = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for t in 0..TASKS {
        let (pool, dests, max_pending) = (pool.clone(), dests.clone(), max_pending.clone());
        tasks.spawn(async move {
            for i in 0..PER_TASK {
                let dest = dests[(t + i) % dests.len()];
                let upstream = pool.get(dest).await.expect("upstream connect");
                let (mut stream, lease) = upstream.into_parts();
                stream.write_all(b"x").await.expect("write");
                if i.is_multiple_of(2) {
                    tokio::task::yield_now().await; // Let sessions overlap.
                }
                drop((stream, lease));
                let pending = pool.stats().pending_creates as usize;
                max_pending.fetch_max(pending, SeqCst);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("session task");
    }
    wait_for(
        "pre-connects to land",
        deadline,
        || pool.stats().pending_creates,
        |&n| n == 0,
    )
    .await;
    let stats = pool.stats();
    let created = stats.total_created as usize;
    let discarded = stats.expired + stats.stale + stats.evicted;
    // Sessions and discarded idle connections are closed; idle ones stay.
    let closes = SESSIONS + discarded as usize;
    wait_for(
        &format!("the upstreams to accept {created} connections"),
        deadline,
        || seen.accepted.load(SeqCst),
        |&n| n == created,
    )
    .await;
    wait_for(
        &format!("the upstreams to see {closes} closes"),
        deadline,
        || seen.closed.load(SeqCst),
        |&n| n == closes,
    )
    .await;

    assert!(max_pending.load(SeqCst) <= MAX_PENDING_CONNECTS);
    assert_eq!(stats.pool_hits + stats.pool_misses, SESSIONS as u64);
    assert_eq!(
        stats.total_created,
        stats.checkout_created + stats.spares_created
    );
    // Every miss connected for its own client; every hit took a spare.
    assert_eq!(stats.checkout_created, stats.pool_misses);
    if stats.max_total_idle >= destinations * stats.max_idle_per_dest {
        // Every spare fits: none can be turned away.
        assert_eq!(stats.dropped_full, 0, "{stats:#?}");
    }
    assert_eq!(stats.connections_in_use, 0, "every lease returned");
    // Each connection made was handed out once, is idle, or was discarded.
    assert_eq!(
        stats.total_created,
        SESSIONS as u64 + stats.total_idle as u64 + discarded,
        "{stats:#?}"
    );
    assert!(stats.total_idle <= stats.max_total_idle);
    assert_eq!(seen.bytes.load(SeqCst), SESSIONS);
    // The per-destination view adds up to the pool-wide one.
    if !stats.enabled {
        assert!(stats.per_destination.is_empty());
        return stats;
    }
    assert_eq!(stats.per_destination.len(), destinations);
    let sum = |f: fn(&ebbsocks::upstream::pool::DestinationStats) -> u64| {
        stats.per_destination.iter().map(f).sum::<u64>()
    };
    assert_eq!(sum(|d| d.hits), stats.pool_hits);
    assert_eq!(sum(|d| d.misses), stats.pool_misses);
    assert_eq!(sum(|d| d.created), stats.total_created);
    assert_eq!(sum(|d| d.spares_created), stats.spares_created);
    assert_eq!(sum(|d| d.evicted), stats.evicted);
    assert_eq!(sum(|d| d.idle as u64), stats.total_idle as u64);
    assert_eq!(sum(|d| d.in_use as u64), 0);
    // Still open upstream: exactly the pooled ones.
    assert_eq!(created - seen.closed.load(SeqCst), stats.total_idle);
    stats
}

fn config(max_idle_per_dest: usize, max_total_idle: usize) -> PoolConfig {
    PoolConfig {
        enabled: true,
        max_idle_per_dest,
        max_total_idle,
        ..PoolConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_concurrent_checkouts_balance() {
    let stats = within_deadline(config(4, 100), 4).await;
    assert!(stats.pool_hits > 0, "{stats:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checkouts_balance_with_a_small_global_limit() {
    // Eight destinations want up to 32 idle connections; only 6 fit.
    let stats = within_deadline(config(4, 6), 8).await;
    assert!(stats.total_idle <= 6);
    assert!(stats.evicted > 0, "{stats:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_pool_under_concurrency_counts_and_keeps_nothing() {
    let mut cfg = config(4, 100);
    cfg.enabled = false;
    let stats = within_deadline(cfg, 2).await;
    assert_eq!((stats.pool_hits, stats.total_idle), (0, 0));
}
