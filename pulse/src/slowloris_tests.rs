use super::*;
use clap::Parser;

fn args(proxy: &str, extra: &[&str]) -> SlowlorisArgs {
    let mut argv = vec!["pulse", "slowloris", "--proxy", proxy];
    argv.extend_from_slice(extra);
    match crate::cli::Cli::try_parse_from(argv).unwrap().command {
        crate::cli::Command::Slowloris(a) => a,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_a_deadline_closes_every_stalled_connection_on_time() {
    let proxy = crate::test_proxy::start_with_deadline(Some(Duration::from_millis(400))).await;
    // The ratio check is pinned below; tiny loopback latencies are too noisy
    // for it here.
    let a = args(
        &proxy.addr.to_string(),
        &[
            "--stalled",
            "40",
            "--handshake-deadline-secs",
            "0.4",
            "--slack",
            "1",
            "--samples",
            "10",
            "--max-ratio",
            "1000",
        ],
    );
    let r = run(&a).await.unwrap();
    let s = &r.stalled;
    assert_eq!(
        (s.opened, s.closed, s.early, s.still_open, s.answered),
        (40, 40, 0, 0, 0)
    );
    assert!(s.closed_after_min_s.unwrap() >= 0.35, "{s:?}");
    assert!(r.during.samples > 0 && r.before.samples == 10 && r.after.samples == 10);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert!(render_text(&r).contains("verdict: ok"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_deadline_fails_the_run() {
    let proxy = crate::test_proxy::start().await;
    let a = args(
        &proxy.addr.to_string(),
        &[
            "--stalled",
            "10",
            "--handshake-deadline-secs",
            "0.2",
            "--slack",
            "0.2",
            "--samples",
            "5",
            "--max-ratio",
            "1000",
        ],
    );
    let r = run(&a).await.unwrap();
    assert_eq!((r.stalled.opened, r.stalled.still_open), (10, 10));
    assert!(
        r.problems.iter().any(|p| p.contains("still open")),
        "{:?}",
        r.problems
    );
    assert!(render_text(&r).contains("verdict: FAILED"));
}

#[test]
fn latency_over_the_ratio_is_a_problem() {
    let phase = |p50, p99| Phase {
        samples: 100,
        failed: 0,
        p50_ms: Some(p50),
        p99_ms: Some(p99),
        max_ms: Some(p99),
    };
    let mut r = Report {
        proxy: "127.0.0.1:1080".into(),
        deadline_s: 5.0,
        slack_s: 2.0,
        before: phase(1.0, 2.0),
        during: phase(1.5, 5.0),
        after: phase(1.0, 2.0),
        p50_ratio: Some(1.5),
        p99_ratio: Some(2.5),
        max_ratio: 2.0,
        stalled: Stalled {
            wanted: 10,
            opened: 10,
            closed: 10,
            ..Stalled::default()
        },
        problems: Vec::new(),
        errors: Default::default(),
        fails: FailCounts::default(),
    };
    let found = problems(&r);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("p99") && found[0].contains("2.50x"),
        "{found:?}"
    );
    r.p99_ratio = Some(1.9);
    assert!(problems(&r).is_empty());
}

#[test]
fn quantiles_use_the_nearest_rank() {
    let v = [1.0, 2.0, 3.0, 4.0];
    assert_eq!(quantile(&v, 0.5), Some(2.0));
    assert_eq!(quantile(&v, 0.99), Some(4.0));
    assert_eq!(quantile(&[], 0.5), None);
}
