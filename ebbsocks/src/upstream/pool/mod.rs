//! The upstream connection pool: warm, *pristine* connections per
//! destination, so that a client's CONNECT to a hot destination skips the
//! TCP handshake.
//!
//! # How it works
//!
//! **Only pristine connections are pooled.** The pool stores connections it
//! opened itself and never handed out. A connection given to a session is
//! never given back: when its [`Lease`] drops, the session closes the stream
//! and the pool only uncounts it. A connection that carried a byte, in
//! either direction, can therefore never reach a second client.
//!
//! **Checkout** ([`Pool::get`]) takes the destination's newest idle
//! connection (LIFO). Before handing it out it checks it: one idle for
//! `idle_timeout_secs` or longer is closed and counted `expired`; otherwise a
//! non-blocking one-byte peek must say "nothing to read". End of stream,
//! bytes or a socket error mean the peer closed it, spoke first or broke it:
//! it is closed, counted `stale`, reported as a telemetry event, and the next
//! one is tried. With no usable idle connection the checkout connects itself
//! within `connect_timeout_ms` (a miss).
//!
//! **Warm-up follows demand** (the policy is in `demand.rs`). A destination
//! gets spares only once it is in demand: its last `warm_after_checkouts`
//! checkouts fell within `idle_timeout_secs`. A destination seen once costs
//! exactly one upstream connection. Its spares follow the recent peak of
//! sessions open to it at once, capped by `max_idle_per_dest`; each
//! checkout opens at most one spare: after a hit, to replace the one taken;
//! after a miss, only once the miss's own connect has succeeded, so a
//! refusing destination is never connected to by the warmer. A destination
//! whose idle connections are found closed, talking first (a banner) or
//! broken, or whose spare connect failed, is judged unsuited to pooling:
//! warming pauses for an idle timeout, doubling per strike up to 16, and a
//! telemetry event says so. Before connecting, a spare reserves its room
//! under both limits (idle plus reserved per destination, and pool-wide),
//! so a connection is never opened only to be dropped; if the global limit
//! is full, the oldest idle connection anywhere is evicted to make room
//! (`evicted`); if no room can be had, the spare is not opened
//! (`dropped_full`). At most [`MAX_PENDING_CONNECTS`] spares are being
//! opened at once across the pool; beyond that, warm-up is skipped.
//!
//! **Limits and eviction.** A pool-wide FIFO of idle connections, in the
//! order they went idle, finds the oldest without scanning destinations
//! (see `evict.rs`). Both limits are also telemetry events.
//!
//! **Cleanup.** A background task closes expired idle connections and drops
//! the bookkeeping (counters, demand) of destinations unused for
//! `idle_timeout_secs`; if more than [`MAX_TRACKED_DESTINATIONS`] are
//! tracked it runs at once and also drops the least recently active unused
//! ones. When what is left is busy, the next early run waits until the map
//! has doubled, so a flood of new destinations costs amortised O(1) each
//! (see `cleanup.rs`). It holds only a `Weak` to the pool and ends when the
//! pool is dropped.
//!
//! **Concurrency.** Destinations live in a read-mostly map: its write lock is
//! taken only to add or remove a destination. Each destination has its own
//! small mutex; pool-wide numbers are atomics. No lock is held across an
//! `.await`.
//!
//! **Disabled** (`enabled = false`): [`Pool::get`] connects with the timeout
//! and counts the connection (created, miss, in use); nothing is pooled,
//! nothing is pre-connected, no per-destination bookkeeping is kept.
//!
//! **Reconfiguring** ([`Pool::reconfigure`], for a reload) swaps the
//! configuration in place; see `reconfigure.rs` for when each change
//! takes effect.

mod checkout;
mod cleanup;
mod connector;
mod demand;
mod events;
mod evict;
mod lease;
mod node;
mod reconfigure;
mod stats;
mod warm;

// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use connector::{Connector, TcpConnector};
pub use demand::MAX_WARM_AFTER_CHECKOUTS;
pub use lease::{Lease, Upstream};
pub use stats::{DestinationStats, PoolStats, PER_DESTINATION_LIMIT};

use crate::config::PoolConfig;
use crate::stats::Telemetry;
use demand::Rule;
use events::{Events, Kind};
use evict::EvictionQueue;
use lease::Connecting;
use node::DestNode;
use stats::Counters;

