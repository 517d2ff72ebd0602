//! Changing the configuration of a running pool (a reload calls this).
//!
//! What changes when:
//! - New values apply to every checkout that starts after the call; a
//!   checkout already running finishes with the values it started with.
//! - Lower limits: no spare is opened above them from now on, and a spare
//!   still connecting that finds no room when it lands is closed
//!   (`dropped_full`). Idle connections above them are closed by the next
//!   cleanup pass, which the call starts at once, oldest first (`evicted`).
//! - A shorter idle timeout expires idle connections at that pass too, and
//!   sets the cleanup period from then on.
//! - Disabling closes every idle connection at once (`evicted`) and forgets
//!   every destination; sessions keep their connections. Enabling starts
//!   from an empty pool (and starts the cleanup task if it never ran).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::{write, Pool};
use crate::config::PoolConfig;

impl Pool {
    /// Puts `config` in force for the running pool. The caller validates it
    /// first (as `Config::load` does).
    pub fn reconfigure(self: &Arc<Self>, config: PoolConfig) {
        let enabled = config.enabled;
        self.evictions.set_limit(config.max_total_idle);
        self.settings.store(Arc::new(config));
        if enabled {
            self.start_cleanup();
        } else {
            self.forget_everything();
        }
        // The pass that applies lowered limits and the new period.
        self.cleanup_wake.notify_one();
    }

    /// Closes every idle connection and drops every destination's node.
    /// Leases and checkouts still holding a node keep counting in it; a
    /// spare still connecting is closed when it lands.
    fn forget_everything(&self) {
        let mut closed = Vec::new();
        {
            let mut map = write(&self.dests);
            for node in map.values() {
                let mut state = node.lock();
                state.counters.evicted += state.idle.len() as u64;
                closed.append(&mut state.idle);
                state.removed = true;
            }
            map.clear();
            map.shrink_to_fit();
        }
        let n = closed.len();
        self.counters.idle.fetch_sub(n, Relaxed);
        self.slots.fetch_sub(n, Relaxed);
        self.counters.evicted.fetch_add(n as u64, Relaxed);
        drop(closed); // Closed outside every lock.
        self.evictions.compact();
    }
}
