//! The few jemalloc controls ebbsocks uses, wrapped so the rest of the module
//! never touches `mallctl` names or `unsafe`.
//!
//! The binary declares jemalloc as its global allocator; with the
//! `unprefixed_malloc_on_supported_platforms` feature jemalloc also provides
//! the C `malloc`, so every allocation in the process goes through it.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::time::Duration;

use serde::Serialize;
use tikv_jemalloc_ctl::{background_thread, epoch, raw, stats};

/// Options jemalloc reads when it initializes, before `main` and before
/// [`super::configure`] can run: background purging from the very first
/// allocation, with the same decay times as the configuration's defaults.
/// `configure` then applies the configured values at run time.
///
/// jemalloc looks up this symbol by name (`malloc_conf` when its symbols are
/// unprefixed, as here) and only finds it if the object holding it is linked:
/// it is in the same module as `configure`, which the binary calls.
#[no_mangle]
#[used]
#[allow(non_upper_case_globals)]
pub static malloc_conf: Option<&'static c_char> = Some(
    // SAFETY: a pointer to the first byte of a 'static C string literal.
    unsafe { &*MALLOC_CONF.as_ptr() },
);

/// What [`malloc_conf`] points at.
///
/// `tcache:false` turns off jemalloc's per-thread caches. They keep freed
/// objects for reuse and pin the pages those objects sit on: after a spike of
/// 9000 connections, with the caches on, 3.8 MiB of pages stayed active for
/// 0.7 MiB of live allocations (RSS settled at baseline + 3.4 MiB); with them
/// off, baseline + 0.7 MiB. The connection rate at concurrency 64 did not
/// change measurably (the relay allocates nothing per byte). `MALLOC_CONF` in
/// the environment still overrides this.
pub const MALLOC_CONF: &CStr =
    c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,tcache:false";

/// `MALLCTL_ARENAS_ALL` from jemalloc.h: addresses every arena at once.
const ARENAS_ALL: usize = 4096;

extern "C" {
    /// jemalloc's control interface. `tikv-jemalloc-ctl` offers no way to
    /// call a control that takes neither input nor output (`purge`), so it is
    /// declared here; the symbol is unprefixed on Linux.
    fn mallctl(
        name: *const c_char,
        oldp: *mut c_void,
        oldlenp: *mut usize,
        newp: *mut c_void,
        newlen: usize,
    ) -> c_int;
}

/// Settings jemalloc runs with now.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AllocatorSettings {
    pub background_thread: bool,
    pub dirty_decay_ms: i64,
    pub muzzy_decay_ms: i64,
    pub narenas: u32,
}

/// jemalloc's own accounting, in bytes, as of the last epoch advance.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes the application holds.
    pub allocated: u64,
    /// Bytes in pages with live allocations (>= allocated).
    pub active: u64,
    /// Bytes jemalloc has resident: active, its metadata, and dirty pages
    /// not purged yet.
    pub resident: u64,
    /// Bytes in mapped extents (active and dirty).
    pub mapped: u64,
    /// Virtual memory kept mapped but released to the OS (costs no RSS).
    pub retained: u64,
    /// Allocator bookkeeping.
    pub metadata: u64,
}

pub(super) fn stats() -> Result<AllocatorStats, tikv_jemalloc_ctl::Error> {
    // Statistics are snapshots refreshed by advancing the epoch.
    epoch::advance()?;
    Ok(AllocatorStats {
        allocated: stats::allocated::read()? as u64,
        active: stats::active::read()? as u64,
        resident: stats::resident::read()? as u64,
        mapped: stats::mapped::read()? as u64,
        retained: stats::retained::read()? as u64,
        metadata: stats::metadata::read()? as u64,
    })
}

pub(super) fn settings() -> Result<AllocatorSettings, tikv_jemalloc_ctl::Error> {
    // SAFETY: each name is read with the C type jemalloc documents for it
    // (ssize_t for decay times).
    let (dirty, muzzy) = unsafe {
        (
            raw::read::<isize>(b"arenas.dirty_decay_ms\0")?,
            raw::read::<isize>(b"arenas.muzzy_decay_ms\0")?,
        )
    };
    Ok(AllocatorSettings {
        background_thread: background_thread::read()?,
        dirty_decay_ms: dirty as i64,
        muzzy_decay_ms: muzzy as i64,
        narenas: tikv_jemalloc_ctl::arenas::narenas::read()?,
    })
}

/// Sets the decay times for arenas created from now on and for every arena
/// that already exists, and turns background purging threads on.
pub(super) fn apply(dirty: Duration, muzzy: Duration) -> Result<(), tikv_jemalloc_ctl::Error> {
    let dirty = decay_ms(dirty);
    let muzzy = decay_ms(muzzy);
    // SAFETY: the decay controls take a ssize_t.
    unsafe {
        raw::write(b"arenas.dirty_decay_ms\0", dirty)?;
        raw::write(b"arenas.muzzy_decay_ms\0", muzzy)?;
    }
    let narenas = tikv_jemalloc_ctl::arenas::narenas::read()?;
    for arena in 0..narenas {
        let name = format!("arena.{arena}.dirty_decay_ms\0");
        // SAFETY: as above. Arenas that were never used answer EFAULT; they
        // take the `arenas.*` defaults when they are created.
        let _ = unsafe { raw::write(name.as_bytes(), dirty) };
        let name = format!("arena.{arena}.muzzy_decay_ms\0");
        // SAFETY: as above.
        let _ = unsafe { raw::write(name.as_bytes(), muzzy) };
    }
    background_thread::write(true)
}

fn decay_ms(decay: Duration) -> isize {
    isize::try_from(decay.as_millis()).unwrap_or(isize::MAX)
}

/// Returns all dirty and muzzy pages of every arena to the OS now. Takes
/// arena locks and issues `madvise` calls: run it off the runtime's workers.
pub(super) fn purge_all() -> Result<(), std::io::Error> {
    let name = format!("arena.{ARENAS_ALL}.purge\0");
    // SAFETY: `purge` takes no input and returns nothing; all pointers are
    // null and the name is NUL-terminated.
    let rc = unsafe {
        mallctl(
            name.as_ptr().cast(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    match rc {
        0 => Ok(()),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}
