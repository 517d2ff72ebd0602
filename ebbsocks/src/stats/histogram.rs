//! Durations counted into fixed buckets with atomics: what a connection task
//! pays to record one is two relaxed `fetch_add`s and a short scan of the
//! bounds, with no lock and no allocation. `/metrics` reads them as
//! Prometheus histograms.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds, in seconds, of the buckets for the handshake and the
/// upstream connect: from a pool hit on loopback (tens of microseconds) to a
/// connect timeout (the default is 10 s).
pub const LATENCY_BOUNDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// A histogram over [`LATENCY_BOUNDS`], plus one bucket for what is above.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket, not cumulative; the last one is `+Inf`.
    counts: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A point-in-time copy of a [`LatencyHistogram`].
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations in this bucket)`, not
    /// cumulative, ending with the `f64::INFINITY` bucket.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of the buckets.
    pub count: u64,
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    /// Observations at or below `bound`, as a Prometheus `le` bucket says.
    pub fn cumulative(&self, bound: f64) -> u64 {
        self.buckets
            .iter()
            .take_while(|(upper, _)| *upper <= bound)
            .map(|(_, n)| n)
            .sum()
    }
}

impl LatencyHistogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        // Prometheus buckets are "less than or equal to the bound".
        let slot = LATENCY_BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.counts[slot].fetch_add(1, Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// The count is the sum of the buckets read, so the `+Inf` bucket and
    /// `_count` always agree even while observations land.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let bounds = LATENCY_BOUNDS.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.counts)
            .map(|(bound, count)| (bound, count.load(Relaxed)))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
            sum_seconds: self.sum_nanos.load(Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_increasing() {
        assert!(LATENCY_BOUNDS.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_micros(50)); // <= 0.0001
        histogram.observe(Duration::from_millis(1)); // exactly on 0.001
        histogram.observe(Duration::from_millis(30)); // <= 0.05
        histogram.observe(Duration::from_secs(60)); // above every bound
        let snap = histogram.snapshot();
        assert_eq!(snap.cumulative(0.0001), 1);
        assert_eq!(snap.cumulative(0.0005), 1);
        assert_eq!(snap.cumulative(0.001), 2, "a bound includes itself");
        assert_eq!(snap.cumulative(0.025), 2);
        assert_eq!(snap.cumulative(0.05), 3);
        assert_eq!(snap.cumulative(10.0), 3);
        assert_eq!(snap.cumulative(f64::INFINITY), 4);
        assert_eq!(snap.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert_eq!(snap.count, 4);
        assert!((snap.sum_seconds - 60.03105).abs() < 1e-9, "{snap:?}");
    }

    #[test]
    fn an_empty_histogram_is_all_zeros() {
        let snap = LatencyHistogram::default().snapshot();
        assert_eq!(snap.buckets.len(), LATENCY_BOUNDS.len() + 1);
        assert!(snap.buckets.iter().all(|(_, n)| *n == 0));
        assert_eq!((snap.count, snap.sum_seconds), (0, 0.0));
    }
}