/// Background pre-connects allowed in flight at once, pool-wide.
pub const MAX_PENDING_CONNECTS: usize = 8;

/// Above this many tracked destinations the cleanup task runs at once and
/// drops the least recently active unused ones down to three quarters of
/// it. If it cannot (they are busy), it next runs early when the map has
/// doubled from what it kept.
pub const MAX_TRACKED_DESTINATIONS: usize = 4096;

/// The pool; shared as `Arc<Pool>` by every connection task. Always in
/// use, even when disabled (then it only connects and counts).
pub struct Pool {
    /// The configuration in force; [`Pool::reconfigure`] swaps it. Each
    /// checkout reads it once and keeps that snapshot to its end.
    settings: ArcSwap<PoolConfig>,
    telemetry: Arc<Telemetry>,
    connector: Arc<dyn Connector>,
    dests: RwLock<HashMap<SocketAddr, Arc<DestNode>>>,
    counters: Arc<Counters>,
    /// Idle connections plus reserved pre-connects, pool-wide; never above
    /// `max_total_idle`.
    slots: AtomicUsize,
    next_id: AtomicU64,
    evictions: EvictionQueue,
    events: Events,
    cleanup_wake: Arc<Notify>,
    /// Whether the cleanup task has been spawned (it is, once the pool is
    /// first enabled, and then lives as long as the pool).
    cleanup_started: AtomicBool,
    trigger: cleanup::Trigger,
}

/// What a checkout found; a hit comes with its replacement's reservation.
enum Outcome {
    Hit(TcpStream, warm::Room),
    Miss,
}

impl Pool {
    /// A pool that connects with [`TcpConnector`]. Spawns the cleanup task
    /// when enabled, so it must be called within a tokio runtime.
    pub fn new(config: PoolConfig, telemetry: Arc<Telemetry>) -> Arc<Pool> {
        Self::with_connector(config, telemetry, Arc::new(TcpConnector::default()))
    }

    pub fn with_connector(
        config: PoolConfig,
        telemetry: Arc<Telemetry>,
        connector: Arc<dyn Connector>,
    ) -> Arc<Pool> {
        let pool = Self::unstarted(config, telemetry, connector);
        if pool.settings().enabled {
            pool.start_cleanup();
        }
        pool
    }

