//! The global eviction index: which idle connection is the oldest anywhere.
//!
//! Design: a FIFO of `(id, destination, node)` entries under one small
//! mutex, with lazy deletion.
//!
//! - The pool only stores connections it opened and never handed out, so
//!   "oldest idle" is "went idle first", and entries are pushed in exactly
//!   that order when a pre-connect lands: the front is the oldest. No
//!   sorting, no scan over destinations.
//! - Checkout, expiry and stale discards do not touch this queue (the hot
//!   path takes only its destination's lock). Their entries go dead in
//!   place; eviction pops and skips dead entries, checking liveness under the
//!   one node's lock.
//! - Dead entries would pile up on a busy destination that never hits the
//!   global limit, so a push that finds more than `2 * max_total_idle + 32`
//!   entries compacts the queue. At most `max_total_idle` entries are live,
//!   so a compaction is followed by at least `max_total_idle + 32` pushes
//!   before the next: the cost is amortised O(1) node locks per push, and the
//!   queue stays bounded by the limit, not by traffic.
//!
//! Lock order: queue, then node. Nothing takes the queue lock while
//! holding a node lock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, Weak};

use super::node::{DestNode, IdleConn};
use crate::stats::lock;

#[derive(Debug)]
struct Entry {
    id: u64,
    dest: SocketAddr,
    node: Weak<DestNode>,
}

#[derive(Debug)]
pub(super) struct EvictionQueue {
    entries: Mutex<VecDeque<Entry>>,
    compact_above: AtomicUsize,
}

impl EvictionQueue {
    pub(super) fn new(max_total_idle: usize) -> Self {
        let queue = Self {
            entries: Mutex::new(VecDeque::new()),
            compact_above: AtomicUsize::new(0),
        };
        queue.set_limit(max_total_idle);
        queue
    }

    /// Follows a change of `max_total_idle`.
    pub(super) fn set_limit(&self, max_total_idle: usize) {
        let above = max_total_idle.saturating_mul(2).saturating_add(32);
        self.compact_above.store(above, Relaxed);
    }

    /// Registers a connection that has just been put in `node`'s idle list.
    pub(super) fn push(&self, id: u64, dest: SocketAddr, node: &Arc<DestNode>) {
        let mut entries = lock(&self.entries);
        entries.push_back(Entry {
            id,
            dest,
            node: Arc::downgrade(node),
        });
        if entries.len() > self.compact_above.load(Relaxed) {
            compact(&mut entries);
        }
    }

    /// Takes the oldest idle connection out of its destination, counting the
    /// eviction there. `None` if no connection is idle anywhere.
    pub(super) fn evict_oldest(&self) -> Option<(SocketAddr, IdleConn)> {
        loop {
            // The queue lock is released before the node is locked.
            let entry = lock(&self.entries).pop_front()?;
            let Some(node) = entry.node.upgrade() else {
                continue;
            };
            let mut state = node.lock();
            // Oldest first within a node too, so this finds it at once.
            if let Some(pos) = state.idle.iter().position(|c| c.id == entry.id) {
                let conn = state.idle.remove(pos);
                state.counters.evicted += 1;
                return Some((entry.dest, conn));
            }
        }
    }

    /// Drops dead entries now (the cleanup task calls this).
    pub(super) fn compact(&self) {
        compact(&mut lock(&self.entries));
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        lock(&self.entries).len()
    }
}

fn compact(entries: &mut VecDeque<Entry>) {
    entries.retain(|entry| {
        entry
            .node
            .upgrade()
            .is_some_and(|node| node.lock().idle.iter().any(|c| c.id == entry.id))
    });
    if entries.capacity() > 4 * entries.len() + 64 {
        entries.shrink_to(2 * entries.len() + 16);
    }
}
