//! The spike experiment: a baseline, big pulses of connections, small
//! pulses, a tail, with the server's memory sampled throughout.
//!
//! Everything is checked before the first pulse (file limit, memory source,
//! a probe connection, the output directory, the control file), so a run
//! that would fail does so in the first second, not after minutes.

pub mod chart;
pub mod output;
pub mod pulses;
pub mod sampler;
pub mod schedule;
pub mod summary;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::cli::{Mode, SpikeArgs};
use crate::dial::{Dialer, Proxy};
use crate::fail::{FailCounts, FailKind};
use crate::fdlimit;
use crate::memory::Source;
use crate::servers::{loopback, Server, Service};
use crate::socks::Target;
use sampler::{Sampler, Shared};
use schedule::{Phases, Stage, Step};
use summary::Summary;

/// Slack on top of the worst case each pulse may take.
const DEADLINE_SLACK: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct SpikeReport {
    pub summary: Summary,
    pub timeline: output::Timeline,
    /// Connections or memory reads failed.
    pub failed: bool,
}

/// The longest the pulses may take: every connection of a pulse timing out
/// in `concurrency`-sized waves, plus holds and gaps.
pub fn deadline(
    steps: &[Step],
    concurrency: usize,
    connect_timeout: Duration,
    linger: Duration,
) -> Duration {
    steps.iter().fold(DEADLINE_SLACK, |acc, s| {
        let waves = u32::try_from(s.size.div_ceil(concurrency.max(1))).unwrap_or(u32::MAX);
        acc + connect_timeout.saturating_mul(waves) + linger + s.gap_after
    })
}

