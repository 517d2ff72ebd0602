//! Real spike runs with tiny numbers against pulse's own sink (raw) and a
//! test SOCKS5 proxy (socks), sampling this test process's own memory.

use std::path::PathBuf;

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};
use crate::test_proxy;

fn out_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("pulse-test-{name}-{}", std::process::id()))
}

fn spike_args(big: &str, extra: &[&str], out: &std::path::Path) -> SpikeArgs {
    let pid = std::process::id().to_string();
    let mut argv = vec![
        "pulse",
        "spike",
        "--big",
        big,
        "--big-pulses",
        "1",
        "--big-gap",
        "0.1",
        "--small",
        "10",
        "--small-pulses",
        "1",
        "--small-gap",
        "0.1",
        "--linger",
        "0.2",
        "--tail",
        "0.5",
        "--baseline",
        "0.1",
        "--sample-ms",
        "20",
        "--pid",
        &pid,
    ];
    argv.extend_from_slice(extra);
    let out = out.to_str().unwrap().to_string();
    argv.extend_from_slice(&["--out", &out]);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Spike(a) => a,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_spike_against_own_sink() {
    let dir = out_dir("raw");
    let report = run(&spike_args("50", &[], &dir)).await.unwrap();
    let samples = &report.timeline.samples;
    assert!(samples.len() > 10, "{} samples", samples.len());
    assert_eq!(samples.iter().map(|s| s.open).max(), Some(50));
    assert_eq!(samples.last().unwrap().open, 0);
    assert!(samples.iter().all(|s| s.rss_bytes.is_some()));
    // The small pulse was seen holding its 10 connections.
    assert!(samples
        .iter()
        .any(|s| s.phase == "small 1/1 hold" && s.open == 10));
    let s = &report.summary;
    assert!(!report.failed, "{:?}", s.connection_errors);
    assert_eq!(s.connections_attempted, 60);
    assert!(s.memory.peak_rss_bytes.is_some());
    assert!(s.memory.small_steady_rss_bytes.is_some());
    assert!(s.memory.last_big_end_ms.is_some());
    for f in ["timeline.json", "timeline.csv", "summary.json", "chart.svg"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // The summary can serve as the control of a later run.
    let control = summary::load_control(&dir).unwrap();
    assert_eq!(control.max_open, 50);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks_spike_through_a_proxy() {
    let proxy = test_proxy::start().await;
    let dir = out_dir("socks");
    let target = proxy.addr.to_string();
    let args = spike_args("30", &["--mode", "socks", "--target", &target], &dir);
    let report = run(&args).await.unwrap();
    assert!(!report.failed, "{:?}", report.summary.connection_errors);
    assert_eq!(
        report.timeline.samples.iter().map(|s| s.open).max(),
        Some(30)
    );
    assert_eq!(report.summary.mode, "socks");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn unreachable_target_fails_before_measuring() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = out_dir("closed");
    let target = closed.to_string();
    let err = run(&spike_args("50", &["--target", &target], &dir))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("connection refused"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn failed_connects_count_by_socks_reply_code() {
    let proxy = test_proxy::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dialer = Arc::new(Dialer::via(
        Proxy {
            addr: Target::Addr(proxy.addr),
            credentials: None,
        },
        Duration::from_secs(5),
    ));
    let shared = Arc::new(Shared::new());
    let (held, fails) =
        pulses::open_many(4, 2, &dialer, &Arc::new(Target::Addr(closed)), &shared).await;
    assert!(held.is_empty());
    assert_eq!(fails.to_map()["socks_reply_05"], 4);
}

#[test]
fn deadline_covers_the_worst_case() {
    let steps = schedule::plan(
        (9000, 3, Duration::from_secs(5)),
        (1000, 3, Duration::from_secs(20)),
    );
    let d = deadline(&steps, 256, Duration::from_secs(10), Duration::from_secs(4));
    // Big: 36 waves of 10 s, 4 s hold, 5 s gap. Small: 4 waves, 4 s hold,
    // 20 s gap but none after the last. Plus 30 s of slack.
    let secs = 3 * (360 + 4 + 5) + 2 * (40 + 4 + 20) + (40 + 4) + 30;
    assert_eq!(d, Duration::from_secs(secs));
}
