//! One sampling thread for all servers, so each sample reads every process
//! at the same tick and their sum means something. Like `spike`'s sampler
//! it runs on a [`Ticker`] thread, off the runtime, so connect storms
//! cannot delay it.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::memory::Source;
use crate::sampling::Ticker;
use crate::spike::sampler::Shared;

/// One tick: per server, in command-line order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetSample {
    pub t_ms: u64,
    pub open: Vec<usize>,
    pub rss_bytes: Vec<Option<u64>>,
}

impl FleetSample {
    /// The servers' RSS together; `None` when any reading failed, so a
    /// missing reading never looks like memory given back.
    pub fn sum_rss(&self) -> Option<u64> {
        self.rss_bytes.iter().copied().sum()
    }
}

/// A server as the sampler sees it: its open connection count (kept by
/// the spikes) and where its memory is read.
#[derive(Debug, Clone)]
pub struct Watched {
    pub shared: Arc<Shared>,
    pub source: Source,
}

/// What a [`FleetSampler`] collected.
pub type Sampled = crate::sampling::Sampled<FleetSample>;

#[derive(Debug)]
pub struct FleetSampler(Ticker<FleetSample>);

impl FleetSampler {
    /// Samples every `every` from `origin` until [`FleetSampler::finish`].
    pub fn start(watched: Vec<Watched>, origin: Instant, every: Duration) -> io::Result<Self> {
        Ticker::start("pulse-fleet-sampler", every, move |out| {
            take(&watched, origin, out);
        })
        .map(FleetSampler)
    }

    /// Takes a last sample and returns everything.
    pub fn finish(self) -> Sampled {
        self.0.finish()
    }
}

fn take(watched: &[Watched], origin: Instant, out: &mut Sampled) {
    let t_ms = u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut sample = FleetSample {
        t_ms,
        open: Vec::with_capacity(watched.len()),
        rss_bytes: Vec::with_capacity(watched.len()),
    };
    for w in watched {
        sample.open.push(w.shared.open.load(Ordering::Relaxed));
        let rss = match w.source.read() {
            Ok(reading) => Some(reading.rss_bytes),
            Err(e) => {
                out.count_error(format!("{}: {e}", w.source));
                None
            }
        };
        sample.rss_bytes.push(rss);
    }
    out.samples.push(sample);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_reads_every_server() {
        let me = Watched {
            shared: Arc::new(Shared::new()),
            source: Source::Pid(std::process::id()),
        };
        let gone = Watched {
            shared: Arc::new(Shared::new()),
            source: Source::Pid(u32::MAX),
        };
        me.shared.open.store(3, Ordering::Relaxed);
        let sampler = FleetSampler::start(
            vec![me.clone(), me, gone],
            Instant::now(),
            Duration::from_millis(5),
        )
        .unwrap();
        let out = sampler.finish();
        let last = out.samples.last().unwrap();
        assert_eq!(last.open, [3, 3, 0]);
        assert!(last.rss_bytes[0].is_some_and(|b| b > 0));
        assert_eq!(last.rss_bytes[2], None);
        // One failed reading makes the sum unknown, not smaller.
        assert_eq!(last.sum_rss(), None);
        assert_eq!(out.errors.values().sum::<u64>(), out.samples.len() as u64);
    }

    #[test]
    fn the_sum_adds_every_server() {
        let s = FleetSample {
            t_ms: 0,
            open: vec![0, 0],
            rss_bytes: vec![Some(3), Some(4)],
        };
        assert_eq!(s.sum_rss(), Some(7));
    }
}
