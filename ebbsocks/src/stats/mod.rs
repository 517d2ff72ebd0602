//! Server-wide counters and the telemetry event ring. Everything here is
//! cheap to update from connection tasks (atomics, or a short lock on a
//! structure that never grows with traffic) and is read by the HTTP API as
//! serializable snapshots.

pub mod histogram;
pub mod limiter;
pub mod proxy;
pub mod telemetry;
pub mod udp;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

pub use histogram::{HistogramSnapshot, LatencyHistogram};
pub use proxy::{ProxyProtocolSnapshot, ProxyProtocolStats};
pub use telemetry::{Event, EventFilter, Severity, Telemetry};
pub use udp::{UdpDrop, UdpSnapshot, UdpStats};

/// Counters for the SOCKS side of the server.
#[derive(Debug, Default)]
pub struct Stats {
    connections_accepted: AtomicU64,
    connections_open: AtomicU64,
    refused_max_connections: AtomicU64,
    sessions_active: AtomicU64,
    sessions_total: AtomicU64,
    /// Relayed bytes, added while sessions run (see [`Stats::relayed`]).
    bytes_client_to_upstream: AtomicU64,
    bytes_upstream_to_client: AtomicU64,
    /// Keyed by `&'static str` labels, so the map holds at most one entry
    /// per failure kind the code knows about: it cannot grow with traffic.
    handshake_failures: Mutex<BTreeMap<&'static str, u64>>,
    connect_failures: Mutex<BTreeMap<&'static str, u64>>,
    /// Requests refused by the access rules, by rule label. Labels come
    /// from the configuration (a rule's name or index) or are built in, so
    /// the map is bounded by the rule count.
    access_denied: Mutex<BTreeMap<Arc<str>, u64>>,
    /// Requests refused by `max_sessions_per_client` / `_per_user`.
    session_limit_refusals: Mutex<BTreeMap<&'static str, u64>>,
    /// Finished sessions by how they ended (the relay's end labels, or why
    /// a granted session never reached the relay). Static labels: bounded.
    session_outcomes: Mutex<BTreeMap<&'static str, u64>>,
    /// BIND requests that completed the handshake, granted or not.
    bind_requests: AtomicU64,
    /// Inbound connections a BIND listener closed because they were not the
    /// requested peer or the access rules refused them.
    bind_peers_rejected: AtomicU64,
    /// UDP ASSOCIATE: associations, datagrams and drops (see `udp.rs`).
    pub udp: UdpStats,
    /// Configuration reloads (SIGHUP or `POST /api/reload`) by outcome:
    /// `applied`, `unchanged` (the file said what runs already) or
    /// `rejected` (the file could not be used; the running one stays).
    reloads: Mutex<BTreeMap<&'static str, u64>>,
    /// PROXY protocol headers accepted from trusted balancers (see `proxy.rs`).
    pub proxy_protocol: ProxyProtocolStats,
    /// From accepting a connection to a request read (greeting and
    /// authentication included), for handshakes that succeeded.
    handshake_duration: LatencyHistogram,
    /// From a CONNECT request read to a connected upstream (resolve, access
    /// checks, then a pool checkout or a TCP connect), by whether the pool
    /// had a connection ready.
    connect_duration_pool_hit: LatencyHistogram,
    connect_duration_pool_miss: LatencyHistogram,
}

