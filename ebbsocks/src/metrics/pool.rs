//! The pool-wide figures of `GET /api/pool/stats` as metrics. The table is
//! keyed by the JSON field names of [`PoolStats`], so the endpoint and the
//! metrics cannot disagree on what a figure is: a field the table names is
//! exported whenever the endpoint has it, and a test fails when the endpoint
//! gains a numeric field the table does not name. The per-destination list
//! is left out: its labels would be destinations that clients chose.

use std::fmt;

use prometheus_client::registry::Unit;
use serde_json::Value;

use super::families::Families;
use crate::upstream::pool::PoolStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Counts from startup, never goes down.
    Counter,
    /// A level now, or a configured value.
    Gauge,
}

/// One field of `/api/pool/stats` and the metric it becomes.
#[derive(Debug)]
pub(super) struct PoolMetric {
    pub(super) field: &'static str,
    /// Without `_total` and the unit, which the encoder adds.
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    /// Milliseconds become seconds: the base unit.
    pub(super) from_millis: bool,
    pub(super) help: &'static str,
}

const fn counter(field: &'static str, name: &'static str, help: &'static str) -> PoolMetric {
    PoolMetric {
        field,
        name,
        kind: Kind::Counter,
        from_millis: false,
        help,
    }
}

const fn gauge(field: &'static str, name: &'static str, help: &'static str) -> PoolMetric {
    PoolMetric {
        field,
        name,
        kind: Kind::Gauge,
        from_millis: false,
        help,
    }
}

/// Every pool-wide field, in the order exported.
pub(super) const POOL_METRICS: &[PoolMetric] = &[
    gauge(
        "total_idle",
        "ebbsocks_pool_idle_connections",
        "Idle pristine upstream connections ready for checkout.",
    ),
    gauge(
        "destinations",
        "ebbsocks_pool_destinations",
        "Destinations the pool keeps bookkeeping for.",
    ),
    gauge(
        "connections_in_use",
        "ebbsocks_pool_connections_in_use",
        "Upstream connections handed out whose session is still open.",
    ),
    gauge(
        "pending_creates",
        "ebbsocks_pool_pending_creates",
        "Background pre-connects (spare connects) in flight.",
    ),
    counter(
        "total_created",
        "ebbsocks_pool_connections_created",
        "Upstream connections opened, by checkouts and as spares.",
    ),
    counter(
        "total_reused",
        "ebbsocks_pool_connections_reused",
        "Checkouts served with a pre-connected connection (equal to the hits).",
    ),
    counter(
        "checkout_created",
        "ebbsocks_pool_checkout_created",
        "Connections a checkout opened for its own client.",
    ),
    counter(
        "spares_created",
        "ebbsocks_pool_spares_created",
        "Spare connections the warm-up opened.",
    ),
    counter(
        "spares_failed",
        "ebbsocks_pool_spares_failed",
        "Spare connects that failed.",
    ),
    counter(
        "pool_hits",
        "ebbsocks_pool_hits",
        "Checkouts served from the pool.",
    ),
    counter(
        "pool_misses",
        "ebbsocks_pool_misses",
        "Checkouts that had to connect.",
    ),
    counter(
        "dropped_full",
        "ebbsocks_pool_dropped_full",
        "Idle connections not kept because no pool limit had room.",
    ),
    counter(
        "evicted",
        "ebbsocks_pool_evicted",
        "Idle connections closed to keep within the pool limits.",
    ),
    counter(
        "expired",
        "ebbsocks_pool_expired",
        "Idle connections closed after idle_timeout_secs.",
    ),
    counter(
        "stale",
        "ebbsocks_pool_stale",
        "Idle connections found closed, with data or with an error at checkout, and discarded.",
    ),
    counter(
        "warm_pauses",
        "ebbsocks_pool_warm_pauses",
        "Times warming a destination was paused because it proved unsuited to pooling.",
    ),
    gauge(
        "enabled",
        "ebbsocks_pool_enabled",
        "1 when the pool is enabled, 0 when every checkout connects.",
    ),
    gauge(
        "max_idle_per_dest",
        "ebbsocks_pool_max_idle_per_destination",
        "Configured cap on idle connections per destination.",
    ),
    gauge(
        "max_total_idle",
        "ebbsocks_pool_max_total_idle",
        "Configured cap on idle connections in all.",
    ),
    gauge(
        "warm_after_checkouts",
        "ebbsocks_pool_warm_after_checkouts",
        "Configured checkouts within idle_timeout_secs that make a destination worth spare connections.",
    ),
    PoolMetric {
        field: "idle_timeout_secs",
        name: "ebbsocks_pool_idle_timeout",
        kind: Kind::Gauge,
        from_millis: false,
        help: "Configured time an idle connection is kept.",
    },
    PoolMetric {
        field: "connect_timeout_ms",
        name: "ebbsocks_pool_connect_timeout",
        kind: Kind::Gauge,
        from_millis: true,
        help: "Configured timeout of each upstream connect attempt.",
    },
];

/// Whether the metric is in seconds (its name then ends in `_seconds`).
fn in_seconds(metric: &PoolMetric) -> bool {
    metric.from_millis || metric.field.ends_with("_secs")
}

pub(super) fn encode(out: &mut Families, stats: &PoolStats) -> fmt::Result {
    // Serializing a few dozen numbers costs nothing next to the scrape; it
    // is what keeps this table tied to the endpoint's field names.
    let Ok(Value::Object(fields)) = serde_json::to_value(stats) else {
        return Err(fmt::Error);
    };
    for metric in POOL_METRICS {
        let Some(value) = fields.get(metric.field).and_then(number) else {
            continue;
        };
        let unit = in_seconds(metric).then_some(Unit::Seconds);
        match metric.kind {
            Kind::Counter => out.counter(metric.name, metric.help, unit, value)?,
            Kind::Gauge if metric.from_millis => {
                out.gauge(metric.name, metric.help, unit, value as f64 / 1000.0)?
            }
            Kind::Gauge => out.gauge(metric.name, metric.help, unit, value)?,
        }
    }
    Ok(())
}

/// A count, or a flag as 0/1.
pub(super) fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Bool(flag) => Some(u64::from(*flag)),
        other => other.as_u64(),
    }
}
