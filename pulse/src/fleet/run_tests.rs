//! Real fleet runs with tiny numbers: two test SOCKS5 proxies in this
//! process, so both "servers" report this process's RSS.

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};
use crate::test_proxy;

fn fleet_args(argv: &[&str]) -> FleetArgs {
    let mut all = vec!["pulse", "fleet"];
    all.extend_from_slice(argv);
    match Cli::try_parse_from(all).unwrap().command {
        Command::Fleet(a) => a,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_take_turns() {
    let (a, b) = (test_proxy::start().await, test_proxy::start().await);
    let out = std::env::temp_dir().join(format!("pulse-test-fleet-{}", std::process::id()));
    let pid = std::process::id().to_string();
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    let args = fleet_args(&[
        "--target",
        &a_addr,
        "--pid",
        &pid,
        "--target",
        &b_addr,
        "--pid",
        &pid,
        "--size",
        "20",
        "--rounds",
        "2",
        "--stagger",
        "0.5",
        "--linger",
        "0.1",
        "--baseline",
        "0.1",
        "--tail",
        "0.2",
        "--sample-ms",
        "10",
        "--out",
        out.to_str().unwrap(),
    ]);
    let report = run(&args).await.unwrap();
    assert!(!report.failed, "{:?}", report.summary.connection_errors);

    // Four spikes, servers alternating, each fully opened.
    let order: Vec<(usize, u32, usize)> = report
        .spans
        .iter()
        .map(|s| (s.server, s.round, s.opened))
        .collect();
    assert_eq!(order, [(0, 0, 20), (1, 0, 20), (0, 1, 20), (1, 1, 20)]);
    // Staggered: each spike starts after the previous one closed.
    for pair in report.spans.windows(2) {
        assert!(pair[1].start_ms >= pair[0].end_ms, "{pair:?}");
    }
    // While server 1 held its first spike, the sampler saw it and not server 2.
    let first = &report.spans[0];
    assert!(report
        .samples
        .iter()
        .any(|s| (first.start_ms..first.end_ms).contains(&s.t_ms) && s.open == [20, 0]));
    assert_eq!(report.samples.last().unwrap().open, [0, 0]);
    assert!(report.samples.iter().all(|s| s.sum_rss().is_some()));
    let s = &report.summary;
    assert_eq!((s.connections_attempted, s.spikes.len()), (80, 4));
    assert!(s.sum_peak_rss_bytes <= s.sum_of_peaks_rss_bytes);
    for f in ["fleet.json", "fleet.csv", "fleet.svg"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[tokio::test]
async fn every_target_needs_its_pid() {
    let args = fleet_args(&[
        "--target",
        "127.0.0.1:1",
        "--target",
        "127.0.0.1:2",
        "--pid",
        "1",
    ]);
    let err = run(&args).await.unwrap_err().to_string();
    assert!(err.contains("2 --target but 1 --pid"), "{err}");
}