/// A point-in-time copy of [`Stats`], as served by `GET /api/stats`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub connections_accepted: u64,
    pub connections_open: u64,
    pub refused_max_connections: u64,
    pub sessions_active: u64,
    pub sessions_total: u64,
    /// Bytes relayed so far, sessions still running included.
    pub bytes_client_to_upstream: u64,
    pub bytes_upstream_to_client: u64,
    pub handshake_failures: BTreeMap<&'static str, u64>,
    pub connect_failures: BTreeMap<&'static str, u64>,
    pub access_denied: BTreeMap<Arc<str>, u64>,
    pub session_limit_refusals: BTreeMap<&'static str, u64>,
    /// Sums to `sessions_total - sessions_active`.
    pub session_outcomes: BTreeMap<&'static str, u64>,
    pub bind_requests: u64,
    pub bind_peers_rejected: u64,
    pub udp: UdpSnapshot,
    pub reloads: BTreeMap<&'static str, u64>,
    pub proxy_protocol: ProxyProtocolSnapshot,
}

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    /// A client connection was accepted within the connection limit. Returns
    /// the number of open client connections including this one.
    pub fn connection_opened(&self) -> u64 {
        self.connections_accepted.fetch_add(1, Relaxed);
        self.connections_open.fetch_add(1, Relaxed) + 1
    }

    /// Returns the number of open client connections left.
    pub fn connection_closed(&self) -> u64 {
        self.connections_open.fetch_sub(1, Relaxed) - 1
    }

    pub fn connections_open(&self) -> u64 {
        self.connections_open.load(Relaxed)
    }

    pub fn refused_max_connections(&self) {
        self.refused_max_connections.fetch_add(1, Relaxed);
    }

    pub fn handshake_failed(&self, reason: &'static str) {
        bump(&self.handshake_failures, reason);
    }

    pub fn connect_failed(&self, reason: &'static str) {
        bump(&self.connect_failures, reason);
    }

    /// A request (or a BIND peer, or a UDP datagram) was refused by `rule`.
    pub fn access_denied(&self, rule: &Arc<str>) {
        let mut map = lock(&self.access_denied);
        match map.get_mut(rule) {
            Some(count) => *count += 1,
            None => {
                map.insert(rule.clone(), 1);
            }
        }
    }

    /// A request was refused because its client or user had too many sessions.
    pub fn session_limit_refused(&self, reason: &'static str) {
        bump(&self.session_limit_refusals, reason);
    }

    /// A BIND request arrived (after the handshake, before any check).
    pub fn bind_requested(&self) {
        self.bind_requests.fetch_add(1, Relaxed);
    }

    /// A BIND listener closed an inbound connection that was not its peer.
    pub fn bind_peer_rejected(&self) {
        self.bind_peers_rejected.fetch_add(1, Relaxed);
    }

    /// A request was granted: its upstream is connected and the success
    /// reply is about to be sent. Every start is matched by exactly one
    /// [`Stats::session_finished`] (the server holds a guard that sees to it).
    pub fn session_started(&self) {
        self.sessions_total.fetch_add(1, Relaxed);
        self.sessions_active.fetch_add(1, Relaxed);
    }

    /// A started session ended, for the reason `outcome` (a static label).
    /// Its bytes were counted as they moved, by [`Stats::relayed`].
    pub fn session_finished(&self, outcome: &'static str) {
        bump(&self.session_outcomes, outcome);
        self.sessions_active.fetch_sub(1, Relaxed);
    }

    /// Bytes a running session moved since it last reported, each way. The
    /// server reports after each wake-up of a relay that moved bytes, so the
    /// totals are live, not only updated when a session ends.
    pub fn relayed(&self, client_to_upstream: u64, upstream_to_client: u64) {
        if client_to_upstream > 0 {
            self.bytes_client_to_upstream
                .fetch_add(client_to_upstream, Relaxed);
        }
        if upstream_to_client > 0 {
            self.bytes_upstream_to_client
                .fetch_add(upstream_to_client, Relaxed);
        }
    }

    /// A handshake read its request, `elapsed` after the connection was
    /// accepted.
    pub fn handshake_completed(&self, elapsed: Duration) {
        self.handshake_duration.observe(elapsed);
    }

    /// An upstream connection was ready `elapsed` after the request was
    /// read; `pool_hit` when the pool handed out a pre-connected one.
    pub fn upstream_connected(&self, elapsed: Duration, pool_hit: bool) {
        if pool_hit {
            self.connect_duration_pool_hit.observe(elapsed);
        } else {
            self.connect_duration_pool_miss.observe(elapsed);
        }
    }

    pub fn handshake_durations(&self) -> HistogramSnapshot {
        self.handshake_duration.snapshot()
    }

    /// `(pool hit, pool miss)` connect durations.
    pub fn connect_durations(&self) -> (HistogramSnapshot, HistogramSnapshot) {
        (
            self.connect_duration_pool_hit.snapshot(),
            self.connect_duration_pool_miss.snapshot(),
        )
    }

    /// A configuration reload ended with `outcome` (a static label).
    pub fn reload_finished(&self, outcome: &'static str) {
        bump(&self.reloads, outcome);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections_accepted: self.connections_accepted.load(Relaxed),
            connections_open: self.connections_open.load(Relaxed),
            refused_max_connections: self.refused_max_connections.load(Relaxed),
            sessions_active: self.sessions_active.load(Relaxed),
            sessions_total: self.sessions_total.load(Relaxed),
            bytes_client_to_upstream: self.bytes_client_to_upstream.load(Relaxed),
            bytes_upstream_to_client: self.bytes_upstream_to_client.load(Relaxed),
            handshake_failures: lock(&self.handshake_failures).clone(),
            connect_failures: lock(&self.connect_failures).clone(),
            access_denied: lock(&self.access_denied).clone(),
            session_limit_refusals: lock(&self.session_limit_refusals).clone(),
            session_outcomes: lock(&self.session_outcomes).clone(),
            bind_requests: self.bind_requests.load(Relaxed),
            bind_peers_rejected: self.bind_peers_rejected.load(Relaxed),
            udp: self.udp.snapshot(),
            reloads: lock(&self.reloads).clone(),
            proxy_protocol: self.proxy_protocol.snapshot(),
        }
    }
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, reason: &'static str) {
    *lock(map).entry(reason).or_insert(0) += 1;
}

