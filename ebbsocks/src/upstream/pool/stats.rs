//! Pool counters and the serializable snapshot served by the stats API.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use serde::Serialize;
use tokio::time::Instant;

use super::millis;
use super::node::DestNode;

/// `per_destination` lists at most this many destinations, the most
/// recently active first.
pub const PER_DESTINATION_LIMIT: usize = 100;

/// Pool-wide counters. Shared with leases (which outlive nothing but may
/// outlive the pool), hence an `Arc` of its own.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) in_use: AtomicU64,
    pub(super) created: AtomicU64,
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) dropped_full: AtomicU64,
    pub(super) evicted: AtomicU64,
    pub(super) expired: AtomicU64,
    pub(super) stale: AtomicU64,
    /// Background pre-connects in flight.
    pub(super) pending: AtomicUsize,
    /// Connections sitting idle in the pool.
    pub(super) idle: AtomicUsize,
}

/// A point-in-time view of the pool, as served by `GET /api/pool/stats`.
/// Counters are read one by one without a global lock, so under load two
/// of them may be a few operations apart.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PoolStats {
    /// Idle pristine connections ready for checkout.
    pub total_idle: usize,
    /// Destinations with bookkeeping (pruned after inactivity).
    pub destinations: usize,
    /// Upstream connections handed out whose session is still open.
    pub connections_in_use: u64,
    /// Upstream connections opened, by checkouts and by pre-connects.
    pub total_created: u64,
    /// Checkouts served with a pre-connected connection. Equal to
    /// `pool_hits`: a connection is handed out at most once.
    pub total_reused: u64,
    pub pool_hits: u64,
    /// Checkouts that had to connect.
    pub pool_misses: u64,
    /// Idle connections not opened because a limit was reached (the pool
    /// reserves room before it connects, so it never opens one to drop it).
    pub dropped_full: u64,
    /// Idle connections closed to make room under `max_total_idle`.
    pub evicted: u64,
    /// Idle connections closed after `idle_timeout_secs`.
    pub expired: u64,
    /// Background pre-connects in flight.
    pub pending_creates: u64,
    /// Idle connections found closed, with unsolicited data or with an
    /// error at checkout, and discarded.
    pub stale: u64,
    /// At most [`PER_DESTINATION_LIMIT`] entries, most recently active first.
    pub per_destination: Vec<DestinationStats>,
    pub enabled: bool,
    pub max_idle_per_dest: usize,
    pub max_total_idle: usize,
    pub idle_timeout_secs: u64,
    pub connect_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DestinationStats {
    pub destination: String,
    pub idle: usize,
    pub in_use: usize,
    pub hits: u64,
    pub misses: u64,
    pub created: u64,
    pub reused: u64,
    pub dropped: u64,
    pub evicted: u64,
    pub expired: u64,
    pub stale: u64,
    pub last_activity_ms_ago: u64,
}

/// Snapshots of the most recently active destinations.
pub(super) fn per_destination<'a>(
    nodes: impl Iterator<Item = (&'a SocketAddr, &'a Arc<DestNode>)>,
    now: Instant,
) -> Vec<DestinationStats> {
    let mut all: Vec<(Instant, DestinationStats)> = nodes
        .map(|(dest, node)| {
            let state = node.lock();
            let c = state.counters;
            let stats = DestinationStats {
                destination: dest.to_string(),
                idle: state.idle.len(),
                in_use: state.in_use,
                hits: c.hits,
                misses: c.misses,
                created: c.created,
                reused: c.reused,
                dropped: c.dropped,
                evicted: c.evicted,
                expired: c.expired,
                stale: c.stale,
                last_activity_ms_ago: millis(now.saturating_duration_since(state.last_activity)),
            };
            (state.last_activity, stats)
        })
        .collect();
    if all.len() > PER_DESTINATION_LIMIT {
        all.select_nth_unstable_by(PER_DESTINATION_LIMIT - 1, |a, b| b.0.cmp(&a.0));
        all.truncate(PER_DESTINATION_LIMIT);
    }
    all.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| a.1.destination.cmp(&b.1.destination))
    });
    all.into_iter().map(|(_, stats)| stats).collect()
}
