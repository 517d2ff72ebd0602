//! Several spiky servers on one box: spikes against each of several SOCKS5
//! servers in turn, at staggered times, with every process's RSS sampled
//! at the same ticks, so the chart shows each server and their sum.
//!
//! Checks come first (file limit, a memory reading and a probe connection
//! per server, the output directory), as in `spike`.

pub mod chart;
pub mod plan;
pub mod sampler;
pub mod summary;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::task::JoinSet;

use crate::cli::FleetArgs;
use crate::dial::{Dialer, Proxy};
use crate::fail::{FailCounts, FailKind};
use crate::fdlimit;
use crate::memory::Source;
use crate::servers::{loopback, Server, Service};
use crate::socks::Target;
use crate::spike::sampler::Shared;
use crate::spike::{self, pulses, schedule::Step};
use plan::SpikeSpan;
use sampler::{FleetSample, FleetSampler, Watched};
use summary::FleetSummary;

#[derive(Debug)]
pub struct FleetReport {
    pub summary: FleetSummary,
    pub samples: Vec<FleetSample>,
    pub spans: Vec<SpikeSpan>,
    /// Connections or memory reads failed.
    pub failed: bool,
}

/// One server under test.
struct Member {
    name: String,
    dialer: Arc<Dialer>,
    shared: Arc<Shared>,
}

