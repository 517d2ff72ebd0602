//! Slowloris: thousands of connections that send part of a SOCKS5 greeting
//! and stall. Measures, in one run, a legitimate client's CONNECT latency
//! before, during and after the attack, and checks that the server closes
//! every stalled connection at its handshake deadline: not before (that
//! would cut off slow but honest clients), not much after (that would let
//! the attack pile up).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::cli::SlowlorisArgs;
use crate::dial::{Dialer, Proxy};
use crate::fail::{FailCounts, FailKind};
use crate::servers::{loopback, Server, Service};
use crate::socks::Target;
use crate::stats::ratio;

/// Three bytes of a four-byte greeting: version 5, two methods, only one of
/// them sent. A server must wait for the fourth byte, up to its deadline.
pub const PARTIAL_GREETING: [u8; 3] = [0x05, 0x02, 0x00];
/// A close this much before the deadline counts as early: the server's
/// clock starts at accept, a little after our connect returns.
const EARLY_TOLERANCE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Default, Serialize)]
pub struct Phase {
    pub samples: u64,
    pub failed: u64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stalled {
    pub wanted: usize,
    pub opened: u64,
    pub open_seconds: f64,
    /// Closed by the server within deadline + slack (EOF or reset).
    pub closed: u64,
    pub closed_by_reset: u64,
    /// Closed sooner than the deadline (minus a small tolerance).
    pub early: u64,
    /// Still open at deadline + slack.
    pub still_open: u64,
    /// The server sent bytes in answer to a partial greeting.
    pub answered: u64,
    /// Seconds from connect to the server's close, over closed connections.
    pub closed_after_min_s: Option<f64>,
    pub closed_after_p50_s: Option<f64>,
    pub closed_after_p99_s: Option<f64>,
    pub closed_after_max_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub proxy: String,
    pub deadline_s: f64,
    pub slack_s: f64,
    pub before: Phase,
    pub during: Phase,
    pub after: Phase,
    /// during / before.
    pub p50_ratio: Option<f64>,
    pub p99_ratio: Option<f64>,
    pub max_ratio: f64,
    pub stalled: Stalled,
    /// Why the run failed its checks; empty when it passed.
    pub problems: Vec<String>,
    pub errors: std::collections::BTreeMap<String, u64>,
    #[serde(skip)]
    pub fails: FailCounts,
}

pub async fn run(args: &SlowlorisArgs) -> anyhow::Result<Report> {
    let echo = Server::start(loopback(), Service::Echo).await?;
    let dest = Target::Addr(echo.addr);
    let mut legit = Dialer::via(
        Proxy {
            addr: args.proxy.clone(),
            credentials: args.auth.credentials(),
        },
        args.timeout,
    );
    legit.nodelay = true;
    let deadline = args.handshake_deadline;
    let mut fails = FailCounts::default();

    let before = measure(&legit, &dest, args.samples, None, &mut fails).await;
    eprintln!("before: {}", phase_line(&before));

    let (opened_tx, mut opened_rx) = mpsc::channel(args.stalled.max(1));
    let mut attackers = JoinSet::new();
    let gate = Arc::new(Semaphore::new(args.concurrency as usize));
    let started = Instant::now();
    for _ in 0..args.stalled {
        let (proxy, gate, tx) = (args.proxy.clone(), gate.clone(), opened_tx.clone());
        let hold = deadline + args.slack;
        let open_timeout = args.timeout;
        attackers.spawn(async move { stall(proxy, gate, tx, hold, open_timeout).await });
    }
    drop(opened_tx);
    // Every stalled connection open (or failed) before the legitimate client
    // measures: it then competes with all of them at once.
    let mut first_open = None::<Instant>;
    let mut opened = 0u64;
    while let Some(result) = opened_rx.recv().await {
        match result {
            Ok(at) => {
                opened += 1;
                first_open = Some(first_open.map_or(at, |f: Instant| f.min(at)));
            }
            Err(kind) => fails.add(kind),
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{opened} of {} stalled connections open in {open_seconds:.2} s",
        args.stalled
    );
    // Measure only while all of them are still held: stop a margin before
    // the first one reaches the deadline.
    let window_end = first_open.map(|f| f + deadline.mul_f64(0.9));
    let during = measure(&legit, &dest, args.samples, window_end, &mut fails).await;
    eprintln!("during: {}", phase_line(&during));

    let mut closed_after = Vec::with_capacity(args.stalled);
    let mut stalled = Stalled {
        wanted: args.stalled,
        opened,
        open_seconds,
        ..Stalled::default()
    };
    while let Some(done) = attackers.join_next().await {
        match done {
            Ok(Some(StallEnd::Closed { after, reset })) => {
                stalled.closed += 1;
                stalled.closed_by_reset += u64::from(reset);
                if after + EARLY_TOLERANCE < deadline {
                    stalled.early += 1;
                }
                closed_after.push(after.as_secs_f64());
            }
            Ok(Some(StallEnd::StillOpen)) => stalled.still_open += 1,
            Ok(Some(StallEnd::Answered)) => stalled.answered += 1,
            Ok(None) => {}
            Err(e) => fails.add(FailKind::Other(format!("stall task: {e}"))),
        }
    }
    closed_after.sort_by(f64::total_cmp);
    let pick = |q: f64| quantile(&closed_after, q);
    stalled.closed_after_min_s = closed_after.first().copied();
    stalled.closed_after_p50_s = pick(0.5);
    stalled.closed_after_p99_s = pick(0.99);
    stalled.closed_after_max_s = closed_after.last().copied();

    let after = measure(&legit, &dest, args.samples, None, &mut fails).await;
    eprintln!("after: {}", phase_line(&after));
    let mut report = Report {
        proxy: args.proxy.to_string(),
        deadline_s: deadline.as_secs_f64(),
        slack_s: args.slack.as_secs_f64(),
        p50_ratio: ratio(during.p50_ms, before.p50_ms),
        p99_ratio: ratio(during.p99_ms, before.p99_ms),
        max_ratio: args.max_ratio,
        before,
        during,
        after,
        stalled,
        problems: Vec::new(),
        errors: fails.to_map(),
        fails,
    };
    report.problems = problems(&report);
    Ok(report)
}

enum StallEnd {
    Closed { after: Duration, reset: bool },
    StillOpen,
    Answered,
}

/// One stalled connection: connect, send the partial greeting, report that
/// it is open, then wait (up to `hold`) for the server to close it. `None`
/// when it never opened (the failure went through `opened`).
async fn stall(
    proxy: Target,
    gate: Arc<Semaphore>,
    opened: mpsc::Sender<Result<Instant, FailKind>>,
    hold: Duration,
    open_timeout: Duration,
) -> Option<StallEnd> {
    let open = async {
        let _permit = gate.acquire().await.map_err(|_| FailKind::Deadline)?;
        let mut stream = match &proxy {
            Target::Addr(a) => TcpStream::connect(a).await,
            Target::Domain(h, p) => TcpStream::connect((h.as_str(), *p)).await,
        }
        .map_err(|e| FailKind::from_io(&e))?;
        let connected = Instant::now();
        stream
            .write_all(&PARTIAL_GREETING)
            .await
            .map_err(|e| FailKind::from_io(&e))?;
        Ok::<_, FailKind>((stream, connected))
    };
    let (mut stream, connected) = match tokio::time::timeout(open_timeout, open).await {
        Ok(Ok(opened_stream)) => opened_stream,
        Ok(Err(kind)) => {
            let _ = opened.send(Err(kind)).await;
            return None;
        }
        Err(_) => {
            let _ = opened.send(Err(FailKind::Timeout)).await;
            return None;
        }
    };
    let _ = opened.send(Ok(connected)).await;
    drop(opened);
    let mut buf = [0u8; 64];
    let end = tokio::time::timeout_at((connected + hold).into(), stream.read(&mut buf)).await;
    Some(match end {
        Ok(Ok(0)) => StallEnd::Closed {
            after: connected.elapsed(),
            reset: false,
        },
        Ok(Ok(_)) => StallEnd::Answered,
        Ok(Err(_)) => StallEnd::Closed {
            after: connected.elapsed(),
            reset: true,
        },
        Err(_) => StallEnd::StillOpen,
    })
}

/// Up to `samples` legitimate CONNECTs one after another, each timed from
/// the TCP connect to the success reply; stops early at `until`.
async fn measure(
    dialer: &Dialer,
    dest: &Target,
    samples: u64,
    until: Option<Instant>,
    fails: &mut FailCounts,
) -> Phase {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    let mut failed = 0;
    for _ in 0..samples {
        if until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        let t0 = Instant::now();
        match dialer.dial(dest).await {
            Ok(stream) => {
                let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                hist.saturating_record(us.max(1));
                drop(stream);
            }
            Err(kind) => {
                failed += 1;
                fails.add(kind);
            }
        }
    }
    let ms = |q: f64| (!hist.is_empty()).then(|| hist.value_at_quantile(q) as f64 / 1000.0);
    Phase {
        samples: hist.len(),
        failed,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: (!hist.is_empty()).then(|| hist.max() as f64 / 1000.0),
    }
}

/// The value at quantile `q` of sorted `values` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The checks the run must pass, as sentences; empty when all hold.
pub fn problems(r: &Report) -> Vec<String> {
    let s = &r.stalled;
    let mut out = Vec::new();
    let mut check = |bad: bool, text: String| {
        if bad {
            out.push(text);
        }
    };
    check(
        s.opened < s.wanted as u64,
        format!(
            "only {} of {} stalled connections opened",
            s.opened, s.wanted
        ),
    );
    check(
        s.still_open > 0,
        format!(
            "{} stalled connections still open {:.1} s after connect (deadline + slack)",
            s.still_open,
            r.deadline_s + r.slack_s
        ),
    );
    check(
        s.early > 0,
        format!("{} closed before the deadline", s.early),
    );
    check(
        s.answered > 0,
        format!("{} partial greetings were answered", s.answered),
    );
    check(
        r.during.samples == 0,
        "no legitimate CONNECT succeeded during the attack".into(),
    );
    for (name, v) in [("p50", r.p50_ratio), ("p99", r.p99_ratio)] {
        if let Some(v) = v.filter(|v| *v > r.max_ratio) {
            check(
                true,
                format!(
                    "{name} CONNECT latency during the attack is {v:.2}x, over {:.2}x",
                    r.max_ratio
                ),
            );
        }
    }
    check(
        !r.fails.is_empty(),
        format!("{} connections failed", r.fails.total()),
    );
    out
}

fn phase_line(p: &Phase) -> String {
    let f = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.3}"));
    format!(
        "{:>6} {:>6} {:>9} {:>9} {:>9}",
        p.samples,
        p.failed,
        f(p.p50_ms),
        f(p.p99_ms),
        f(p.max_ms)
    )
}

pub fn render_text(r: &Report) -> String {
    let s = &r.stalled;
    let secs = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.3}"));
    let x = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.2}x"));
    let mut o = format!(
        "slowloris via {}: {} connections send {} of a 4-byte greeting and stall; \
         handshake deadline {:.1} s (+{:.1} s slack)\n\
         legitimate CONNECT  samples failed    p50 ms    p99 ms    max ms\n",
        r.proxy,
        s.wanted,
        PARTIAL_GREETING.len(),
        r.deadline_s,
        r.slack_s
    );
    for (name, p) in [
        ("before attack", &r.before),
        ("during attack", &r.during),
        ("after attack", &r.after),
    ] {
        o.push_str(&format!("  {name:<15} {}\n", phase_line(p)));
    }
    o.push_str(&format!(
        "  during/before                   {:>9} {:>9}   (limit {:.2}x)\n",
        x(r.p50_ratio),
        x(r.p99_ratio),
        r.max_ratio
    ));
    o.push_str(&format!(
        "stalled: {} opened in {:.2} s; {} closed by the server ({} by reset), {} early, \
         {} still open, {} answered\n  closed after connect: min {} s, p50 {} s, p99 {} s, max {} s\n",
        s.opened,
        s.open_seconds,
        s.closed,
        s.closed_by_reset,
        s.early,
        s.still_open,
        s.answered,
        secs(s.closed_after_min_s),
        secs(s.closed_after_p50_s),
        secs(s.closed_after_p99_s),
        secs(s.closed_after_max_s)
    ));
    for l in r.fails.lines() {
        o.push_str(&format!("  error {l}\n"));
    }
    if r.problems.is_empty() {
        o.push_str("verdict: ok\n");
    } else {
        o.push_str("verdict: FAILED\n");
        for p in &r.problems {
            o.push_str(&format!("  - {p}\n"));
        }
    }
    o
}

#[cfg(test)]
#[path = "slowloris_tests.rs"]
mod tests;
