use std::time::{Duration, Instant};

use super::*;

fn config() -> MemoryConfig {
    MemoryConfig::default()
}

/// Waits for `done` with a deadline; for state another thread changes.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn jemalloc_starts_with_the_baked_in_options() {
    // Proves the `malloc_conf` symbol is linked and read by jemalloc.
    // SAFETY: opt.background_thread is a bool.
    assert!(unsafe { tikv_jemalloc_ctl::raw::read::<bool>(b"opt.background_thread\0") }.unwrap());
    // SAFETY: opt.dirty_decay_ms is a ssize_t.
    let dirty = unsafe { tikv_jemalloc_ctl::raw::read::<isize>(b"opt.dirty_decay_ms\0") }.unwrap();
    assert_eq!(dirty, 1000);
}

#[test]
fn configure_applies_decay_background_threads_and_thp() {
    let mut custom = config();
    custom.dirty_decay_ms = 700;
    configure(&custom).unwrap();
    let settings = jemalloc::settings().unwrap();
    assert_eq!(settings.dirty_decay_ms, 700);
    assert_eq!(settings.muzzy_decay_ms, 0);
    assert!(settings.background_thread);
    assert_eq!(thp_disabled(), Some(true));
    configure(&config()).unwrap();
    assert_eq!(jemalloc::settings().unwrap().dirty_decay_ms, 1000);
}

#[test]
fn a_reading_has_rss_and_allocator_figures() {
    let report = read();
    let rss = report.rss_bytes.unwrap();
    let anon = report.rss_anon_bytes.unwrap();
    assert!(rss > 0 && anon > 0 && anon <= rss, "{report:?}");
    let allocator = report.allocator.unwrap();
    assert!(allocator.allocated > 0 && allocator.allocated <= allocator.active);
    assert!(allocator.active <= allocator.resident, "{allocator:?}");
    assert_eq!(report.open_connections, None);
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["allocator"]["retained"].is_u64(), "{json}");
    assert!(rss_bytes().unwrap() > 0);
}

#[test]
fn status_lines_parse_in_kib() {
    let status = "Name:\tx\nVmRSS:\t   12345 kB\nRssAnon:\t  678 kB\nThreads:\t3\n";
    assert_eq!(status_kib(status, "VmRSS:"), Some(12345));
    assert_eq!(status_kib(status, "RssAnon:"), Some(678));
    assert_eq!(status_kib(status, "RssFile:"), None);
    // A count, not a size: without the unit it is no reading in KiB.
    assert_eq!(status_kib(status, "Threads:"), None);
}

#[test]
fn the_monitor_counts_connections() {
    let monitor = MemoryMonitor::new(&config());
    for _ in 0..3 {
        monitor.connection_opened();
    }
    monitor.connection_closed();
    let report = monitor.report();
    println!("{}", serde_json::to_string(&report).unwrap());
    assert_eq!(report.open_connections, Some(2));
    assert_eq!(report.purge.unwrap().count, 0);
}

#[test]
fn a_sharp_drop_purges_once_off_the_caller_thread() {
    let monitor = MemoryMonitor::new(&config());
    for _ in 0..1000 {
        monitor.connection_opened();
    }
    // A small drop does nothing.
    for _ in 0..100 {
        monitor.connection_closed();
    }
    assert_eq!(monitor.report().purge.unwrap().count, 0);
    // Falling below half of the peak requests a purge; the rest of the drop
    // is covered by it (requests are coalesced).
    let started = Instant::now();
    for _ in 0..900 {
        monitor.connection_closed();
    }
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "closing must not wait for the purge"
    );
    eventually("a purge", || monitor.report().purge.unwrap().count >= 1);
    let purge = monitor.report().purge.unwrap();
    assert!(purge.count <= 2, "{purge:?}");
    assert!(purge.last_unix_ms.is_some() && purge.last_duration_us.is_some());
}

#[test]
fn small_counts_never_purge() {
    let monitor = MemoryMonitor::new(&config());
    for _ in 0..20 {
        monitor.connection_opened();
        monitor.connection_opened();
        monitor.connection_closed();
        monitor.connection_closed();
    }
    assert_eq!(monitor.report().purge.unwrap().count, 0);
}

#[test]
fn a_zero_fraction_turns_purges_off() {
    let mut off = config();
    off.purge_drop_fraction = 0.0;
    let monitor = MemoryMonitor::new(&off);
    for _ in 0..500 {
        monitor.connection_opened();
    }
    for _ in 0..500 {
        monitor.connection_closed();
    }
    assert_eq!(monitor.report().purge.unwrap().count, 0);
}

#[test]
fn the_purge_thread_ends_with_the_monitor() {
    let monitor = MemoryMonitor::new(&config());
    monitor.request_purge();
    eventually("a purge", || monitor.report().purge.unwrap().count == 1);
    let purger = monitor.purger();
    drop(monitor);
    eventually("the purge thread to exit", || purger.upgrade().is_none());
}
