//! Telemetry events from the pool, rate limited per kind so that a spike
//! against a dead or banner-sending destination cannot flush every other
//! event out of the (bounded) ring. An event that gets through says how many
//! of its kind were held back since the previous one.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::stats::{lock, Severity, Telemetry};

/// At most this many events of one kind per window.
const EVENTS_PER_WINDOW: u32 = 10;
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    ConnectFailed,
    Stale,
    Evicted,
    DroppedFull,
    WarmPaused,
}

impl Kind {
    const COUNT: usize = 5;

    fn index(self) -> usize {
        self as usize
    }

    fn describe(self) -> (Severity, &'static str, &'static str) {
        match self {
            Kind::ConnectFailed => (Severity::Warning, "upstream", "upstream connect failed"),
            Kind::Stale => (
                Severity::Warning,
                "pool",
                "idle pooled connection was not pristine (closed, data or error); discarded",
            ),
            Kind::Evicted => (
                Severity::Info,
                "pool",
                "global idle limit reached: evicted the oldest idle connection",
            ),
            Kind::DroppedFull => (
                Severity::Info,
                "pool",
                "idle limit reached: spare connection not kept",
            ),
            Kind::WarmPaused => (
                Severity::Warning,
                "pool",
                "destination judged unsuited to pooling: no spares for a while",
            ),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Option<Instant>,
    sent: u32,
    suppressed: u64,
}

#[derive(Debug)]
pub(super) struct Events {
    windows: Mutex<[Window; Kind::COUNT]>,
}

impl Events {
    pub(super) fn new() -> Self {
        let empty = Window {
            start: None,
            sent: 0,
            suppressed: 0,
        };
        Self {
            windows: Mutex::new([empty; Kind::COUNT]),
        }
    }

    /// Records an event of `kind` unless its window is used up. `details`
    /// is built only when the event is recorded.
    pub(super) fn record(
        &self,
        telemetry: &Telemetry,
        kind: Kind,
        details: impl FnOnce() -> Value,
    ) {
        let Some(suppressed) = self.admit(kind, Instant::now()) else {
            return;
        };
        let (severity, category, message) = kind.describe();
        let mut details = details();
        if let Value::Object(map) = &mut details {
            map.insert("suppressed_before".into(), suppressed.into());
        }
        telemetry.record(severity, category, message, details);
    }

    /// `Some(held back since the last recorded one)` if this event may be
    /// recorded now.
    fn admit(&self, kind: Kind, now: Instant) -> Option<u64> {
        let mut windows = lock(&self.windows);
        let w = &mut windows[kind.index()];
        if w.start
            .is_none_or(|start| now.duration_since(start) >= WINDOW)
        {
            w.start = Some(now);
            w.sent = 0;
        }
        if w.sent >= EVENTS_PER_WINDOW {
            w.suppressed += 1;
            return None;
        }
        w.sent += 1;
        Some(std::mem::take(&mut w.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_cut_and_the_next_event_counts_what_was_held_back() {
        let telemetry = Telemetry::new(100);
        let events = Events::new();
        for _ in 0..1000 {
            events.record(&telemetry, Kind::ConnectFailed, || serde_json::json!({}));
        }
        assert_eq!(telemetry.len(), EVENTS_PER_WINDOW as usize);
        // Other kinds have their own window.
        events.record(&telemetry, Kind::Stale, || serde_json::json!({}));
        assert_eq!(telemetry.len(), EVENTS_PER_WINDOW as usize + 1);

        tokio::time::advance(WINDOW).await;
        events.record(&telemetry, Kind::ConnectFailed, || serde_json::json!({}));
        let all = telemetry.query(&Default::default());
        let last = all.last().map(|e| e.details.clone());
        assert_eq!(
            last,
            Some(serde_json::json!({"suppressed_before": 1000 - EVENTS_PER_WINDOW as u64}))
        );
    }
}