pub async fn run(args: &SpikeArgs) -> anyhow::Result<SpikeReport> {
    let steps = schedule::plan(
        (args.big, args.big_pulses, args.big_gap),
        (args.small, args.small_pulses, args.small_gap),
    );
    let own_sink = match args.mode {
        Mode::Raw => args.target.is_none(),
        Mode::Socks => args.dest.is_none(),
    };
    if args.mode == Mode::Socks && args.target.is_none() {
        bail!("--mode socks needs --target (the SOCKS5 server to test)");
    }

    let limit = fdlimit::raise().context("raising the open-files limit")?;
    let biggest = steps.iter().map(|s| s.size).max().unwrap_or(0) as u64;
    let per_conn = if own_sink { 2 } else { 1 };
    let what = format!("{biggest} connections x {per_conn} sockets each");
    let sink_alone = "run the sink in its own process (`pulse sink --listen 127.0.0.1:PORT`)";
    let hint = match (own_sink, args.mode) {
        (false, _) => String::new(),
        (true, Mode::Raw) => format!(", or {sink_alone} and pass --target 127.0.0.1:PORT"),
        (true, Mode::Socks) => format!(", or {sink_alone} and pass --dest 127.0.0.1:PORT"),
    };
    let in_use = fdlimit::open_now().unwrap_or(0);
    fdlimit::check(biggest * per_conn, in_use, limit, &what, &hint).map_err(|e| anyhow!(e))?;

    let sink = match own_sink {
        true => Some(
            Server::start(loopback(), Service::Sink)
                .await
                .context("starting the sink")?,
        ),
        false => None,
    };
    let sink_target = sink.as_ref().map(|s| Target::Addr(s.addr));
    let (dialer, dest) = match args.mode {
        Mode::Raw => (
            Dialer::direct(args.connect_timeout),
            args.target.clone().or(sink_target).context("no target")?,
        ),
        Mode::Socks => {
            let proxy = Proxy {
                addr: args.target.clone().context("no target")?,
                credentials: args.auth.credentials(),
            };
            let dest = args
                .dest
                .clone()
                .or(sink_target)
                .context("no destination")?;
            (Dialer::via(proxy, args.connect_timeout), dest)
        }
    };
    let target_name = args.target.as_ref().unwrap_or(&dest).to_string();

    let source = match (args.pid, &args.memory_url) {
        (Some(pid), _) => Some(Source::Pid(pid)),
        (None, Some(url)) => Some(Source::Url(url.clone(), args.memory_token.clone())),
        (None, None) => None,
    };
    match &source {
        Some(src) => {
            src.read()
                .map_err(|e| anyhow!("cannot read memory from {src}: {e}"))?;
        }
        None => eprintln!("warning: no --pid or --memory-url; only connections are recorded"),
    }
    let control = match &args.control {
        Some(p) => Some(summary::load_control(p).map_err(|e| anyhow!("--control: {e}"))?),
        None => None,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    // One connection end to end before anything is measured: a wrong port
    // or a refusing proxy stops the run here with the reason.
    let probe = dialer.dial(&dest).await;
    match probe {
        Ok(s) => drop(s),
        Err(kind) => bail!("probe connection to {dest} via {target_name} failed: {kind}"),
    }

    let shared = Arc::new(Shared::new());
    let every = Duration::from_millis(args.sample_ms);
    let sampler =
        Sampler::start(shared.clone(), source.clone(), every).context("starting the sampler")?;
    let mut phases = Phases::new(shared.clone());
    let mut fails = FailCounts::default();
    let mut attempted = 0u64;

    phases.enter(Stage::Baseline, None);
    tokio::time::sleep(args.baseline).await;

    let concurrency = usize::try_from(args.concurrency).unwrap_or(1);
    let limit_time = deadline(&steps, concurrency, args.connect_timeout, args.linger);
    let (dialer, dest) = (Arc::new(dialer), Arc::new(dest));
    let pulses = async {
        for step in &steps {
            phases.enter(Stage::Connect, Some(step));
            attempted += step.size as u64;
            let (held, f) =
                pulses::open_many(step.size, concurrency, &dialer, &dest, &shared).await;
            fails.merge(f);
            phases.enter(Stage::Hold, Some(step));
            tokio::time::sleep(args.linger).await;
            phases.enter(Stage::Close, Some(step));
            fails.merge(pulses::close_all(held, &shared));
            if !step.gap_after.is_zero() {
                phases.enter(Stage::Gap, None);
                tokio::time::sleep(step.gap_after).await;
            }
        }
    };
    if tokio::time::timeout(limit_time, pulses).await.is_err() {
        // The pulse future and its sockets are gone; say so in the counts.
        fails.add(FailKind::Deadline);
        shared.open.store(0, Ordering::Relaxed);
    }

    phases.enter(Stage::Tail, None);
    tokio::time::sleep(args.tail).await;
    let phases = phases.finish();
    let sampled = sampler.finish();
    if let Some(sink) = &sink {
        let n = sink.accept_errors();
        fails.add_n(FailKind::Other("sink_accept".into()), n);
    }

    let mode = match args.mode {
        Mode::Raw => "raw",
        Mode::Socks => "socks",
    };
    let memory = summary::memory(&sampled.samples, &phases, args.big);
    let control = control
        .as_ref()
        .zip(args.control.as_deref())
        .map(|(c, path)| summary::compare(&memory, c, path));
    let summary = Summary {
        target: target_name.clone(),
        mode: mode.into(),
        dest: (args.mode == Mode::Socks).then(|| dest.to_string()),
        memory_source: source.as_ref().map(ToString::to_string),
        big: args.big,
        big_pulses: args.big_pulses,
        small: args.small,
        small_pulses: args.small_pulses,
        linger_s: args.linger.as_secs_f64(),
        samples: sampled.samples.len(),
        memory,
        control,
        connections_attempted: attempted,
        connection_errors_total: fails.total(),
        connection_errors: fails.to_map(),
        sample_errors: sampled.errors.clone(),
    };
    let timeline = output::Timeline {
        target: target_name,
        mode: mode.into(),
        memory_source: summary.memory_source.clone(),
        sample_ms: args.sample_ms,
        phases,
        samples: sampled.samples,
    };
    let files = output::write(&args.out, &timeline, &summary)?;
    print!("{}", output::render_text(&summary, &fails.lines(), &files));
    let failed = !fails.is_empty() || !sampled.errors.is_empty();
    Ok(SpikeReport {
        summary,
        timeline,
        failed,
    })
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
