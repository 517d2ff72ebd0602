//! Bulk transfer through the proxy and directly to the same destination, in
//! the same run. Rounds alternate which path goes first so that the
//! machine's noise (frequency scaling, other load) hits both alike, and the
//! report gives medians and the proxy/direct ratio per case.

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::cli::{Direction, ThroughputArgs};
use crate::dial::{Dialer, Proxy};
use crate::fail::{FailCounts, FailKind};
use crate::servers::{loopback, Server, Service, UNBOUNDED};
use crate::socks::Target;
use crate::stats::{median, ratio, MIB};

const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone, Copy)]
enum Amount {
    Bytes(u64),
    For(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Way {
    Upload,
    Download,
}

#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub direction: Way,
    pub streams: usize,
    /// MiB/s of each successful round.
    pub proxy_mib_s: Vec<f64>,
    pub direct_mib_s: Vec<f64>,
    pub proxy_median: Option<f64>,
    pub direct_median: Option<f64>,
    /// proxy / direct of the medians: 1.0 means the proxy costs nothing.
    pub ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub proxy: String,
    pub bytes_per_run: Option<u64>,
    pub seconds_per_run: Option<f64>,
    pub rounds: u32,
    pub cases: Vec<Case>,
    pub errors_total: u64,
    pub errors: BTreeMap<String, u64>,
    #[serde(skip)]
    pub fails: FailCounts,
}

pub async fn run(args: &ThroughputArgs) -> anyhow::Result<Report> {
    let discard = Server::start(loopback(), Service::Discard)
        .await
        .context("starting discard server")?;
    let source = Server::start(loopback(), Service::Source)
        .await
        .context("starting source server")?;
    let proxy = Proxy {
        addr: args.proxy.clone(),
        credentials: args.auth.credentials(),
    };
    let paths = [
        ("proxy", Dialer::via(proxy, args.connect_timeout)),
        ("direct", Dialer::direct(args.connect_timeout)),
    ];
    let amount = match args.seconds {
        Some(d) => Amount::For(d),
        None => Amount::Bytes(args.bytes),
    };
    let ways: &[Way] = match args.direction {
        Direction::Upload => &[Way::Upload],
        Direction::Download => &[Way::Download],
        Direction::Both => &[Way::Upload, Way::Download],
    };
    let mut cases: Vec<Case> = ways
        .iter()
        .flat_map(|&w| {
            args.streams.iter().map(move |&n| Case {
                direction: w,
                streams: n.max(1),
                proxy_mib_s: Vec::new(),
                direct_mib_s: Vec::new(),
                proxy_median: None,
                direct_median: None,
                ratio: None,
            })
        })
        .collect();
    let mut fails = FailCounts::default();
    for round in 0..args.rounds {
        for case in &mut cases {
            let dest = Target::Addr(match case.direction {
                Way::Upload => discard.addr,
                Way::Download => source.addr,
            });
            // Even rounds measure the proxy first, odd rounds direct first.
            let order = if round.is_multiple_of(2) {
                [0, 1]
            } else {
                [1, 0]
            };
            for i in order {
                let (name, dialer) = &paths[i];
                let r = measure(
                    dialer,
                    &dest,
                    case.direction,
                    case.streams,
                    amount,
                    args.timeout,
                )
                .await;
                let shown = match &r {
                    Ok(v) => format!("{v:.1} MiB/s"),
                    Err(k) => format!("failed: {k}"),
                };
                eprintln!(
                    "round {}/{} {:?} x{} {name}: {shown}",
                    round + 1,
                    args.rounds,
                    case.direction,
                    case.streams
                );
                match (r, i) {
                    (Ok(v), 0) => case.proxy_mib_s.push(v),
                    (Ok(v), _) => case.direct_mib_s.push(v),
                    (Err(k), _) => fails.add(k),
                }
            }
        }
    }
    for c in &mut cases {
        c.proxy_median = median(&c.proxy_mib_s);
        c.direct_median = median(&c.direct_mib_s);
        c.ratio = ratio(c.proxy_median, c.direct_median);
    }
    Ok(Report {
        proxy: args.proxy.to_string(),
        bytes_per_run: args.seconds.is_none().then_some(args.bytes),
        seconds_per_run: args.seconds.map(|d| d.as_secs_f64()),
        rounds: args.rounds,
        cases,
        errors_total: fails.total(),
        errors: fails.to_map(),
        fails,
    })
}

/// One run: connect all streams, then time the transfer from the first byte
/// to the last acknowledgement. Handshakes are not part of the time.
async fn measure(
    dialer: &Dialer,
    dest: &Target,
    way: Way,
    streams: usize,
    amount: Amount,
    limit: Duration,
) -> Result<f64, FailKind> {
    let mut conns = Vec::with_capacity(streams);
    for _ in 0..streams {
        conns.push(dialer.dial(dest).await?);
    }
    let per_stream = match amount {
        Amount::Bytes(n) => Amount::Bytes((n / streams as u64).max(1)),
        a => a,
    };
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for s in conns {
        tasks.spawn(async move {
            match way {
                Way::Upload => upload(s, per_stream).await,
                Way::Download => download(s, per_stream).await,
            }
        });
    }
    let all = async {
        let mut total = 0u64;
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Ok(n)) => total += n,
                Ok(Err(e)) => return Err(FailKind::from_io(&e)),
                Err(e) => return Err(FailKind::Other(format!("task: {e}"))),
            }
        }
        Ok(total)
    };
    let total = tokio::time::timeout(limit, all)
        .await
        .map_err(|_| FailKind::Timeout)??;
    Ok(total as f64 / MIB / start.elapsed().as_secs_f64())
}

