//! `pulse udp-idle`: what an idle UDP association costs the server. Opens
//! `--count` associations (each optionally "touched" with one echo round
//! trip first, so it has its remote socket and one remembered destination),
//! holds them without traffic, and reads the server's RSS from
//! /proc/PID/status before, while they are open, and after they close.

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::task::JoinSet;

use super::flow::{associate, start_echo, Flow};
use crate::cli::UdpIdleArgs;
use crate::fail::{FailCounts, FailKind};
use crate::memory::Source;

#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    pub proxy: String,
    pub pid: u32,
    pub associations: usize,
    pub touched: bool,
    pub settle_s: f64,
    pub rss_before: u64,
    pub rss_open: u64,
    pub rss_after_close: u64,
    /// (rss_open - rss_before) / associations.
    pub bytes_per_association: f64,
    pub errors: std::collections::BTreeMap<String, u64>,
    #[serde(skip)]
    pub fails: FailCounts,
}

/// The smallest of three readings a little apart: RSS only shrinks while
/// the allocator returns pages, so the minimum is the settled value.
async fn rss(source: &Source) -> anyhow::Result<u64> {
    let mut best = u64::MAX;
    for _ in 0..3 {
        let s = source.clone();
        let reading = tokio::task::spawn_blocking(move || s.read())
            .await
            .context("memory reader")?
            .map_err(|e| anyhow::anyhow!("reading {source}: {e}"))?;
        best = best.min(reading.rss_bytes);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(best)
}

/// Opens `count` associations, at most 64 handshakes at a time.
async fn open_many(
    args: &UdpIdleArgs,
    count: usize,
    echo: Option<std::net::SocketAddr>,
) -> (Vec<Flow>, FailCounts) {
    let mut fails = FailCounts::default();
    let mut held = Vec::with_capacity(count);
    let mut pending = JoinSet::new();
    let mut started = 0;
    while held.len() + (fails.total() as usize) < count {
        while started < count && pending.len() < 64 {
            started += 1;
            let (proxy, creds, timeout) =
                (args.proxy.clone(), args.auth.credentials(), args.timeout);
            pending.spawn(async move {
                let open = async {
                    let via = associate(&proxy, creds.as_ref()).await?;
                    let target = echo.unwrap_or(via.relay);
                    let mut flow = Flow::new(target, Some(via), 16)
                        .await
                        .map_err(|e| FailKind::from_io(&e))?;
                    if echo.is_some() {
                        flow.round_trip(timeout).await?;
                    }
                    Ok::<_, FailKind>(flow)
                };
                tokio::time::timeout(timeout, open)
                    .await
                    .unwrap_or(Err(FailKind::Timeout))
            });
        }
        match pending.join_next().await {
            Some(Ok(Ok(flow))) => held.push(flow),
            Some(Ok(Err(kind))) => fails.add(kind),
            Some(Err(e)) => fails.add(FailKind::Other(format!("task: {e}"))),
            None => break,
        }
    }
    (held, fails)
}

pub async fn run_idle(args: &UdpIdleArgs) -> anyhow::Result<IdleReport> {
    let source = Source::Pid(args.pid);
    let echo = if args.touch {
        Some(start_echo(args.echo_bind).context("starting the UDP echo server")?)
    } else {
        None
    };
    // One-time costs (per-thread scratch buffers, first allocations) are
    // paid by a few associations before the baseline, not counted per one.
    let (warm, _) = open_many(args, 16, echo).await;
    drop(warm);
    tokio::time::sleep(args.settle).await;
    let rss_before = rss(&source).await?;

    let (held, fails) = open_many(args, args.count, echo).await;
    eprintln!(
        "{} associations open ({} failed); settling {:.1} s",
        held.len(),
        fails.total(),
        args.settle.as_secs_f64()
    );
    tokio::time::sleep(args.settle).await;
    let rss_open = rss(&source).await?;
    let opened = held.len();
    drop(held);
    tokio::time::sleep(args.settle).await;
    let rss_after_close = rss(&source).await?;

    let delta = rss_open.saturating_sub(rss_before) as f64;
    Ok(IdleReport {
        proxy: args.proxy.to_string(),
        pid: args.pid,
        associations: opened,
        touched: args.touch,
        settle_s: args.settle.as_secs_f64(),
        rss_before,
        rss_open,
        rss_after_close,
        bytes_per_association: if opened > 0 {
            delta / opened as f64
        } else {
            0.0
        },
        errors: fails.to_map(),
        fails,
    })
}

pub fn render_idle(r: &IdleReport) -> String {
    let kib = |b: u64| b as f64 / 1024.0;
    format!(
        "idle UDP associations via {} (pid {}), {}: {} open\n\
         RSS before {:.0} KiB, with them open {:.0} KiB, after closing {:.0} KiB\n\
         per association: {:.0} bytes ({:.2} KiB)\n\
         errors: {}\n",
        r.proxy,
        r.pid,
        if r.touched {
            "each touched by one echo"
        } else {
            "never used"
        },
        r.associations,
        kib(r.rss_before),
        kib(r.rss_open),
        kib(r.rss_after_close),
        r.bytes_per_association,
        r.bytes_per_association / 1024.0,
        if r.fails.is_empty() {
            "none".to_string()
        } else {
            r.fails.lines().join("; ")
        },
    )
}
