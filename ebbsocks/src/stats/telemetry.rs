//! A bounded ring of recent operational events (pool pressure, upstream
//! failures, stale connections) for `GET /api/telemetry/events`. The ring
//! never holds more than its capacity: the oldest event makes room.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::lock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Debug,
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    pub severity: Severity,
    /// A stable label such as `pool` or `upstream`.
    pub category: &'static str,
    pub message: String,
    pub details: serde_json::Value,
}

/// Which events a query wants; all fields optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// Only events at or after this many ms since the Unix epoch.
    pub since: Option<u64>,
    pub min_severity: Option<Severity>,
    /// At most this many, the newest.
    pub limit: Option<usize>,
}

#[derive(Debug)]
pub struct Telemetry {
    capacity: usize,
    ring: Mutex<VecDeque<Event>>,
}

pub const DEFAULT_CAPACITY: usize = 512;

impl Default for Telemetry {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl Telemetry {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ring: Mutex::new(VecDeque::new()),
        }
    }

    pub fn record(
        &self,
        severity: Severity,
        category: &'static str,
        message: impl Into<String>,
        details: serde_json::Value,
    ) {
        let event = Event {
            timestamp_ms: now_ms(),
            severity,
            category,
            message: message.into(),
            details,
        };
        let mut ring = lock(&self.ring);
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(event);
    }

    /// Matching events, oldest first.
    pub fn query(&self, filter: &EventFilter) -> Vec<Event> {
        let ring = lock(&self.ring);
        let mut matching: Vec<Event> = ring
            .iter()
            .filter(|e| filter.since.is_none_or(|since| e.timestamp_ms >= since))
            .filter(|e| filter.min_severity.is_none_or(|min| e.severity >= min))
            .cloned()
            .collect();
        if let Some(limit) = filter.limit {
            let excess = matching.len().saturating_sub(limit);
            matching.drain(..excess);
        }
        matching
    }

    pub fn len(&self) -> usize {
        lock(&self.ring).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ring_keeps_only_the_newest_events() {
        let telemetry = Telemetry::new(3);
        for i in 0..5 {
            telemetry.record(Severity::Info, "pool", format!("event {i}"), json!({}));
        }
        let events = telemetry.query(&EventFilter::default());
        let messages: Vec<_> = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["event 2", "event 3", "event 4"]);
    }

    #[test]
    fn filters_by_severity_limit_and_time() {
        let telemetry = Telemetry::new(10);
        telemetry.record(Severity::Debug, "pool", "a", json!({}));
        telemetry.record(Severity::Warning, "pool", "b", json!({"dest": "x"}));
        telemetry.record(Severity::Error, "upstream", "c", json!({}));
        let warn_up = EventFilter {
            min_severity: Some(Severity::Warning),
            ..Default::default()
        };
        let got: Vec<_> = telemetry
            .query(&warn_up)
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(got, ["b", "c"]);
        let newest = EventFilter {
            limit: Some(1),
            ..Default::default()
        };
        assert_eq!(telemetry.query(&newest)[0].message, "c");
        let future = EventFilter {
            since: Some(now_ms() + 60_000),
            ..Default::default()
        };
        assert!(telemetry.query(&future).is_empty());
    }
}
