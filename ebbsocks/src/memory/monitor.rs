//! Open-connection accounting, step logging, and purges after sharp drops on
//! a dedicated thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{jemalloc, read, MemoryReport};
use crate::config::MemoryConfig;

/// A drop smaller than this never triggers a purge, whatever the fraction:
/// a handful of connections closing frees too little to be worth a purge.
const MIN_DROP: u64 = 64;
/// After a purge is requested, wait this long for the rest of the drop to
/// happen, so one purge covers one drop.
const SETTLE: Duration = Duration::from_millis(100);
/// At most one purge per this interval; requests in between are coalesced
/// into the next one, never lost.
const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// Counts open client connections and turns sharp drops into purges.
/// Shared by the server (hot path: two atomics per event) and the API.
#[derive(Debug)]
pub struct MemoryMonitor {
    open: AtomicU64,
    /// The highest count since the last purge request.
    peak: AtomicU64,
    /// Whether a line for a non-zero multiple was logged since the last line
    /// for zero, so a lone connection coming and going logs nothing.
    logged_above_zero: AtomicBool,
    log_step: u64,
    drop_fraction: f64,
    purger: Arc<Purger>,
}

/// What the purge thread did, for `GET /api/memory`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PurgeReport {
    /// Purges run since start.
    pub count: u64,
    /// When the last purge finished, in milliseconds since the Unix epoch.
    pub last_unix_ms: Option<u64>,
    /// How long ago that was.
    pub last_ago_ms: Option<u64>,
    /// How long the last purge took.
    pub last_duration_us: Option<u64>,
    /// jemalloc's resident bytes before minus after the last purge.
    pub last_released_bytes: Option<i64>,
}

impl MemoryMonitor {
    pub fn new(config: &MemoryConfig) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            logged_above_zero: AtomicBool::new(false),
            log_step: config.log_step.max(1) as u64,
            drop_fraction: config.purge_drop_fraction,
            purger: Arc::new(Purger::default()),
        })
    }

    /// Open client connections now.
    pub fn open_connections(&self) -> u64 {
        self.open.load(Relaxed)
    }

    /// A client connection was accepted.
    pub fn connection_opened(&self) {
        let open = self.open.fetch_add(1, Relaxed) + 1;
        if open > self.peak.load(Relaxed) {
            self.peak.fetch_max(open, Relaxed);
        }
        if open.is_multiple_of(self.log_step) {
            self.logged_above_zero.store(true, Relaxed);
            log_crossing(open);
        }
    }

    /// A client connection ended (call exactly once per `connection_opened`).
    pub fn connection_closed(&self) {
        let before = self.open.fetch_sub(1, Relaxed);
        debug_assert!(before > 0, "connection_closed without connection_opened");
        let open = before.saturating_sub(1);
        if open.is_multiple_of(self.log_step)
            && (open > 0 || self.logged_above_zero.swap(false, Relaxed))
        {
            log_crossing(open);
        }
        if self.drop_fraction > 0.0 {
            let peak = self.peak.load(Relaxed);
            let dropped = peak.saturating_sub(open);
            if dropped >= MIN_DROP
                && dropped as f64 >= self.drop_fraction * peak as f64
                // Exactly one closer wins and restarts the peak from here.
                && self.peak.compare_exchange(peak, open, Relaxed, Relaxed).is_ok()
            {
                self.request_purge();
            }
        }
    }

    /// Asks the purge thread to return free memory to the OS soon. Never
    /// blocks for longer than a short lock; starts the thread on first use.
    pub fn request_purge(&self) {
        Purger::request(&self.purger);
    }

    /// Memory now, with the open connections and the purge history.
    pub fn report(&self) -> MemoryReport {
        let mut report = read();
        report.open_connections = Some(self.open_connections());
        report.purge = Some(self.purger.report());
        report
    }

    #[cfg(test)]
    pub(super) fn purger(&self) -> std::sync::Weak<impl std::fmt::Debug> {
        Arc::downgrade(&self.purger)
    }
}