    fn unstarted(
        config: PoolConfig,
        telemetry: Arc<Telemetry>,
        connector: Arc<dyn Connector>,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            evictions: EvictionQueue::new(config.max_total_idle),
            settings: ArcSwap::from_pointee(config),
            telemetry,
            connector,
            dests: RwLock::new(HashMap::new()),
            counters: Arc::new(Counters::default()),
            slots: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            events: Events::new(),
            cleanup_wake: Arc::new(Notify::new()),
            cleanup_started: AtomicBool::new(false),
            trigger: cleanup::Trigger::new(),
        })
    }

    /// Spawns the cleanup task unless it runs already. Detached: the task
    /// ends by itself once the pool is gone.
    fn start_cleanup(self: &Arc<Self>) {
        if !self.cleanup_started.swap(true, Relaxed) {
            drop(cleanup::spawn(self));
        }
    }

    /// A pristine pooled connection if one is idle for `dest` (a hit), else
    /// a new connection within the connect timeout (a miss). Either way this
    /// is demand for `dest`: once the destination is in demand, the pool
    /// opens spares in the background, after a hit to replace the one
    /// taken, after a miss only once its own connect has succeeded.
    ///
    /// Errors are the connect's; a timeout is `ErrorKind::TimedOut`.
    pub async fn get(self: &Arc<Self>, dest: SocketAddr) -> io::Result<Upstream> {
        let config = self.settings();
        if !config.enabled {
            self.counters.misses.fetch_add(1, Relaxed);
            let stream = self.connect(dest, &config).await?;
            self.counters.checkout_created.fetch_add(1, Relaxed);
            let lease = Lease::new(dest, false, self.counters.clone(), None);
            return Ok(Upstream::new(stream, false, lease));
        }
        let now = Instant::now();
        match self.checkout(dest, now, &config) {
            (node, Outcome::Hit(stream, room)) => {
                self.warm_up(room, &node, dest, now, &config);
                let lease = Lease::new(dest, true, self.counters.clone(), Some(node));
                Ok(Upstream::new(stream, true, lease))
            }
            (node, Outcome::Miss) => {
                // Counted in the node already; uncounted if the connect fails
                // or this future is dropped.
                let connecting = Connecting::new(dest, self.counters.clone(), node.clone());
                let stream = self.connect(dest, &config).await?;
                let lease = connecting.into_lease();
                // Only now is the destination known to accept connections:
                // a failed connect warms nothing.
                let now = Instant::now();
                let room = self.reserve_warm_up(&mut node.lock(), now, &config);
                self.warm_up(room, &node, dest, now, &config);
                Ok(Upstream::new(stream, false, lease))
            }
        }
    }

    /// Whether `dest` has an idle connection now (a checkout would most
    /// likely hit). Read-only: counts nothing, probes nothing. The connect
    /// step tries such addresses first.
    pub fn has_idle(&self, dest: SocketAddr) -> bool {
        let node = read(&self.dests).get(&dest).cloned();
        node.is_some_and(|node| !node.lock().idle.is_empty())
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<PoolConfig> {
        self.settings()
    }

    fn settings(&self) -> Arc<PoolConfig> {
        self.settings.load_full()
    }

    pub fn stats(&self) -> PoolStats {
        let now = Instant::now();
        let config = self.settings();
        let (destinations, per_destination) = {
            let map = read(&self.dests);
            let rule = Rule::of(&config);
            (map.len(), stats::per_destination(map.iter(), now, rule))
        };
        let c = &self.counters;
        let checkout_created = c.checkout_created.load(Relaxed);
        let spares_created = c.spares_created.load(Relaxed);
        PoolStats {
            total_idle: c.idle.load(Relaxed),
            destinations,
            connections_in_use: c.in_use.load(Relaxed),
            total_created: checkout_created + spares_created,
            checkout_created,
            spares_created,
            spares_failed: c.spares_failed.load(Relaxed),
            pool_hits: c.hits.load(Relaxed),
            pool_misses: c.misses.load(Relaxed),
            dropped_full: c.dropped_full.load(Relaxed),
            evicted: c.evicted.load(Relaxed),
            expired: c.expired.load(Relaxed),
            stale: c.stale.load(Relaxed),
            warm_pauses: c.warm_pauses.load(Relaxed),
            pending_creates: c.pending.load(Relaxed) as u64,
            per_destination,
            enabled: config.enabled,
            max_idle_per_dest: config.max_idle_per_dest,
            max_total_idle: config.max_total_idle,
            idle_timeout_secs: config.idle_timeout_secs,
            connect_timeout_ms: config.connect_timeout_ms,
            warm_after_checkouts: config.warm_after_checkouts,
        }
    }

    /// A checkout's own connect, with the timeout; failures are reported.
    async fn connect(&self, dest: SocketAddr, config: &PoolConfig) -> io::Result<TcpStream> {
        let result = connect_with_timeout(&*self.connector, dest, config.connect_timeout()).await;
        if let Err(e) = &result {
            self.connect_failed(dest, e, "checkout");
        }
        result
    }

    fn connect_failed(&self, dest: SocketAddr, error: &io::Error, during: &'static str) {
        self.events
            .record(&self.telemetry, Kind::ConnectFailed, || {
                serde_json::json!({
                    "destination": dest.to_string(),
                    "error": error.to_string(),
                    "during": during,
                })
            });
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Lets the cleanup task notice at once that the pool is gone.
        self.cleanup_wake.notify_one();
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.settings())
            .field("destinations", &read(&self.dests).len())
            .field("idle", &self.counters.idle.load(Relaxed))
            .field("in_use", &self.counters.in_use.load(Relaxed))
            .finish_non_exhaustive()
    }
}

async fn connect_with_timeout(
    connector: &dyn Connector,
    dest: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    match tokio::time::timeout(timeout, connector.connect(dest)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "connect to {dest} timed out after {} ms",
                timeout.as_millis()
            ),
        )),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The map is consistent whatever a panicking holder did (every change is
/// a single insert or remove), so a poisoned lock is still safe to use.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