/// Sends to the discard server and returns the count it acknowledged.
async fn upload(mut s: TcpStream, amount: Amount) -> io::Result<u64> {
    let buf = vec![0xA5u8; CHUNK];
    let want = match amount {
        Amount::Bytes(n) => {
            s.write_u64(n).await?;
            let mut left = n;
            while left > 0 {
                let k = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
                s.write_all(&buf[..k]).await?;
                left -= k as u64;
            }
            Some(n)
        }
        Amount::For(d) => {
            // Unbounded: the discard server counts until our half-close.
            s.write_u64(UNBOUNDED).await?;
            let end = Instant::now() + d;
            while Instant::now() < end {
                s.write_all(&buf).await?;
            }
            s.shutdown().await?;
            None
        }
    };
    let got = s.read_u64().await?;
    match want {
        Some(n) if got != n => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("discard server saw {got} of {n} bytes"),
        )),
        _ => Ok(got),
    }
}

/// Asks the source server for bytes and counts what arrives.
async fn download(mut s: TcpStream, amount: Amount) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0u64;
    match amount {
        Amount::Bytes(n) => {
            s.write_u64(n).await?;
            while got < n {
                let k = s.read(&mut buf).await?;
                if k == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                got += k as u64;
            }
        }
        Amount::For(d) => {
            s.write_u64(UNBOUNDED).await?;
            let end = tokio::time::Instant::now() + d;
            while let Ok(r) = tokio::time::timeout_at(end, s.read(&mut buf)).await {
                match r? {
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    k => got += k as u64,
                }
            }
        }
    }
    Ok(got)
}

pub fn render_text(r: &Report) -> String {
    let per_run = match (r.bytes_per_run, r.seconds_per_run) {
        (Some(b), _) => format!("{:.1} MiB per run", b as f64 / MIB),
        (_, Some(s)) => format!("{s:.1} s per run"),
        _ => String::new(),
    };
    let mut o = format!(
        "throughput via {} against direct, {per_run}, {} rounds (median MiB/s)\n\
         direction  streams       proxy      direct  proxy/direct\n",
        r.proxy, r.rounds
    );
    let f = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
    for c in &r.cases {
        let dir = match c.direction {
            Way::Upload => "upload",
            Way::Download => "download",
        };
        o.push_str(&format!(
            "{dir:<9}  {:>7}  {:>10}  {:>10}  {:>12}\n",
            c.streams,
            f(c.proxy_median),
            f(c.direct_median),
            c.ratio.map_or_else(|| "-".into(), |x| format!("{x:.2}"))
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

    #[tokio::test]
    async fn direct_transfers_count_every_byte() {
        let discard = Server::start(loopback(), Service::Discard).await.unwrap();
        let source = Server::start(loopback(), Service::Source).await.unwrap();
        let d = Dialer::direct(Duration::from_secs(5));
        let t = Duration::from_secs(10);
        let up = Target::Addr(discard.addr);
        let down = Target::Addr(source.addr);
        for streams in [1, 3] {
            let bytes = Amount::Bytes(3 << 20);
            assert!(
                measure(&d, &up, Way::Upload, streams, bytes, t)
                    .await
                    .unwrap()
                    > 0.0
            );
            assert!(
                measure(&d, &down, Way::Download, streams, bytes, t)
                    .await
                    .unwrap()
                    > 0.0
            );
        }
        let short = Amount::For(Duration::from_millis(50));
        assert!(measure(&d, &up, Way::Upload, 2, short, t).await.unwrap() > 0.0);
        assert!(
            measure(&d, &down, Way::Download, 2, short, t)
                .await
                .unwrap()
                > 0.0
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn proxy_and_direct_both_measured() {
        use clap::Parser;
        let proxy = crate::test_proxy::start().await;
        let p = proxy.addr.to_string();
        let argv = [
            "pulse",
            "throughput",
            "--proxy",
            &p,
            "--bytes",
            "2MiB",
            "--streams",
            "1,2",
            "--rounds",
            "2",
        ];
        let crate::cli::Command::Throughput(args) =
            crate::cli::Cli::try_parse_from(argv).unwrap().command
        else {
            unreachable!()
        };
        let r = run(&args).await.unwrap();
        assert!(r.fails.is_empty(), "{:?}", r.errors);
        assert_eq!(r.cases.len(), 4);
        for c in &r.cases {
            assert_eq!((c.proxy_mib_s.len(), c.direct_mib_s.len()), (2, 2));
            assert!(c.ratio.unwrap() > 0.0);
        }
        let text = render_text(&r);
        assert!(text.contains("download") && text.contains("errors: none"));
        assert!(serde_json::to_string(&r).unwrap().contains("\"ratio\""));
    }
}
