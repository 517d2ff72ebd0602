//! Short connections: SOCKS5 handshake, CONNECT, a small echo, close,
//! measured as connections per second and latency percentiles, against the
//! same exchange made directly with the echo server. Rounds alternate which
//! path goes first; the report gives medians over rounds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::cli::RateArgs;
use crate::dial::{Dialer, Proxy};
use crate::fail::{FailCounts, FailKind};
use crate::servers::{loopback, Server, Service};
use crate::socks::Target;
use crate::stats::{median, ratio};

/// Latencies above this are recorded as this (µs); the op timeout is lower.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// When a round stops: after a number of connections or at a time.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Count(u64),
    At(Instant),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Round {
    pub ok: u64,
    pub failed: u64,
    pub conn_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PathResult {
    pub rounds: Vec<Round>,
    pub conn_per_s: Option<f64>,
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
    pub payload_bytes: u32,
    pub seconds_per_round: Option<f64>,
    pub count_per_round: Option<u64>,
    pub rounds: u32,
    pub cases: Vec<Case>,
    pub errors_total: u64,
    pub errors: BTreeMap<String, u64>,
    #[serde(skip)]
    pub fails: FailCounts,
}

pub async fn run(args: &RateArgs) -> anyhow::Result<Report> {
    let echo = Server::start(loopback(), Service::Echo)
        .await
        .context("starting echo server")?;
    let dest = Arc::new(Target::Addr(echo.addr));
    let proxy = Proxy {
        addr: args.proxy.clone(),
        credentials: args.auth.credentials(),
    };
    // Nagle would hold back the 32-byte echo and measure the kernel's delay.
    let mut via = Dialer::via(proxy, args.timeout);
    via.nodelay = true;
    let mut direct = Dialer::direct(args.timeout);
    direct.nodelay = true;
    let dialers = [Arc::new(via), Arc::new(direct)];
    let payload: Arc<[u8]> = (0..args.payload).map(|i| (i % 251) as u8).collect();

    let mut cases: Vec<Case> = args
        .concurrency
        .iter()
        .map(|&c| Case {
            concurrency: c.max(1),
            proxy: PathResult::default(),
            direct: PathResult::default(),
            rate_ratio: None,
            p50_ratio: None,
            p99_ratio: None,
        })
        .collect();
    let mut fails = FailCounts::default();
    for round in 0..args.rounds {
        for case in &mut cases {
            let order = if round.is_multiple_of(2) {
                [0, 1]
            } else {
                [1, 0]
            };
            for i in order {
                let stop = match args.count {
                    Some(n) => Stop::Count(n),
                    None => Stop::At(Instant::now() + args.seconds),
                };
                let (r, f) = one_round(
                    &dialers[i],
                    &dest,
                    &payload,
                    case.concurrency,
                    stop,
                    args.timeout,
                )
                .await;
                let name = if i == 0 { "proxy" } else { "direct" };
                eprintln!(
                    "round {}/{} c={} {name}: {:.0} conn/s, p50 {} us, p99 {} us, {} failed",
                    round + 1,
                    args.rounds,
                    case.concurrency,
                    r.conn_per_s,
                    r.p50_us,
                    r.p99_us,
                    r.failed
                );
                fails.merge(f);
                let path = if i == 0 {
                    &mut case.proxy
                } else {
                    &mut case.direct
                };
                path.rounds.push(r);
            }
        }
    }
    for c in &mut cases {
        for p in [&mut c.proxy, &mut c.direct] {
            let med = |f: fn(&Round) -> f64| {
                median(
                    &p.rounds
                        .iter()
                        .filter(|r| r.ok > 0)
                        .map(f)
                        .collect::<Vec<_>>(),
                )
            };
            p.conn_per_s = med(|r| r.conn_per_s);
            p.p50_us = med(|r| r.p50_us as f64);
            p.p99_us = med(|r| r.p99_us as f64);
            p.p999_us = med(|r| r.p999_us as f64);
        }
        c.rate_ratio = ratio(c.proxy.conn_per_s, c.direct.conn_per_s);
        c.p50_ratio = ratio(c.proxy.p50_us, c.direct.p50_us);
        c.p99_ratio = ratio(c.proxy.p99_us, c.direct.p99_us);
    }
    Ok(Report {
        proxy: args.proxy.to_string(),
        payload_bytes: args.payload,
        seconds_per_round: args.count.is_none().then_some(args.seconds.as_secs_f64()),
        count_per_round: args.count,
        rounds: args.rounds,
        cases,
        errors_total: fails.total(),
        errors: fails.to_map(),
        fails,
    })
}

/// `concurrency` workers run exchanges until the stop condition; each keeps
/// its own histogram and counts, merged at the end.
async fn one_round(
    dialer: &Arc<Dialer>,
    dest: &Arc<Target>,
    payload: &Arc<[u8]>,
    concurrency: usize,
    stop: Stop,
    limit: Duration,
) -> (Round, FailCounts) {
    let tickets = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (dialer, dest, payload, tickets) = (
            dialer.clone(),
            dest.clone(),
            payload.clone(),
            tickets.clone(),
        );
        workers.spawn(async move {
            let mut hist = new_histogram();
            let mut fails = FailCounts::default();
            loop {
                let go = match stop {
                    Stop::Count(n) => tickets.fetch_add(1, Ordering::Relaxed) < n,
                    Stop::At(t) => Instant::now() < t,
                };
                if !go {
                    break;
                }
                let t0 = Instant::now();
                match tokio::time::timeout(limit, exchange(&dialer, &dest, &payload)).await {
                    Ok(Ok(())) => {
                        let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                        hist.saturating_record(us.max(1));
                    }
                    Ok(Err(k)) => fails.add(k),
                    Err(_) => fails.add(FailKind::Timeout),
                }
            }
            (hist, fails)
        });
    }
    let mut hist = new_histogram();
    let mut fails = FailCounts::default();
    while let Some(done) = workers.join_next().await {
        match done {
            Ok((h, f)) => {
                // Same bounds on both sides, so adding cannot fail.
                let _ = hist.add(h);
                fails.merge(f);
            }
            Err(e) => fails.add(FailKind::Other(format!("worker: {e}"))),
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let round = Round {
        ok: hist.len(),
        failed: fails.total(),
        conn_per_s: hist.len() as f64 / secs,
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
    };
    (round, fails)
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant bounds are valid")
}

/// Connect (and handshake), send the payload, read it back, close.
async fn exchange(dialer: &Dialer, dest: &Target, payload: &[u8]) -> Result<(), FailKind> {
    let mut s = dialer.dial(dest).await?;
    let io = |e: std::io::Error| FailKind::from_io(&e);
    s.write_all(payload).await.map_err(io)?;
    let mut back = vec![0u8; payload.len()];
    s.read_exact(&mut back).await.map_err(io)?;
    if back != payload {
        return Err(FailKind::BadEcho);
    }
    Ok(())
}

pub fn render_text(r: &Report) -> String {
    let per = match (r.count_per_round, r.seconds_per_round) {
        (Some(n), _) => format!("{n} connections"),
        (_, Some(s)) => format!("{s:.1} s"),
        _ => String::new(),
    };
    let mut o = format!(
        "connection rate via {} against direct: {}-byte echo, {per} per round, {} rounds (medians)\n\
         conc  path         conn/s     p50 us     p99 us   p99.9 us\n",
        r.proxy, r.payload_bytes, r.rounds
    );
    let f = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.0}"));
    let x = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.2}x"));
    for c in &r.cases {
        for (name, p) in [("proxy", &c.proxy), ("direct", &c.direct)] {
            o.push_str(&format!(
                "{:>4}  {name:<7} {:>11} {:>10} {:>10} {:>10}\n",
                c.concurrency,
                f(p.conn_per_s),
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
        o.push_str(&format!("errors: {}\n", r.fails.total()));
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

    fn args(proxy: &str, extra: &[&str]) -> RateArgs {
        let mut argv = vec!["pulse", "rate", "--proxy", proxy, "--rounds", "2"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Rate(a) => a,
            _ => unreachable!(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counts_connections_and_percentiles() {
        let proxy = crate::test_proxy::start().await;
        let a = args(
            &proxy.addr.to_string(),
            &["--count", "40", "--concurrency", "1,4"],
        );
        let r = run(&a).await.unwrap();
        assert!(r.fails.is_empty(), "{:?}", r.errors);
        assert_eq!(r.cases.len(), 2);
        for c in &r.cases {
            for p in [&c.proxy, &c.direct] {
                assert_eq!(p.rounds.len(), 2);
                assert!(p.rounds.iter().all(|x| x.ok == 40 && x.p50_us > 0));
                assert!(p.p50_us <= p.p99_us && p.p99_us <= p.p999_us);
            }
            assert!(c.rate_ratio.unwrap() > 0.0);
        }
        assert!(render_text(&r).contains("ratio"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_proxy_is_counted_not_hidden() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let a = args(&closed.to_string(), &["--count", "5", "--concurrency", "1"]);
        let r = run(&a).await.unwrap();
        assert_eq!(r.errors["refused"], 10);
        assert_eq!(r.cases[0].proxy.conn_per_s, None);
        assert!(r.cases[0].direct.conn_per_s.is_some());
        assert!(render_text(&r).contains("connection refused"));
    }
}
