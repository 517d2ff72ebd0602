//! The memory sampler (on a [`Ticker`] thread, off the runtime): it reads
//! the open connection count and current phase from [`Shared`] and the
//! server's memory from a [`Source`].

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::memory::Source;
use crate::sampling::Ticker;

/// State the run updates and the sampler reads.
#[derive(Debug)]
pub struct Shared {
    start: Instant,
    /// Connections pulse holds right now (established, handshake done).
    pub open: AtomicUsize,
    phase: Mutex<String>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared::new()
    }
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            start: Instant::now(),
            open: AtomicUsize::new(0),
            phase: Mutex::new("start".into()),
        }
    }

    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub fn set_phase(&self, label: &str) {
        let mut p = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        label.clone_into(&mut p);
    }

    pub fn phase(&self) -> String {
        self.phase
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t_ms: u64,
    pub open: usize,
    pub rss_bytes: Option<u64>,
    pub rss_anon_bytes: Option<u64>,
    pub phase: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub detail: BTreeMap<String, u64>,
}

/// What a [`Sampler`] collected.
pub type Sampled = crate::sampling::Sampled<Sample>;

#[derive(Debug)]
pub struct Sampler(Ticker<Sample>);

impl Sampler {
    pub fn start(
        shared: Arc<Shared>,
        source: Option<Source>,
        every: Duration,
    ) -> io::Result<Sampler> {
        Ticker::start("pulse-sampler", every, move |out| {
            take(&shared, source.as_ref(), out);
        })
        .map(Sampler)
    }

    /// Takes a last sample and returns everything collected.
    pub fn finish(self) -> Sampled {
        self.0.finish()
    }
}

fn take(shared: &Shared, source: Option<&Source>, out: &mut Sampled) {
    let t_ms = shared.elapsed_ms();
    let open = shared.open.load(Ordering::Relaxed);
    let phase = shared.phase();
    let reading = source.map(Source::read).transpose().unwrap_or_else(|e| {
        out.count_error(e);
        None
    });
    out.samples.push(Sample {
        t_ms,
        open,
        rss_bytes: reading.as_ref().map(|r| r.rss_bytes),
        rss_anon_bytes: reading.as_ref().and_then(|r| r.rss_anon_bytes),
        phase,
        detail: reading.map(|r| r.detail).unwrap_or_default(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_own_process_until_stopped() {
        let shared = Arc::new(Shared::new());
        let source = Source::Pid(std::process::id());
        let s = Sampler::start(shared.clone(), Some(source), Duration::from_millis(5)).unwrap();
        shared.open.store(7, Ordering::Relaxed);
        shared.set_phase("hold");
        let out = s.finish();
        assert!(!out.samples.is_empty());
        let last = out.samples.last().unwrap();
        assert_eq!((last.open, last.phase.as_str()), (7, "hold"));
        assert!(last.rss_bytes.unwrap() > 0);
        assert!(out.errors.is_empty());
    }

    #[test]
    fn read_errors_are_counted_not_fatal() {
        let shared = Arc::new(Shared::new());
        let s = Sampler::start(
            shared,
            Some(Source::Pid(u32::MAX)),
            Duration::from_millis(5),
        )
        .unwrap();
        let out = s.finish();
        assert!(out.samples.iter().all(|s| s.rss_bytes.is_none()));
        assert_eq!(out.errors.values().sum::<u64>(), out.samples.len() as u64);
    }
}
