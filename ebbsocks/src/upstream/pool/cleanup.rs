//! The background cleanup task: closes expired idle connections and drops
//! the bookkeeping of destinations nobody has used for a while, so that
//! memory follows current traffic, not every destination ever seen.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::node::DestNode;
use super::{read, write, Pool, MAX_TRACKED_DESTINATIONS};

/// How often cleanup runs: a quarter of the idle timeout, within 1..=10 s.
pub(super) fn period(idle_timeout: Duration) -> Duration {
    (idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// Spawns the task. It holds the pool weakly, upgrading only for the
/// duration of one pass, and returns once the pool is gone (the pool's drop
/// wakes it).
pub(super) fn spawn(pool: &Arc<Pool>) -> JoinHandle<()> {
    let weak = Arc::downgrade(pool);
    let wake = pool.cleanup_wake.clone();
    let mut ticks = tokio::time::interval(period(pool.config.idle_timeout()));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::spawn(async move {
        ticks.tick().await; // The first tick is immediate.
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = wake.notified() => {}
            }
            let Some(pool) = weak.upgrade() else {
                break;
            };
            pool.cleanup(Instant::now());
        }
    })
}

/// A destination with nothing idle, reserved, connecting or in use.
struct Unused {
    last_activity: Instant,
    dest: SocketAddr,
    node: Arc<DestNode>,
}

impl Pool {
    /// One cleanup pass.
    pub(super) fn cleanup(&self, now: Instant) {
        let timeout = self.config.idle_timeout();
        let mut expired = Vec::new();
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
                if state.is_unused() {
                    unused.push(Unused {
                        last_activity: state.last_activity,
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

        // Inactive for the idle timeout: nothing more to remember. Over the
        // cap: the least recently active unused ones go too.
        let excess = if tracked > MAX_TRACKED_DESTINATIONS {
            tracked - MAX_TRACKED_DESTINATIONS * 3 / 4
        } else {
            0
        };
        unused.sort_by_key(|u| u.last_activity);
        let prune: Vec<Unused> = unused
            .into_iter()
            .enumerate()
            .filter(|(rank, u)| {
                *rank < excess || now.saturating_duration_since(u.last_activity) >= timeout
            })
            .map(|(_, u)| u)
            .collect();
        if !prune.is_empty() {
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
        }
        self.evictions.compact();
    }
}
