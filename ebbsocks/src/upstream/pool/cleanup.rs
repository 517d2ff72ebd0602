//! The background cleanup task: closes expired idle connections and drops
//! the bookkeeping of destinations nobody has used for a while, so that
//! memory follows current traffic, not every destination ever seen.
//!
//! A pass visits every destination, so what it costs per new destination
//! depends on how often a flood of new ones triggers it early. A checkout
//! that adds a destination wakes the task only when the map has grown past
//! [`early_pass_above`]: the cap, or, when the last pass was over the cap
//! and could not prune down to three quarters of it, twice what that pass
//! kept (those destinations were busy: connecting, in use or holding idle
//! connections). So between two early passes either a quarter of the cap
//! is added, or the map doubles: a pass over n destinations is paid for by
//! at least n/4 new ones, amortised O(1) per destination however many stay
//! busy. Before, every new destination past the cap woke a pass over all of
//! them, and a flood of one-off destinations that never finish connecting
//! made each one cost O(n). The map may then hold up to twice the busy
//! destinations of the last pass before an early pass; the periodic pass
//! still runs every tick.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::node::DestNode;
use super::{read, write, Pool, MAX_TRACKED_DESTINATIONS};

/// How often cleanup runs: a quarter of the idle timeout, within 1..=10 s.
pub(super) fn period(idle_timeout: Duration) -> Duration {
    (idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// Spawns the task. It holds the pool weakly, upgrading only for the
/// duration of one pass, and returns once the pool is gone (the pool's drop
/// wakes it). The period follows the idle timeout in force, read before
/// each wait, so a reconfigure (which also wakes the task) takes effect at
/// once. While the pool is disabled the task only waits to be woken.
pub(super) fn spawn(pool: &Arc<Pool>) -> JoinHandle<()> {
    let weak = Arc::downgrade(pool);
    let wake = pool.cleanup_wake.clone();
    tokio::spawn(async move {
        loop {
            let wait = {
                let Some(pool) = weak.upgrade() else {
                    break;
                };
                let config = pool.settings();
                config.enabled.then(|| period(config.idle_timeout()))
            };
            match wait {
                Some(period) => {
                    tokio::select! {
                        () = tokio::time::sleep(period) => {}
                        () = wake.notified() => {}
                    }
                }
                None => wake.notified().await,
            }
            let Some(pool) = weak.upgrade() else {
                break;
            };
            pool.cleanup(Instant::now());
        }
    })
}

/// The map size past which a checkout that adds a destination wakes the
/// cleanup task, after a pass that found `tracked` destinations and kept
/// `kept` of them.
pub(super) fn early_pass_above(tracked: usize, kept: usize) -> usize {
    if tracked > MAX_TRACKED_DESTINATIONS && kept > PRUNE_TO {
        // Over the cap and could not prune to the target: what is left is
        // busy, and a pass any sooner would mostly find it busy again.
        kept.saturating_mul(2)
    } else {
        MAX_TRACKED_DESTINATIONS
    }
}

/// What an early pass prunes down to, when enough destinations are unused.
const PRUNE_TO: usize = MAX_TRACKED_DESTINATIONS * 3 / 4;

/// When the cleanup task runs early, and what it has done (for tests and
/// the bookkeeping benchmark's claims).
#[derive(Debug)]
pub(super) struct Trigger {
    /// See [`early_pass_above`].
    pub(super) above: AtomicUsize,
    /// Passes run, early or periodic.
    pub(super) passes: AtomicU64,
    /// Destinations visited by all passes together.
    pub(super) visited: AtomicU64,
}

impl Trigger {
    pub(super) fn new() -> Self {
        Self {
            above: AtomicUsize::new(MAX_TRACKED_DESTINATIONS),
            passes: AtomicU64::new(0),
            visited: AtomicU64::new(0),
        }
    }

    /// Whether a map that a checkout has just grown to `len` needs a pass
    /// now rather than at the next tick.
    pub(super) fn wants_pass(&self, len: usize) -> bool {
        len > self.above.load(Relaxed)
    }

    fn pass_done(&self, tracked: usize, kept: usize) {
        self.above.store(early_pass_above(tracked, kept), Relaxed);
        self.passes.fetch_add(1, Relaxed);
        self.visited.fetch_add(tracked as u64, Relaxed);
    }
}

/// A destination with nothing idle, reserved, connecting or in use.
struct Unused {
    last_activity: Instant,
    /// Its warming is paused: remembered past the idle timeout, so that
    /// the back-off outlives a quiet spell (unless the map is over its cap).
    paused: bool,
    dest: SocketAddr,
    node: Arc<DestNode>,
}

impl Pool {
    /// One cleanup pass: expiry, then the limits (which a reconfigure may
    /// have lowered), then pruning.
    pub(super) fn cleanup(&self, now: Instant) {
        let config = self.settings();
        let timeout = config.idle_timeout();
        let mut expired = Vec::new();
        let mut over_limit = Vec::new();
        let mut unused = Vec::new();
        let tracked = {
            let map = read(&self.dests);
            for (dest, node) in map.iter() {
                let mut state = node.lock();
                // Oldest first, so the expired ones are a prefix.
                let n = state
                    .idle
                    .iter()
                    .take_while(|c| now.saturating_duration_since(c.since) >= timeout)
                    .count();
                if n > 0 {
                    state.counters.expired += n as u64;
                    expired.extend(state.idle.drain(..n));
                }
                // Above a lowered per-destination limit: the oldest go.
                let above = state.idle.len().saturating_sub(config.max_idle_per_dest);
                if above > 0 {
                    state.counters.evicted += above as u64;
                    over_limit.extend(state.idle.drain(..above));
                }
                if state.is_unused() {
                    unused.push(Unused {
                        last_activity: state.last_activity,
                        paused: state.pause.active(now),
                        dest: *dest,
                        node: node.clone(),
                    });
                }
            }
            map.len()
        };
        let n = expired.len();
        if n > 0 {
            self.counters.idle.fetch_sub(n, Relaxed);
            self.slots.fetch_sub(n, Relaxed);
            self.counters.expired.fetch_add(n as u64, Relaxed);
            drop(expired); // Closed outside every lock.
        }
        let n = over_limit.len();
        if n > 0 {
            self.counters.idle.fetch_sub(n, Relaxed);
            self.slots.fetch_sub(n, Relaxed);
            self.counters.evicted.fetch_add(n as u64, Relaxed);
            drop(over_limit);
        }
        // Above a lowered pool-wide limit: the oldest anywhere go.
        while self.slots.load(Relaxed) > config.max_total_idle {
            let Some((_, conn)) = self.evictions.evict_oldest() else {
                break;
            };
            self.counters.idle.fetch_sub(1, Relaxed);
            self.slots.fetch_sub(1, Relaxed);
            self.counters.evicted.fetch_add(1, Relaxed);
            drop(conn);
        }

        // Inactive for the idle timeout: nothing more to remember. Over the
        // cap: the least recently active unused ones go too. Only those
        // `excess` need ordering, so a selection (linear) replaces a sort.
        let excess = if tracked > MAX_TRACKED_DESTINATIONS {
            tracked - PRUNE_TO
        } else {
            0
        };
        if excess > 0 && excess < unused.len() {
            unused.select_nth_unstable_by_key(excess - 1, |u| u.last_activity);
        }
        let prune: Vec<Unused> = unused
            .into_iter()
            .enumerate()
            .filter(|(rank, u)| {
                *rank < excess
                    || (!u.paused && now.saturating_duration_since(u.last_activity) >= timeout)
            })
            .map(|(_, u)| u)
            .collect();
        let kept = if prune.is_empty() {
            tracked
        } else {
            let mut map = write(&self.dests);
            for u in prune {
                let mut state = u.node.lock();
                // Re-checked: it may have been used since the scan. A node
                // is in the map exactly while `removed` is false.
                if !state.removed && state.is_unused() && state.last_activity == u.last_activity {
                    state.removed = true;
                    map.remove(&u.dest);
                }
            }
            if map.capacity() > 4 * map.len() + 64 {
                map.shrink_to_fit();
            }
            map.len()
        };
        self.trigger.pass_done(tracked, kept);
        self.evictions.compact();
    }
}
