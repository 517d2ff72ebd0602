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
//! within `connect_timeout_ms` (a miss). A destination that speaks first (a
//! banner) never has a pooled connection handed out; after the first such
//! discard the pool stops warming it for `idle_timeout_secs`.
//!
//! **Warm-up.** Every checkout is demand for its destination, and the pool
//! reacts by pre-connecting in the background: after a hit it replaces the
//! connection taken; after a miss it adds one, up to `max_idle_per_dest`.
//! Pre-connects are triggered only by checkouts, so a destination with no
//! checkout within the idle timeout is never re-warmed. Before connecting,
//! a pre-connect reserves its room under both limits (idle plus reserved
//! per destination, and pool-wide), so a connection is never opened only to
//! be dropped; if the global limit is full, the oldest idle connection
//! anywhere is evicted to make room (`evicted`); if no room can be had, the
//! connection is not opened (`dropped_full`). At most
//! [`MAX_PENDING_CONNECTS`] pre-connects run at once across the pool; beyond
//! that, warm-up is skipped. So a spike of thousands of sessions to one
//! destination opens about one connection per session plus at most
//! `max_idle_per_dest` spares, never a storm of replacements.
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

mod checkout;
mod cleanup;
mod connector;
mod events;
mod evict;
mod lease;
mod node;
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
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use connector::{Connector, TcpConnector};
pub use lease::{Lease, Upstream};
pub use stats::{DestinationStats, PoolStats, PER_DESTINATION_LIMIT};

use crate::config::PoolConfig;
use crate::stats::Telemetry;
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
    config: PoolConfig,
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
    trigger: cleanup::Trigger,
}

/// What a checkout found.
enum Outcome {
    Hit(TcpStream),
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
        if pool.config.enabled {
            // Detached: the task ends by itself once the pool is gone.
            drop(cleanup::spawn(&pool));
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
            config,
            telemetry,
            connector,
            dests: RwLock::new(HashMap::new()),
            counters: Arc::new(Counters::default()),
            slots: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            events: Events::new(),
            cleanup_wake: Arc::new(Notify::new()),
            trigger: cleanup::Trigger::new(),
        })
    }

    /// A pristine pooled connection if one is idle for `dest` (a hit), else
    /// a new connection within the connect timeout (a miss). Either way this
    /// is demand for `dest`, and the pool pre-connects to keep it warm.
    ///
    /// Errors are the connect's; a timeout is `ErrorKind::TimedOut`.
    pub async fn get(self: &Arc<Self>, dest: SocketAddr) -> io::Result<Upstream> {
        if !self.config.enabled {
            self.counters.misses.fetch_add(1, Relaxed);
            let stream = self.connect(dest).await?;
            self.counters.created.fetch_add(1, Relaxed);
            let lease = Lease::new(dest, false, self.counters.clone(), None);
            return Ok(Upstream::new(stream, false, lease));
        }
        let now = Instant::now();
        let (node, outcome, room) = self.checkout(dest, now);
        self.warm_up(room, &node, dest, now);
        match outcome {
            Outcome::Hit(stream) => {
                let lease = Lease::new(dest, true, self.counters.clone(), Some(node));
                Ok(Upstream::new(stream, true, lease))
            }
            Outcome::Miss => {
                // Counted in the node already; uncounted if the connect fails
                // or this future is dropped.
                let connecting = Connecting::new(dest, self.counters.clone(), node.clone());
                let stream = self.connect(dest).await?;
                Ok(Upstream::new(stream, false, connecting.into_lease()))
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

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub fn stats(&self) -> PoolStats {
        let now = Instant::now();
        let (destinations, per_destination) = {
            let map = read(&self.dests);
            (map.len(), stats::per_destination(map.iter(), now))
        };
        let c = &self.counters;
        let hits = c.hits.load(Relaxed);
        PoolStats {
            total_idle: c.idle.load(Relaxed),
            destinations,
            connections_in_use: c.in_use.load(Relaxed),
            total_created: c.created.load(Relaxed),
            total_reused: hits,
            pool_hits: hits,
            pool_misses: c.misses.load(Relaxed),
            dropped_full: c.dropped_full.load(Relaxed),
            evicted: c.evicted.load(Relaxed),
            expired: c.expired.load(Relaxed),
            pending_creates: c.pending.load(Relaxed) as u64,
            stale: c.stale.load(Relaxed),
            per_destination,
            enabled: self.config.enabled,
            max_idle_per_dest: self.config.max_idle_per_dest,
            max_total_idle: self.config.max_total_idle,
            idle_timeout_secs: self.config.idle_timeout_secs,
            connect_timeout_ms: self.config.connect_timeout_ms,
        }
    }

    /// A checkout's own connect, with the timeout; failures are reported.
    async fn connect(&self, dest: SocketAddr) -> io::Result<TcpStream> {
        let result =
            connect_with_timeout(&*self.connector, dest, self.config.connect_timeout()).await;
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
            .field("config", &self.config)
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
