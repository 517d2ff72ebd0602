//! Prometheus metrics: a prometheus-client registry whose one collector
//! reads `stats`, the pool and `memory` at scrape time (`collector.rs`), so
//! the hot path keeps only the counters it already had. The API serves the
//! text at `GET /metrics`; this module knows nothing of HTTP beyond the
//! media types it can write.

mod collector;
mod families;
mod pool;
// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::sync::Arc;

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::registry::Registry;

pub use collector::ServerCollector;

use crate::memory::MemoryMonitor;
use crate::stats::Stats;
use crate::upstream::pool::Pool;

/// The two text formats a scraper may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text: what Prometheus asks for first. Counter
    /// families are named without `_total`, with `# UNIT` lines and `# EOF`.
    OpenMetrics,
    /// The Prometheus text format 0.0.4: for clients that do not ask for
    /// OpenMetrics (curl, `promtool check metrics`).
    PrometheusText,
}

impl Format {
    /// Picks the format from an `Accept` header: OpenMetrics when it is
    /// listed with a non-zero quality, the Prometheus text format otherwise.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|range| {
                let mut parts = range.split(';').map(str::trim);
                let media = parts.next().unwrap_or_default();
                let refused = parts.any(|param| {
                    param
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
            })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The registry behind `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub fn new(stats: Arc<Stats>, pool: Arc<Pool>, memory: Arc<MemoryMonitor>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ServerCollector {
            stats,
            pool,
            memory,
        }));
        Self { registry }
    }

    /// Every metric now, as `format` says. Reads the counters (and memory:
    /// one `/proc/self/status` read and an allocator epoch advance).
    /// Fails only if the encoder rejects a value (writing to a `String`
    /// itself cannot fail).
    pub fn encode(&self, format: Format) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        match format {
            Format::OpenMetrics => text::encode(&mut out, &self.registry)?,
            Format::PrometheusText => prometheus_text::encode(&mut out, &self.registry)?,
        }
        Ok(out)
    }
}
