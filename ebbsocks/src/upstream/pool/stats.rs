//! Pool counters and the serializable snapshot served by the stats API.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use serde::Serialize;
use tokio::time::Instant;

use super::demand::Rule;
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
    /// Connections opened by checkouts themselves (misses that connected).
    pub(super) checkout_created: AtomicU64,
    /// Connections opened by warm-up.
    pub(super) spares_created: AtomicU64,
    pub(super) spares_failed: AtomicU64,
    pub(super) hits: AtomicU64,
    pub(super) misses: AtomicU64,
    pub(super) dropped_full: AtomicU64,
    pub(super) evicted: AtomicU64,
    pub(super) expired: AtomicU64,
    pub(super) stale: AtomicU64,
    pub(super) warm_pauses: AtomicU64,
    /// Background pre-connects in flight.
    pub(super) pending: AtomicUsize,
    /// Connections sitting idle in the pool.
    pub(super) idle: AtomicUsize,
}

/// A point-in-time view of the pool, as served by `GET /api/pool/stats`.
/// Counters are read one by one without a global lock, so under load two
/// of them may be a few operations apart. Every counter counts from
/// startup and never goes down; the gauges say "now". Two ratios follow:
/// upstream connections opened per client CONNECT is
/// `total_created / (pool_hits + pool_misses)`, and the hit ratio is
/// `pool_hits / (pool_hits + pool_misses)`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PoolStats {
    /// Gauge: idle pristine connections ready for checkout.
    pub total_idle: usize,
    /// Gauge: destinations with bookkeeping (pruned after inactivity).
    pub destinations: usize,
    /// Gauge: upstream connections handed out whose session is still open.
    pub connections_in_use: u64,
    /// Upstream connections opened successfully, for clients and as
    /// spares: `checkout_created + spares_created`.
    pub total_created: u64,
    /// Connections a checkout opened for its own client (a miss whose
    /// connect succeeded).
    pub checkout_created: u64,
    /// Spare connections the warm-up opened (each one then idle until a
    /// client takes it or it is discarded).
    pub spares_created: u64,
    /// Spare connects that failed (the destination is then paused).
    pub spares_failed: u64,
    /// Checkouts served by a spare: CONNECTs that skipped the handshake.
    pub pool_hits: u64,
    /// Checkouts that connected themselves (whether or not that succeeded).
    pub pool_misses: u64,
    /// Spares the warm-up wanted but did not keep because no limit had room
    /// for them: not opened (every pool-wide slot held by spares in flight)
    /// or closed on arrival (limits lowered, or the pool disabled, while it
    /// was connecting). One per spare turned away.
    pub dropped_full: u64,
    /// Idle connections closed to keep within the limits: the oldest one
    /// anywhere when a spare needed room under `max_total_idle`, or those
    /// above lowered limits (or all, when disabled) after a reconfigure.
    pub evicted: u64,
    /// Idle connections closed after `idle_timeout_secs`.
    pub expired: u64,
    /// Idle connections found closed, with unsolicited data or with an
    /// error at checkout, and discarded.
    pub stale: u64,
    /// Times warming of a destination was paused because it proved
    /// unsuited to pooling (see `per_destination[].warm_paused`).
    pub warm_pauses: u64,
    /// Gauge: spare connects in flight.
    pub pending_creates: u64,
    /// At most [`PER_DESTINATION_LIMIT`] entries, most recently active first.
    pub per_destination: Vec<DestinationStats>,
    pub enabled: bool,
    pub max_idle_per_dest: usize,
    pub max_total_idle: usize,
    pub idle_timeout_secs: u64,
    pub connect_timeout_ms: u64,
    pub warm_after_checkouts: usize,
}

/// One destination's share of the counters above, plus its policy state.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DestinationStats {
    pub destination: String,
    pub idle: usize,
    pub in_use: usize,
    pub hits: u64,
    pub misses: u64,
    /// Connections opened to it, for clients and as spares.
    pub created: u64,
    /// The part of `created` opened as spares.
    pub spares_created: u64,
    pub dropped: u64,
    pub evicted: u64,
    pub expired: u64,
    pub stale: u64,
    /// Spares its recent demand has earned (0 unless in demand).
    pub demand: usize,
    /// Why warming is paused for it, while it is: `closes_idle_connections`,
    /// `speaks_first`, `idle_connection_error` or `spare_connect_failed`.
    pub warm_paused: Option<&'static str>,
    /// How much longer the pause lasts (0 when not paused).
    pub warm_paused_ms_left: u64,
    pub last_activity_ms_ago: u64,
}

/// Snapshots of the most recently active destinations.
pub(super) fn per_destination<'a>(
    nodes: impl Iterator<Item = (&'a SocketAddr, &'a Arc<DestNode>)>,
    now: Instant,
    rule: Rule,
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
                spares_created: c.spares_created,
                dropped: c.dropped,
                evicted: c.evicted,
                expired: c.expired,
                stale: c.stale,
                demand: state.demand.target(now, rule),
                warm_paused: state.pause.reason(now).map(|r| r.label()),
                warm_paused_ms_left: millis(state.pause.remaining(now)),
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