impl Drop for MemoryMonitor {
    fn drop(&mut self) {
        // The thread holds its own `Arc<Purger>`; it sees `stop` at its next
        // wake-up (at once if it is waiting) and exits. Not joined: a purge in
        // progress must not block whoever drops the last reference.
        let mut state = self.purger.lock();
        state.stop = true;
        drop(state);
        self.purger.wake.notify_all();
    }
}

fn log_crossing(open: u64) {
    let report = read();
    let mib = |bytes: Option<u64>| {
        bytes
            .map(|b| b as f64 / (1024.0 * 1024.0))
            .unwrap_or(f64::NAN)
    };
    tracing::info!(
        connections = open,
        rss_mib = format_args!("{:.1}", mib(report.rss_bytes)),
        rss_anon_mib = format_args!("{:.1}", mib(report.rss_anon_bytes)),
        allocated_mib = format_args!("{:.1}", mib(report.allocator.map(|a| a.allocated))),
        "open connections crossed a log step"
    );
}

#[derive(Debug, Default)]
struct Purger {
    state: Mutex<PurgeState>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct PurgeState {
    requested: bool,
    stop: bool,
    thread_started: bool,
    count: u64,
    last: Option<LastPurge>,
}

#[derive(Debug, Clone, Copy)]
struct LastPurge {
    finished: Instant,
    wall: SystemTime,
    took: Duration,
    released: i64,
}

impl Purger {
    fn lock(&self) -> MutexGuard<'_, PurgeState> {
        // The state stays consistent across a panic (plain fields), so a
        // poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn request(this: &Arc<Self>) {
        let mut state = this.lock();
        state.requested = true;
        if !state.thread_started {
            state.thread_started = true;
            let purger = Arc::clone(this);
            let spawned = std::thread::Builder::new()
                .name("ebbsocks-purge".into())
                .stack_size(128 * 1024)
                .spawn(move || purger.run());
            if let Err(err) = spawned {
                tracing::warn!(%err, "memory purge thread not started; relying on decay");
            }
        }
        drop(state);
        this.wake.notify_one();
    }

    fn report(&self) -> PurgeReport {
        let state = self.lock();
        let last = state.last;
        PurgeReport {
            count: state.count,
            last_unix_ms: last
                .and_then(|l| l.wall.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64),
            last_ago_ms: last.map(|l| l.finished.elapsed().as_millis() as u64),
            last_duration_us: last.map(|l| l.took.as_micros() as u64),
            last_released_bytes: last.map(|l| l.released),
        }
    }

    /// The purge thread: wait for a request, let the drop settle, respect the
    /// rate limit, purge, repeat; exit when the monitor is dropped.
    fn run(&self) {
        let mut state = self.lock();
        loop {
            while !state.requested && !state.stop {
                state = self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let mut not_before = Instant::now() + SETTLE;
            if let Some(last) = state.last {
                not_before = not_before.max(last.finished + MIN_INTERVAL);
            }
            loop {
                if state.stop {
                    return;
                }
                let now = Instant::now();
                if now >= not_before {
                    break;
                }
                state = self
                    .wake
                    .wait_timeout(state, not_before - now)
                    .map(|(guard, _)| guard)
                    .unwrap_or_else(|err| err.into_inner().0);
            }
            // Requests up to here are covered by this purge.
            state.requested = false;
            drop(state);
            let last = purge();
            state = self.lock();
            state.count += 1;
            state.last = Some(last);
        }
    }
}

fn purge() -> LastPurge {
    let resident = || jemalloc::stats().map(|s| s.resident as i64).unwrap_or(0);
    let before = resident();
    let started = Instant::now();
    if let Err(err) = jemalloc::purge_all() {
        tracing::warn!(%err, "allocator purge failed");
    }
    let took = started.elapsed();
    let released = before - resident();
    tracing::debug!(
        released,
        took_us = took.as_micros() as u64,
        "allocator purged"
    );
    LastPurge {
        finished: Instant::now(),
        wall: SystemTime::now(),
        took,
        released,
    }
}