pub async fn run(args: &FleetArgs) -> anyhow::Result<FleetReport> {
    if args.targets.len() != args.pids.len() {
        bail!(
            "{} --target but {} --pid: give one --pid per --target, in the same order",
            args.targets.len(),
            args.pids.len()
        );
    }
    let size = usize::try_from(args.size).context("--size")?;
    let own_sink = args.dest.is_none();
    let limit = fdlimit::raise().context("raising the open-files limit")?;
    // Spikes may overlap when --stagger is short: budget for all at once.
    let per_conn = if own_sink { 2 } else { 1 };
    let worst = args.size * per_conn * args.targets.len() as u64;
    let what = format!(
        "{} servers x {} connections x {per_conn} sockets",
        args.targets.len(),
        args.size
    );
    let in_use = fdlimit::open_now().unwrap_or(0);
    fdlimit::check(worst, in_use, limit, &what, "").map_err(|e| anyhow!(e))?;

    let sink = match own_sink {
        true => Some(
            Server::start(loopback(), Service::Sink)
                .await
                .context("starting the sink")?,
        ),
        false => None,
    };
    let dest = args
        .dest
        .clone()
        .or(sink.as_ref().map(|s| Target::Addr(s.addr)))
        .context("no destination")?;

    let mut members = Vec::new();
    let mut watched = Vec::new();
    for (target, &pid) in args.targets.iter().zip(&args.pids) {
        let source = Source::Pid(pid);
        source
            .read()
            .map_err(|e| anyhow!("cannot read memory of {target} from {source}: {e}"))?;
        let dialer = Dialer::via(
            Proxy {
                addr: target.clone(),
                credentials: args.auth.credentials(),
            },
            args.connect_timeout,
        );
        match dialer.dial(&dest).await {
            Ok(s) => drop(s),
            Err(kind) => bail!("probe connection to {dest} via {target} failed: {kind}"),
        }
        let shared = Arc::new(Shared::new());
        watched.push(Watched {
            shared: shared.clone(),
            source,
        });
        members.push(Member {
            name: target.to_string(),
            dialer: Arc::new(dialer),
            shared,
        });
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;

    let origin = Instant::now();
    let every = Duration::from_millis(args.sample_ms);
    let sampler = FleetSampler::start(watched, origin, every).context("starting the sampler")?;
    let planned = plan::plan(members.len(), args.rounds, args.baseline, args.stagger);
    let concurrency = usize::try_from(args.concurrency).unwrap_or(1);
    // Each spike gets spike's own bound: every connection timing out in
    // concurrency-sized waves, plus the hold.
    let one_spike = spike::deadline(
        &[Step {
            kind: spike::schedule::PulseKind::Big,
            index: 1,
            of: 1,
            size,
            gap_after: Duration::ZERO,
        }],
        concurrency,
        args.connect_timeout,
        args.linger,
    );
    let dest = Arc::new(dest);
    let mut tasks = JoinSet::new();
    for p in &planned {
        let member = &members[p.server];
        let (dialer, shared, dest) = (member.dialer.clone(), member.shared.clone(), dest.clone());
        let (p, linger) = (*p, args.linger);
        tasks.spawn(async move {
            tokio::time::sleep_until((origin + p.start).into()).await;
            let start_ms = ms_since(origin);
            let mut fails = FailCounts::default();
            let spike = async {
                let (held, f) = pulses::open_many(size, concurrency, &dialer, &dest, &shared).await;
                fails.merge(f);
                let opened = held.len();
                tokio::time::sleep(linger).await;
                fails.merge(pulses::close_all(held, &shared));
                opened
            };
            let opened = match tokio::time::timeout(one_spike, spike).await {
                Ok(opened) => opened,
                Err(_) => {
                    // The spike's sockets went with its future.
                    fails.add(FailKind::Deadline);
                    shared.open.store(0, Ordering::Relaxed);
                    0
                }
            };
            let span = SpikeSpan {
                server: p.server,
                round: p.round,
                start_ms,
                end_ms: ms_since(origin),
                opened,
            };
            (span, fails)
        });
    }
    let mut spans = Vec::new();
    let mut fails = FailCounts::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((span, f)) => {
                spans.push(span);
                fails.merge(f);
            }
            Err(e) => fails.add(FailKind::Other(format!("spike task: {e}"))),
        }
    }
    spans.sort_by_key(|s| s.start_ms);
    tokio::time::sleep(args.tail).await;
    let sampled = sampler.finish();
    if let Some(sink) = &sink {
        fails.add_n(FailKind::Other("sink_accept".into()), sink.accept_errors());
    }

    let targets: Vec<(String, u32)> = members
        .iter()
        .map(|m| m.name.clone())
        .zip(args.pids.iter().copied())
        .collect();
    let servers = summary::servers(&sampled.samples, &targets);
    let (sum_baseline, sum_peak, sum_of_peaks, sum_final) =
        summary::sums(&sampled.samples, &servers);
    let summary = FleetSummary {
        spikes: summary::spikes(&sampled.samples, &spans),
        servers,
        sum_baseline_rss_bytes: sum_baseline,
        sum_peak_rss_bytes: sum_peak,
        sum_of_peaks_rss_bytes: sum_of_peaks,
        sum_final_rss_bytes: sum_final,
        size: args.size,
        rounds: args.rounds,
        stagger_s: args.stagger.as_secs_f64(),
        linger_s: args.linger.as_secs_f64(),
        samples: sampled.samples.len(),
        connections_attempted: args.size * planned.len() as u64,
        connection_errors_total: fails.total(),
        connection_errors: fails.to_map(),
        sample_errors: sampled.errors.clone(),
    };
    let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
    let files = write(args, &names, &summary, &sampled.samples, &spans)?;
    print!("{}", summary::render_text(&summary, &fails.lines(), &files));
    let failed = !fails.is_empty() || !sampled.errors.is_empty();
    Ok(FleetReport {
        summary,
        samples: sampled.samples,
        spans,
        failed,
    })
}

fn ms_since(origin: Instant) -> u64 {
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn write(
    args: &FleetArgs,
    names: &[String],
    summary: &FleetSummary,
    samples: &[FleetSample],
    spans: &[SpikeSpan],
) -> anyhow::Result<Vec<PathBuf>> {
    let title = format!(
        "RSS of {} servers, spikes of {} connections taking turns every {:.0} s",
        names.len(),
        args.size,
        args.stagger.as_secs_f64()
    );
    let files = [
        ("fleet.json", serde_json::to_string_pretty(summary)?),
        ("fleet.csv", summary::csv(samples, names.len())),
        ("fleet.svg", chart::render(&title, names, samples, spans)),
    ];
    let mut written = Vec::new();
    for (name, text) in files {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