/// Counter maps stay consistent whatever a panicking holder did, so a
/// poisoned lock is still safe to use.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_session_counters_balance() {
        let stats = Stats::new();
        assert_eq!(stats.connection_opened(), 1);
        assert_eq!(stats.connection_opened(), 2);
        stats.session_started();
        stats.relayed(10, 0);
        stats.relayed(0, 20);
        stats.session_finished("closed");
        assert_eq!(stats.connection_closed(), 1);
        let snap = stats.snapshot();
        assert_eq!(snap.connections_accepted, 2);
        assert_eq!(snap.connections_open, 1);
        assert_eq!(snap.sessions_total, 1);
        assert_eq!(snap.sessions_active, 0);
        assert_eq!(snap.bytes_client_to_upstream, 10);
        assert_eq!(snap.bytes_upstream_to_client, 20);
        assert_eq!(snap.session_outcomes.get("closed"), Some(&1));
    }

    #[test]
    fn reloads_are_counted_by_outcome() {
        let stats = Stats::new();
        assert!(stats.snapshot().reloads.is_empty());
        stats.reload_finished("applied");
        stats.reload_finished("rejected");
        stats.reload_finished("applied");
        let reloads = stats.snapshot().reloads;
        assert_eq!(reloads.get("applied"), Some(&2));
        assert_eq!(reloads.get("rejected"), Some(&1));
        assert_eq!(reloads.len(), 2);
    }

    #[test]
    fn failures_are_counted_by_reason() {
        let stats = Stats::new();
        stats.handshake_failed("timeout");
        stats.handshake_failed("timeout");
        stats.handshake_failed("unknown_version");
        stats.connect_failed("refused");
        let snap = stats.snapshot();
        assert_eq!(snap.handshake_failures.get("timeout"), Some(&2));
        assert_eq!(snap.handshake_failures.get("unknown_version"), Some(&1));
        assert_eq!(snap.connect_failures.get("refused"), Some(&1));
    }
}
