use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::pool::{Kind, PoolMetric, POOL_METRICS};
use super::*;
use crate::config::{MemoryConfig, PoolConfig};
use crate::stats::{Telemetry, UdpDrop};

/// Every family `/metrics` exports but the pool's (see [`pool_families`]),
/// with its type, as named in the Prometheus text format (counters with
/// `_total`). docs/metrics.md describes each; dashboards and alerts depend
/// on these names.
const FAMILIES: &[(&str, &str)] = &[
    ("ebbsocks_build_info", "gauge"),
    ("ebbsocks_connections_accepted_total", "counter"),
    ("ebbsocks_connections_refused_total", "counter"),
    ("ebbsocks_connections_open", "gauge"),
    ("ebbsocks_sessions_started_total", "counter"),
    ("ebbsocks_sessions_active", "gauge"),
    ("ebbsocks_sessions_finished_total", "counter"),
    ("ebbsocks_relayed_bytes_total", "counter"),
    ("ebbsocks_handshake_failures_total", "counter"),
    ("ebbsocks_auth_failures_total", "counter"),
    ("ebbsocks_connect_failures_total", "counter"),
    ("ebbsocks_access_denied_total", "counter"),
    ("ebbsocks_session_limit_refusals_total", "counter"),
    ("ebbsocks_bind_requests_total", "counter"),
    ("ebbsocks_bind_peers_rejected_total", "counter"),
    ("ebbsocks_proxy_protocol_headers_total", "counter"),
    ("ebbsocks_config_reloads_total", "counter"),
    ("ebbsocks_handshake_duration_seconds", "histogram"),
    ("ebbsocks_upstream_connect_duration_seconds", "histogram"),
    ("ebbsocks_udp_associations_active", "gauge"),
    ("ebbsocks_udp_associations_opened_total", "counter"),
    ("ebbsocks_udp_associations_refused_total", "counter"),
    ("ebbsocks_udp_datagrams_total", "counter"),
    ("ebbsocks_udp_payload_bytes_total", "counter"),
    ("ebbsocks_udp_datagrams_dropped_total", "counter"),
    ("ebbsocks_process_resident_memory_bytes", "gauge"),
    ("ebbsocks_process_resident_anon_memory_bytes", "gauge"),
    ("ebbsocks_allocator_allocated_bytes", "gauge"),
    ("ebbsocks_allocator_active_bytes", "gauge"),
    ("ebbsocks_allocator_resident_bytes", "gauge"),
    ("ebbsocks_allocator_mapped_bytes", "gauge"),
    ("ebbsocks_allocator_retained_bytes", "gauge"),
    ("ebbsocks_allocator_metadata_bytes", "gauge"),
    ("ebbsocks_relay_piped_bytes", "gauge"),
    ("ebbsocks_relay_stalled_pipes", "gauge"),
    ("ebbsocks_relay_pipes", "gauge"),
    ("ebbsocks_memory_purges_total", "counter"),
];

/// The pool families: one per field of `/api/pool/stats` that the table
/// names, as the sample name.
fn pool_families(pool: &Pool) -> Vec<(String, &'static str)> {
    let json = serde_json::to_value(pool.stats()).unwrap();
    POOL_METRICS
        .iter()
        .filter(|metric| json.get(metric.field).is_some())
        .map(|metric| (full_name(metric), kind_name(metric.kind)))
        .collect()
}

fn full_name(metric: &PoolMetric) -> String {
    let unit = if metric.from_millis || metric.field.ends_with("_secs") {
        "_seconds"
    } else {
        ""
    };
    let total = if metric.kind == Kind::Counter {
        "_total"
    } else {
        ""
    };
    format!("{}{unit}{total}", metric.name)
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
    }
}

struct Fixture {
    stats: Arc<Stats>,
    pool: Arc<Pool>,
    metrics: Metrics,
}

fn fixture() -> Fixture {
    let stats = Arc::new(Stats::new());
    let pool = Pool::new(PoolConfig::default(), Arc::new(Telemetry::default()));
    let memory = MemoryMonitor::new(&MemoryConfig::default());
    let metrics = Metrics::new(stats.clone(), pool.clone(), memory);
    Fixture {
        stats,
        pool,
        metrics,
    }
}

/// `name{labels}` -> value, for every sample line.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').unwrap();
            let value = match value {
                "+Inf" => f64::INFINITY,
                value => value.parse().unwrap(),
            };
            (key.to_owned(), value)
        })
        .collect()
}

fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| {
            let (name, kind) = rest.split_once(' ').unwrap();
            (name.to_owned(), kind.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_exported_families_are_the_documented_ones() {
    let f = fixture();
    let text = f.metrics.encode(Format::PrometheusText).unwrap();
    let exported = families(&text);
    let mut expected: BTreeMap<String, String> = FAMILIES
        .iter()
        .map(|(name, kind)| (name.to_string(), kind.to_string()))
        .collect();
    for (name, kind) in pool_families(&f.pool) {
        expected.insert(name, kind.to_owned());
    }
    assert_eq!(exported, expected);
    let docs = include_str!("../../../docs/metrics.md");
    let pool_names = POOL_METRICS.iter().map(full_name);
    for name in FAMILIES
        .iter()
        .map(|(n, _)| n.to_string())
        .chain(pool_names)
    {
        assert!(
            docs.contains(&format!("`{name}`")),
            "docs/metrics.md does not describe {name}"
        );
    }
}

#[tokio::test]
async fn every_pool_wide_figure_of_the_pool_endpoint_is_a_metric() {
    let f = fixture();
    let json = serde_json::to_value(f.pool.stats()).unwrap();
    for (field, value) in json.as_object().unwrap() {
        if field == "per_destination" {
            continue;
        }
        assert!(
            super::pool::number(value).is_some(),
            "/api/pool/stats {field} is not a count or a flag: {value}"
        );
        assert!(
            POOL_METRICS.iter().any(|metric| metric.field == field),
            "/api/pool/stats {field} has no metric in metrics/pool.rs"
        );
    }
    // The figures every version of the pool has, under these names.
    let text = f.metrics.encode(Format::PrometheusText).unwrap();
    let s = samples(&text);
    for name in [
        "ebbsocks_pool_idle_connections",
        "ebbsocks_pool_destinations",
        "ebbsocks_pool_connections_in_use",
        "ebbsocks_pool_pending_creates",
        "ebbsocks_pool_connections_created_total",
        "ebbsocks_pool_hits_total",
        "ebbsocks_pool_misses_total",
        "ebbsocks_pool_dropped_full_total",
        "ebbsocks_pool_evicted_total",
        "ebbsocks_pool_expired_total",
        "ebbsocks_pool_stale_total",
    ] {
        assert_eq!(s.get(name), Some(&0.0), "{name} on a fresh pool");
    }
    let config = PoolConfig::default();
    assert_eq!(
        s["ebbsocks_pool_connect_timeout_seconds"],
        config.connect_timeout_ms as f64 / 1000.0
    );
    assert_eq!(
        s["ebbsocks_pool_idle_timeout_seconds"],
        config.idle_timeout_secs as f64
    );
    assert_eq!(
        s["ebbsocks_pool_max_total_idle"],
        config.max_total_idle as f64
    );
}

#[tokio::test]
async fn samples_follow_the_counters() {
    let f = fixture();
    let stats = &f.stats;
    stats.connection_opened();
    stats.connection_opened();
    stats.connection_closed();
    stats.refused_max_connections();
    stats.session_started();
    stats.session_started();
    stats.relayed(10, 20);
    stats.session_finished("closed");
    stats.handshake_failed("auth_failed");
    stats.handshake_failed("handshake_timeout");
    stats.connect_failed("connect_refused");
    stats.access_denied(&Arc::from("no-ssh"));
    stats.access_denied(&Arc::from("no-ssh"));
    stats.session_limit_refused("max_sessions_per_client");
    stats.bind_requested();
    stats.udp.client_to_remote(100);
    stats.udp.remote_to_client(7);
    stats.udp.dropped(UdpDrop::Denied);
    stats.handshake_completed(Duration::from_millis(2));
    stats.upstream_connected(Duration::from_micros(50), true);
    stats.upstream_connected(Duration::from_millis(3), false);
    stats.upstream_connected(Duration::from_millis(4), false);
    stats.proxy_protocol.proxied();
    stats.proxy_protocol.proxied();
    stats.proxy_protocol.local();
    stats.reload_finished("applied");
    stats.reload_finished("rejected");
    stats.reload_finished("rejected");

    let text = f.metrics.encode(Format::PrometheusText).unwrap();
    if let Ok(path) = std::env::var("EBBSOCKS_METRICS_SAMPLE") {
        std::fs::write(path, &text).unwrap();
    }
    let s = samples(&text);
    let expect = [
        (
            "ebbsocks_proxy_protocol_headers_total{command=\"proxied\"}",
            2.0,
        ),
        (
            "ebbsocks_proxy_protocol_headers_total{command=\"local\"}",
            1.0,
        ),
        (
            "ebbsocks_proxy_protocol_headers_total{command=\"unknown\"}",
            0.0,
        ),
        ("ebbsocks_config_reloads_total{outcome=\"applied\"}", 1.0),
        ("ebbsocks_config_reloads_total{outcome=\"rejected\"}", 2.0),
        ("ebbsocks_connections_accepted_total", 2.0),
        ("ebbsocks_connections_open", 1.0),
        ("ebbsocks_connections_refused_total", 1.0),
        ("ebbsocks_sessions_started_total", 2.0),
        ("ebbsocks_sessions_active", 1.0),
        ("ebbsocks_sessions_finished_total{outcome=\"closed\"}", 1.0),
        (
            "ebbsocks_relayed_bytes_total{direction=\"client_to_upstream\"}",
            10.0,
        ),
        (
            "ebbsocks_relayed_bytes_total{direction=\"upstream_to_client\"}",
            20.0,
        ),
        (
            "ebbsocks_handshake_failures_total{reason=\"auth_failed\"}",
            1.0,
        ),
        (
            "ebbsocks_handshake_failures_total{reason=\"handshake_timeout\"}",
            1.0,
        ),
        ("ebbsocks_auth_failures_total{reason=\"auth_failed\"}", 1.0),
        // Every auth reason is there from the start, so rate() works at once.
        (
            "ebbsocks_auth_failures_total{reason=\"auth_throttled\"}",
            0.0,
        ),
        (
            "ebbsocks_connect_failures_total{reason=\"connect_refused\"}",
            1.0,
        ),
        ("ebbsocks_access_denied_total{rule=\"no-ssh\"}", 2.0),
        (
            "ebbsocks_session_limit_refusals_total{reason=\"max_sessions_per_client\"}",
            1.0,
        ),
        ("ebbsocks_bind_requests_total", 1.0),
        (
            "ebbsocks_udp_datagrams_total{direction=\"client_to_remote\"}",
            1.0,
        ),
        (
            "ebbsocks_udp_payload_bytes_total{direction=\"client_to_remote\"}",
            100.0,
        ),
        (
            "ebbsocks_udp_payload_bytes_total{direction=\"remote_to_client\"}",
            7.0,
        ),
        (
            "ebbsocks_udp_datagrams_dropped_total{reason=\"denied\"}",
            1.0,
        ),
        (
            "ebbsocks_udp_datagrams_dropped_total{reason=\"malformed\"}",
            0.0,
        ),
        ("ebbsocks_handshake_duration_seconds_count", 1.0),
        (
            "ebbsocks_handshake_duration_seconds_bucket{le=\"0.001\"}",
            0.0,
        ),
        (
            "ebbsocks_handshake_duration_seconds_bucket{le=\"0.0025\"}",
            1.0,
        ),
        ("ebbsocks_handshake_duration_seconds_sum", 0.002),
        (
            "ebbsocks_upstream_connect_duration_seconds_count{pool=\"hit\"}",
            1.0,
        ),
        (
            "ebbsocks_upstream_connect_duration_seconds_count{pool=\"miss\"}",
            2.0,
        ),
        (
            "ebbsocks_upstream_connect_duration_seconds_bucket{pool=\"miss\",le=\"0.0025\"}",
            0.0,
        ),
        (
            "ebbsocks_upstream_connect_duration_seconds_bucket{pool=\"miss\",le=\"0.005\"}",
            2.0,
        ),
        (
            "ebbsocks_upstream_connect_duration_seconds_bucket{pool=\"miss\",le=\"+Inf\"}",
            2.0,
        ),
        (
            "ebbsocks_pool_enabled",
            f64::from(u8::from(PoolConfig::default().enabled)),
        ),
        ("ebbsocks_pool_hits_total", 0.0),
        ("ebbsocks_build_info{version=\"0.1.0\"}", 1.0),
    ];
    for (key, value) in expect {
        let got = s.get(key).copied();
        assert!(
            got.is_some_and(|got| (got - value).abs() < 1e-9),
            "{key}: expected {value}, got {got:?}"
        );
    }
    let rss = s["ebbsocks_process_resident_memory_bytes"];
    assert!(
        rss > 1e6,
        "a running test process has over 1 MB resident: {rss}"
    );
    assert!(s["ebbsocks_allocator_active_bytes"] > 0.0);
}

#[tokio::test]
async fn openmetrics_has_units_counter_families_and_eof() {
    let f = fixture();
    f.stats.session_started();
    let text = f.metrics.encode(Format::OpenMetrics).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE ebbsocks_sessions_started counter\n"));
    assert!(text.contains("\nebbsocks_sessions_started_total 1\n"));
    assert!(text.contains("# UNIT ebbsocks_handshake_duration_seconds seconds\n"));
    assert!(text.contains("# TYPE ebbsocks_build info\n"));
    let plain = f.metrics.encode(Format::PrometheusText).unwrap();
    assert!(!plain.contains("# EOF"));
    assert!(plain.contains("# TYPE ebbsocks_sessions_started_total counter\n"));
}

#[test]
fn the_format_follows_the_accept_header() {
    // What Prometheus 2.x sends.
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                      version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(Format::from_accept(None), Format::PrometheusText);
    assert_eq!(Format::from_accept(Some("*/*")), Format::PrometheusText);
    assert_eq!(
        Format::from_accept(Some("text/plain;version=0.0.4")),
        Format::PrometheusText
    );
    assert_eq!(
        Format::from_accept(Some("application/openmetrics-text; q=0")),
        Format::PrometheusText
    );
    assert_eq!(
        Format::from_accept(Some("Application/OpenMetrics-Text")),
        Format::OpenMetrics
    );
}
