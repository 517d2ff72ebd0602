//! Allocator settings, memory readings and the purge policy: the code behind
//! "memory ebbs".
//!
//! - [`configure`] sets jemalloc's decay times and background purging from the
//!   `[memory]` section and turns transparent huge pages off for the process.
//!   jemalloc starts with the same defaults through [`jemalloc::malloc_conf`],
//!   so they hold from the first allocation.
//! - [`read`] takes a [`MemoryReport`]: RSS from `/proc/self/status` and
//!   jemalloc's own accounting.
//! - [`MemoryMonitor`] counts open client connections, logs at every multiple
//!   of `log_step`, and after a sharp drop has a dedicated thread purge the
//!   allocator, so memory goes back within a second instead of a decay period,
//!   and never on a runtime worker.

pub mod jemalloc;
mod monitor;
// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::time::Duration;

use serde::Serialize;

use crate::config::MemoryConfig;
use crate::relay;
pub use jemalloc::{AllocatorSettings, AllocatorStats};
pub use monitor::{MemoryMonitor, PurgeReport};

/// Why [`configure`] could not apply a setting.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("jemalloc control failed: {0}")]
    Allocator(tikv_jemalloc_ctl::Error),
    #[error("prctl(PR_SET_THP_DISABLE) failed: {0}")]
    Thp(#[source] std::io::Error),
}

impl From<tikv_jemalloc_ctl::Error> for MemoryError {
    fn from(err: tikv_jemalloc_ctl::Error) -> Self {
        MemoryError::Allocator(err)
    }
}

/// Applies the `[memory]` settings; call once at startup, before the runtime
/// starts its workers.
pub fn configure(config: &MemoryConfig) -> Result<(), MemoryError> {
    jemalloc::apply(
        Duration::from_millis(config.dirty_decay_ms),
        Duration::from_millis(config.muzzy_decay_ms),
    )?;
    if config.disable_thp {
        disable_thp().map_err(MemoryError::Thp)?;
    }
    tracing::debug!(settings = ?jemalloc::settings().ok(), thp_disabled = ?thp_disabled(), "allocator configured");
    Ok(())
}

/// Stops the kernel from backing this process's memory with transparent huge
/// pages. With THP, a 2 MiB page stays resident as long as one byte in it is
/// live, and pages the allocator purged can be collapsed back into huge pages.
fn disable_thp() -> std::io::Result<()> {
    // SAFETY: PR_SET_THP_DISABLE takes an integer flag and no pointers.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn thp_disabled() -> Option<bool> {
    // SAFETY: PR_GET_THP_DISABLE takes no pointers and returns the flag.
    let rc = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
    (rc >= 0).then_some(rc == 1)
}

/// Process memory at one moment, as served by `GET /api/memory`. Readings
/// that failed are `null`.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryReport {
    /// `VmRSS`: resident memory of the whole process.
    pub rss_bytes: Option<u64>,
    /// `RssAnon`: the part of RSS that is heap and stacks, not file mappings.
    pub rss_anon_bytes: Option<u64>,
    pub allocator: Option<AllocatorStats>,
    pub settings: Option<AllocatorSettings>,
    pub thp_disabled: Option<bool>,
    /// Payload held by relays for slow peers, and splice pipes alive.
    pub relay: relay::Buffered,
    /// Filled in by [`MemoryMonitor::report`]; `None` from [`read`].
    pub open_connections: Option<u64>,
    /// Filled in by [`MemoryMonitor::report`]; `None` from [`read`].
    pub purge: Option<PurgeReport>,
}

/// Reads the process's memory now. Costs a read of `/proc/self/status` and a
/// jemalloc epoch advance (tens of microseconds): not for per-connection use.
pub fn read() -> MemoryReport {
    let (rss_bytes, rss_anon_bytes) = match std::fs::read_to_string("/proc/self/status") {
        Ok(status) => (
            status_kib(&status, "VmRSS:").map(|kib| kib * 1024),
            status_kib(&status, "RssAnon:").map(|kib| kib * 1024),
        ),
        Err(_) => (None, None),
    };
    MemoryReport {
        rss_bytes,
        rss_anon_bytes,
        allocator: jemalloc::stats().ok(),
        settings: jemalloc::settings().ok(),
        thp_disabled: thp_disabled(),
        relay: relay::buffered(),
        open_connections: None,
        purge: None,
    }
}

/// RSS alone, for callers that sample often (log lines, benchmarks).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status_kib(&status, "VmRSS:").map(|kib| kib * 1024)
}

/// The value of a `Key:   123 kB` line of `/proc/<pid>/status`. A line
/// without the `kB` unit is a count (`Threads:  3`), not a size: `None`.
fn status_kib(status: &str, key: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    line[key.len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}
