//! What `/metrics` exports, read at scrape time from the counters the server
//! already keeps (`stats`, the pool, `memory`): nothing is counted twice on
//! the hot path. Every metric is one call below (a new `stats` map of counts
//! by static label is `out.counter_map(name, help, label, &s.map)`); the
//! metric also goes into `FAMILIES` in `tests.rs` and into docs/metrics.md.
//! Label values are fixed labels from the code or rule names from the
//! configuration, never anything a client sent.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::families::Families;
use crate::error::AUTH_FAILURE_REASONS;
use crate::memory::{MemoryMonitor, MemoryReport};
use crate::stats::{Stats, StatsSnapshot, UdpSnapshot};
use crate::upstream::pool::Pool;

/// Reads the server's counters on each scrape.
#[derive(Debug)]
pub struct ServerCollector {
    pub stats: Arc<Stats>,
    pub pool: Arc<Pool>,
    pub memory: Arc<MemoryMonitor>,
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let mut out = Families::new(&mut encoder);
        out.info(
            "ebbsocks_build",
            "The running ebbsocks version.",
            &[("version", env!("CARGO_PKG_VERSION"))],
        )?;
        let snapshot = self.stats.snapshot();
        sessions(&mut out, &snapshot)?;
        latency(&mut out, &self.stats)?;
        udp(&mut out, &snapshot.udp)?;
        super::pool::encode(&mut out, &self.pool.stats())?;
        memory(&mut out, &self.memory.report())
    }
}

const BYTES: Option<Unit> = Some(Unit::Bytes);

fn sessions(out: &mut Families, s: &StatsSnapshot) -> fmt::Result {
    out.counter(
        "ebbsocks_connections_accepted",
        "Client connections accepted within server.max_connections.",
        None,
        s.connections_accepted,
    )?;
    out.counter(
        "ebbsocks_connections_refused",
        "Client connections closed at once because server.max_connections were open.",
        None,
        s.refused_max_connections,
    )?;
    out.gauge(
        "ebbsocks_connections_open",
        "Client connections open now, in any state.",
        None,
        s.connections_open,
    )?;
    out.counter(
        "ebbsocks_sessions_started",
        "Requests granted: the success reply was about to be sent.",
        None,
        s.sessions_total,
    )?;
    out.gauge(
        "ebbsocks_sessions_active",
        "Granted sessions not finished yet.",
        None,
        s.sessions_active,
    )?;
    out.counter_map(
        "ebbsocks_sessions_finished",
        "Granted sessions that ended, by how they ended.",
        "outcome",
        &s.session_outcomes,
    )?;
    out.counter_by(
        "ebbsocks_relayed",
        "Payload bytes relayed for CONNECT and BIND sessions, counted as they pass.",
        BYTES,
        "direction",
        [
            ("client_to_upstream", s.bytes_client_to_upstream),
            ("upstream_to_client", s.bytes_upstream_to_client),
        ],
    )?;
    out.counter_map(
        "ebbsocks_handshake_failures",
        "Connections that ended before a request was read, by reason.",
        "reason",
        &s.handshake_failures,
    )?;
    out.counter_by(
        "ebbsocks_auth_failures",
        "Handshake failures that were authentication failures, by reason.",
        None,
        "reason",
        AUTH_FAILURE_REASONS.iter().map(|reason| {
            (
                *reason,
                s.handshake_failures.get(reason).copied().unwrap_or(0),
            )
        }),
    )?;
    out.counter_map(
        "ebbsocks_connect_failures",
        "Requests whose upstream could not be reached, by reason.",
        "reason",
        &s.connect_failures,
    )?;
    out.counter_by(
        "ebbsocks_access_denied",
        "Requests, BIND peers and UDP datagrams refused by the access rules, by rule name.",
        None,
        "rule",
        s.access_denied.iter().map(|(k, v)| (k.as_ref(), *v)),
    )?;
    out.counter_map(
        "ebbsocks_session_limit_refusals",
        "Requests refused by max_sessions_per_client or max_sessions_per_user.",
        "reason",
        &s.session_limit_refusals,
    )?;
    out.counter(
        "ebbsocks_bind_requests",
        "BIND requests read, granted or not.",
        None,
        s.bind_requests,
    )?;
    out.counter(
        "ebbsocks_bind_peers_rejected",
        "Inbound connections a BIND listener closed: not the expected peer, or refused by the rules.",
        None,
        s.bind_peers_rejected,
    )?;
    out.counter_by(
        "ebbsocks_proxy_protocol_headers",
        "PROXY protocol headers accepted from trusted balancers, by command: proxied (a client address), local (health checks), unknown.",
        None,
        "command",
        [
            ("proxied", s.proxy_protocol.proxied),
            ("local", s.proxy_protocol.local),
            ("unknown", s.proxy_protocol.unknown),
        ],
    )?;
    out.counter_map(
        "ebbsocks_config_reloads",
        "Configuration reloads (SIGHUP or POST /api/reload), by outcome: applied, unchanged, rejected.",
        "outcome",
        &s.reloads,
    )
}

