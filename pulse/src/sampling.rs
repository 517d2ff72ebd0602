//! The sampling thread `spike` and `fleet` share: its own OS thread, so
//! samples stay on time while thousands of connect tasks keep the runtime
//! busy. It calls a `take` function on a fixed tick grid and once more when
//! told to finish; failed reads are counted by message, with a bound.

use std::collections::BTreeMap;
use std::io;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Distinct error messages kept; more are lumped together so a flapping
/// source cannot grow the map without bound.
const MAX_ERROR_KINDS: usize = 16;

#[derive(Debug)]
pub struct Sampled<S> {
    pub samples: Vec<S>,
    /// Failed memory reads by message.
    pub errors: BTreeMap<String, u64>,
}

impl<S> Default for Sampled<S> {
    fn default() -> Self {
        Sampled {
            samples: Vec::new(),
            errors: BTreeMap::new(),
        }
    }
}

impl<S> Sampled<S> {
    /// Counts one failed read under `message`, or under a shared key once
    /// `MAX_ERROR_KINDS` other messages are kept.
    pub fn count_error(&mut self, message: String) {
        let key = if self.errors.len() < MAX_ERROR_KINDS || self.errors.contains_key(&message) {
            message
        } else {
            "other memory read errors".into()
        };
        *self.errors.entry(key).or_default() += 1;
    }
}

#[derive(Debug)]
pub struct Ticker<S> {
    stop: mpsc::Sender<()>,
    handle: thread::JoinHandle<Sampled<S>>,
}

impl<S: Send + 'static> Ticker<S> {
    /// Starts thread `name`, calling `take` now and every `every` until
    /// [`Ticker::finish`].
    pub fn start(
        name: &str,
        every: Duration,
        take: impl FnMut(&mut Sampled<S>) + Send + 'static,
    ) -> io::Result<Self> {
        let (stop, stop_rx) = mpsc::channel();
        let handle = thread::Builder::new()
            .name(name.into())
            .spawn(move || sample_loop(every, &stop_rx, take))?;
        Ok(Ticker { stop, handle })
    }

    /// Takes a last sample and returns everything collected.
    pub fn finish(self) -> Sampled<S> {
        let _ = self.stop.send(());
        self.handle.join().unwrap_or_else(|_| {
            let mut s = Sampled::default();
            s.errors.insert("sampler thread panicked".into(), 1);
            s
        })
    }
}

fn sample_loop<S>(
    every: Duration,
    stop: &mpsc::Receiver<()>,
    mut take: impl FnMut(&mut Sampled<S>),
) -> Sampled<S> {
    let mut out = Sampled::default();
    let mut next = Instant::now();
    loop {
        take(&mut out);
        // Ticks stay on a fixed grid; a slow read skips ticks, never bunches them.
        let now = Instant::now();
        while next <= now {
            next += every;
        }
        match stop.recv_timeout(next - now) {
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            _ => {
                take(&mut out);
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_are_bounded() {
        let mut out = Sampled::<()>::default();
        for i in 0..MAX_ERROR_KINDS + 5 {
            out.count_error(format!("error {i}"));
        }
        out.count_error("error 0".into());
        assert_eq!(out.errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(out.errors["other memory read errors"], 5);
        assert_eq!(out.errors["error 0"], 2);
    }
}
