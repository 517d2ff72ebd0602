//! `pulse udp`: datagrams per second and round-trip latency of small
//! datagrams through a SOCKS5 UDP association, against the same exchange
//! sent straight to the same UDP echo server, in one run. Each flow is one
//! socket (and, through the proxy, one association) sending a datagram and
//! waiting for its echo before the next; `--concurrency` flows run at once.
//! Rounds alternate which path goes first; the report gives medians.
//!
//! `pulse udp-idle` (`idle.rs`): the server's memory per idle association.

mod flow;
mod idle;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::cli::UdpArgs;
use crate::fail::{FailCounts, FailKind};
use crate::stats::{median, ratio};

pub use flow::{associate, parse_udp_reply, start_echo, udp_header, Associated, Flow};
pub use idle::{render_idle, run_idle, IdleReport};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Round {
    pub ok: u64,
    pub lost: u64,
    pub datagrams_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PathResult {
    pub rounds: Vec<Round>,
    pub datagrams_per_s: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub concurrency: usize,
    pub proxy: PathResult,
    pub direct: PathResult,
    /// proxy / direct of the medians.
    pub rate_ratio: Option<f64>,
    pub p50_ratio: Option<f64>,
    pub p99_ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub proxy: String,
    pub echo: String,
    pub size_bytes: usize,
    pub seconds_per_round: f64,
    pub rounds: u32,
    pub cases: Vec<Case>,
    pub errors: BTreeMap<String, u64>,
    #[serde(skip)]
    pub fails: FailCounts,
}

pub async fn run(args: &UdpArgs) -> anyhow::Result<Report> {
    let echo = start_echo(args.echo_bind).context("starting the UDP echo server")?;
    let mut fails = FailCounts::default();
    let mut cases = Vec::new();
    for &concurrency in &args.concurrency {
        let concurrency = concurrency.max(1);
        // Flows are set up once per case, outside the measured rounds.
        let mut proxy_flows = Vec::with_capacity(concurrency);
        let mut direct_flows = Vec::with_capacity(concurrency);
        for _ in 0..concurrency {
            let via = tokio::time::timeout(
                args.timeout,
                associate(&args.proxy, args.auth.credentials().as_ref()),
            )
            .await
            .map_err(|_| FailKind::Timeout)
            .and_then(|r| r);
            match via {
                Ok(via) => proxy_flows.push(Flow::new(echo, Some(via), args.size as usize).await?),
                Err(kind) => fails.add(kind),
            }
            direct_flows.push(Flow::new(echo, None, args.size as usize).await?);
        }
        let mut case = Case {
            concurrency,
            proxy: PathResult::default(),
            direct: PathResult::default(),
            rate_ratio: None,
            p50_ratio: None,
            p99_ratio: None,
        };
        for round in 0..args.rounds {
            let proxy_first = round.is_multiple_of(2);
            for is_proxy in [proxy_first, !proxy_first] {
                let flows = if is_proxy {
                    std::mem::take(&mut proxy_flows)
                } else {
                    std::mem::take(&mut direct_flows)
                };
                let (r, back, f) = one_round(flows, args.seconds, args.timeout).await;
                let name = if is_proxy { "proxy" } else { "direct" };
                eprintln!(
                    "round {}/{} c={concurrency} {name}: {:.0} datagrams/s, p50 {} us, p99 {} us, {} lost",
                    round + 1,
                    args.rounds,
                    r.datagrams_per_s,
                    r.p50_us,
                    r.p99_us,
                    r.lost
                );
                fails.merge(f);
                if is_proxy {
                    proxy_flows = back;
                    case.proxy.rounds.push(r);
                } else {
                    direct_flows = back;
                    case.direct.rounds.push(r);
                }
            }
        }
        summarise(&mut case);
        cases.push(case);
    }
    Ok(Report {
        proxy: args.proxy.to_string(),
        echo: echo.to_string(),
        size_bytes: args.size as usize,
        seconds_per_round: args.seconds.as_secs_f64(),
        rounds: args.rounds,
        cases,
        errors: fails.to_map(),
        fails,
    })
}

fn summarise(c: &mut Case) {
    for p in [&mut c.proxy, &mut c.direct] {
        let med = |f: fn(&Round) -> f64| {
            let v: Vec<f64> = p.rounds.iter().filter(|r| r.ok > 0).map(f).collect();
            median(&v)
        };
        p.datagrams_per_s = med(|r| r.datagrams_per_s);
        p.p50_us = med(|r| r.p50_us as f64);
        p.p99_us = med(|r| r.p99_us as f64);
        p.p999_us = med(|r| r.p999_us as f64);
    }
    c.rate_ratio = ratio(c.proxy.datagrams_per_s, c.direct.datagrams_per_s);
    c.p50_ratio = ratio(c.proxy.p50_us, c.direct.p50_us);
    c.p99_ratio = ratio(c.proxy.p99_us, c.direct.p99_us);
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

/// Every flow runs round trips until `seconds` pass; the flows come back
/// for the next round.
async fn one_round(
    flows: Vec<Flow>,
    seconds: Duration,
    limit: Duration,
) -> (Round, Vec<Flow>, FailCounts) {
    let start = Instant::now();
    let stop = start + seconds;
    let mut workers = JoinSet::new();
    for mut flow in flows {
        workers.spawn(async move {
            let mut hist = new_histogram();
            let mut fails = FailCounts::default();
            while Instant::now() < stop {
                let t0 = Instant::now();
                match flow.round_trip(limit).await {
                    Ok(()) => {
                        let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                        hist.saturating_record(us.max(1));
                    }
                    Err(kind) => fails.add(kind),
                }
            }
            (flow, hist, fails)
        });
    }
    let mut hist = new_histogram();
    let mut fails = FailCounts::default();
    let mut back = Vec::new();
    while let Some(done) = workers.join_next().await {
        match done {
            Ok((flow, h, f)) => {
                let _ = hist.add(h);
                fails.merge(f);
                back.push(flow);
            }
            Err(e) => fails.add(FailKind::Other(format!("worker: {e}"))),
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let round = Round {
        ok: hist.len(),
        lost: fails.total(),
        datagrams_per_s: hist.len() as f64 / secs,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
    };
    (round, back, fails)
}

pub fn render_text(r: &Report) -> String {
    let mut o = format!(
        "UDP round trips via {} against direct to {}: {}-byte datagrams, {:.1} s per round, {} rounds (medians)\n\
         conc  path    datagrams/s     p50 us     p99 us   p99.9 us\n",
        r.proxy, r.echo, r.size_bytes, r.seconds_per_round, r.rounds
    );
    let f = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
    let x = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.2}x"));
    for c in &r.cases {
        for (name, p) in [("proxy", &c.proxy), ("direct", &c.direct)] {
            o.push_str(&format!(
                "{:>4}  {name:<7} {:>11} {:>10} {:>10} {:>10}\n",
                c.concurrency,
                f(p.datagrams_per_s),
                f(p.p50_us),
                f(p.p99_us),
                f(p.p999_us)
            ));
        }
        o.push_str(&format!(
            "{:>4}  {:<7} {:>11} {:>10} {:>10}\n",
            c.concurrency,
            "ratio",
            x(c.rate_ratio),
            x(c.p50_ratio),
            x(c.p99_ratio)
        ));
    }
    if r.fails.is_empty() {
        o.push_str("errors: none\n");
    } else {
        o.push_str(&format!(
            "errors (timeouts are lost datagrams): {}\n",
            r.fails.total()
        ));
        for l in r.fails.lines() {
            o.push_str(&format!("  {l}\n"));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(proxy: &str, extra: &[&str]) -> UdpArgs {
        let mut argv = vec!["pulse", "udp", "--proxy", proxy, "--rounds", "2"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Udp(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn options_have_their_defaults_and_bounds() {
        let a = args("127.0.0.1:1080", &[]);
        assert_eq!((a.size, a.concurrency.clone()), (512, vec![1, 16]));
        let argv = ["pulse", "udp", "--proxy", "127.0.0.1:1080", "--size", "4"];
        assert!(
            crate::cli::Cli::try_parse_from(argv).is_err(),
            "below 8 bytes"
        );
    }

    /// With no proxy listening, every association fails and is counted,
    /// and the direct path is still measured.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_proxy_is_counted_and_direct_still_measured() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let a = args(
            &closed.to_string(),
            &["--seconds", "0.2", "--concurrency", "2"],
        );
        let r = run(&a).await.unwrap();
        assert_eq!(r.errors["refused"], 2);
        let case = &r.cases[0];
        assert_eq!(case.proxy.datagrams_per_s, None);
        assert!(case.direct.datagrams_per_s.unwrap() > 0.0);
        assert!(case.direct.p50_us.unwrap() <= case.direct.p99_us.unwrap());
        assert!(render_text(&r).contains("ratio"));
    }
}