fn latency(out: &mut Families, stats: &Stats) -> fmt::Result {
    out.seconds_histogram(
        "ebbsocks_handshake_duration",
        "From accepting a connection to its request read, for handshakes that succeeded.",
        &stats.handshake_durations(),
    )?;
    let (hit, miss) = stats.connect_durations();
    out.seconds_histogram_by(
        "ebbsocks_upstream_connect_duration",
        "From a CONNECT request read to a connected upstream, by whether the pool had one ready.",
        "pool",
        [("hit", &hit), ("miss", &miss)],
    )
}

fn udp(out: &mut Families, u: &UdpSnapshot) -> fmt::Result {
    out.gauge(
        "ebbsocks_udp_associations_active",
        "UDP associations open now.",
        None,
        u.associations_active,
    )?;
    out.counter(
        "ebbsocks_udp_associations_opened",
        "UDP associations opened.",
        None,
        u.associations_total,
    )?;
    out.counter(
        "ebbsocks_udp_associations_refused",
        "UDP ASSOCIATE requests refused because server.max_udp_associations were open.",
        None,
        u.associations_refused,
    )?;
    out.counter_by(
        "ebbsocks_udp_datagrams",
        "UDP datagrams relayed.",
        None,
        "direction",
        [
            ("client_to_remote", u.datagrams_client_to_remote),
            ("remote_to_client", u.datagrams_remote_to_client),
        ],
    )?;
    out.counter_by(
        "ebbsocks_udp_payload",
        "UDP payload bytes relayed, without the SOCKS header.",
        BYTES,
        "direction",
        [
            ("client_to_remote", u.bytes_client_to_remote),
            ("remote_to_client", u.bytes_remote_to_client),
        ],
    )?;
    out.counter_map(
        "ebbsocks_udp_datagrams_dropped",
        "UDP datagrams not relayed, by reason.",
        "reason",
        &u.drops,
    )
}

fn memory(out: &mut Families, m: &MemoryReport) -> fmt::Result {
    out.gauge_if_read(
        "ebbsocks_process_resident_memory",
        "Resident memory of the process (VmRSS).",
        BYTES,
        m.rss_bytes,
    )?;
    out.gauge_if_read(
        "ebbsocks_process_resident_anon_memory",
        "Anonymous resident memory (RssAnon): heap and stacks, no file mappings.",
        BYTES,
        m.rss_anon_bytes,
    )?;
    let allocator = m.allocator.as_ref();
    let figures = [
        (
            "allocated",
            "Bytes in live allocations.",
            allocator.map(|a| a.allocated),
        ),
        (
            "active",
            "Bytes in pages with live allocations.",
            allocator.map(|a| a.active),
        ),
        (
            "resident",
            "Bytes the allocator holds resident.",
            allocator.map(|a| a.resident),
        ),
        (
            "mapped",
            "Bytes in extents the allocator has mapped.",
            allocator.map(|a| a.mapped),
        ),
        (
            "retained",
            "Bytes mapped-but-released: address space kept, memory returned to the OS.",
            allocator.map(|a| a.retained),
        ),
        (
            "metadata",
            "Bytes of allocator metadata.",
            allocator.map(|a| a.metadata),
        ),
    ];
    for (figure, help, value) in figures {
        let name = format!("ebbsocks_allocator_{figure}");
        out.gauge_if_read(&name, help, BYTES, value)?;
    }
    out.gauge(
        "ebbsocks_relay_piped",
        "Payload held in splice pipes for slow peers (kernel memory).",
        BYTES,
        m.relay.piped_bytes,
    )?;
    out.gauge(
        "ebbsocks_relay_stalled_pipes",
        "Splice pipes kept by a direction whose peer would not take their bytes.",
        None,
        m.relay.stalled_pipes,
    )?;
    out.gauge(
        "ebbsocks_relay_pipes",
        "Splice pipes alive, leased or pooled.",
        None,
        m.relay.pipes,
    )?;
    out.counter(
        "ebbsocks_memory_purges",
        "Allocator purges run after a sharp drop in open connections.",
        None,
        m.purge.as_ref().map_or(0, |p| p.count),
    )
}
