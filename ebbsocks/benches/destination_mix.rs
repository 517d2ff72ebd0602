//! The pool under a browsing-like destination mix, pool on versus off.
//!
//! Many local listeners stand in for destinations. Client CONNECTs go to a
//! few regular destinations drawn from a Zipf distribution (the hottest
//! gets the most) and, for a share of them, to one-off destinations used
//! once. Upstream connects wait a simulated round trip before connecting.
//! Two proxies run at once in this process, one with the pool on and one
//! with it off, each with its own listeners, driven by the same schedule
//! of destinations from the same number of client workers.
//!
//! `cargo bench -p ebbsocks --bench destination_mix [-- CONNECTS RTT_MS WORKERS
//! MAX_TOTAL_IDLE WARM_AFTER_CHECKOUTS]` (defaults 6000, 5, 8, and the pool's
//! defaults 100 and 2).
//!
//! Measured, per side:
//! - upstream connections opened per client CONNECT: what the listeners
//!   accepted, over the CONNECTs made (every CONNECT succeeds), overall and
//!   for the destinations the schedule uses exactly once;
//! - hits: a CONNECT is a hit when the upstream socket it got (its BND.ADDR)
//!   began connecting before the client sent its request (after the
//!   greeting), as recorded by the connector: a miss's own connect can only
//!   begin after the request arrives. Hit ratio over the ten hottest
//!   destinations, for the whole run and after the first tenth of the
//!   schedule (steady load), next to the pool's own count of hits for
//!   them;
//! - CONNECT latency (greeting + request until the success reply), p50 and
//!   p99, for hits and misses.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ebbsocks::config::{Config, PoolConfig};
use ebbsocks::server::{self, Services};
use ebbsocks::upstream::pool::{Connector, PoolStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Regular destinations, drawn by Zipf rank.
const REGULAR: usize = 100;
/// Zipf exponent: rank k is drawn with weight 1/k^s.
const ZIPF_S: f64 = 1.0;
/// Share of CONNECTs that go to a destination used only that once.
const ONE_OFF_SHARE: f64 = 0.3;
/// How long each session stays open after its echo.
const HOLD: Duration = Duration::from_millis(5);
/// The first tenth of the schedule warms the pool up.
const WARM_UP_SHARE: f64 = 0.1;

/// When the connect of each upstream socket began, keyed by its two ends.
type Established = Arc<Mutex<HashMap<(SocketAddr, SocketAddr), Instant>>>;

/// Connects after a simulated round trip and records when it began.
struct SlowConnector {
    rtt: Duration,
    established: Established,
    made: Arc<AtomicUsize>,
}

impl Connector for SlowConnector {
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        let began = Instant::now();
        Box::pin(async move {
            tokio::time::sleep(self.rtt).await;
            let stream = TcpStream::connect(addr).await?;
            let key = (stream.local_addr()?, addr);
            lock(&self.established).insert(key, began);
            self.made.fetch_add(1, SeqCst);
            Ok(stream)
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// splitmix64: a small deterministic generator, so both sides and every
/// run share one schedule.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The destination index of every CONNECT, in order: regular ones
/// `0..REGULAR` by Zipf rank, one-offs numbered after them.
fn schedule(connects: usize) -> (Vec<usize>, usize) {
    let weights: Vec<f64> = (1..=REGULAR)
        .map(|k| 1.0 / (k as f64).powf(ZIPF_S))
        .collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(REGULAR);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut rng = Rng(0x5EED);
    let mut one_offs = 0;
    let plan = (0..connects)
        .map(|_| {
            if rng.next_f64() < ONE_OFF_SHARE {
                one_offs += 1;
                REGULAR + one_offs - 1
            } else {
                let u = rng.next_f64();
                cdf.partition_point(|&c| c < u).min(REGULAR - 1)
            }
        })
        .collect();
    (plan, REGULAR + one_offs)
}

/// Echo listeners counting what they accept.
async fn listeners(n: usize) -> (Vec<SocketAddr>, Arc<Vec<AtomicUsize>>) {
    let accepts: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
    let mut addrs = Vec::with_capacity(n);
    for i in 0..n {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.push(listener.local_addr().expect("addr"));
        let accepts = accepts.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                accepts[i].fetch_add(1, SeqCst);
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
    }
    (addrs, accepts)
}

struct Side {
    proxy: SocketAddr,
    services: Arc<Services>,
    dests: Vec<SocketAddr>,
    accepts: Arc<Vec<AtomicUsize>>,
    established: Established,
    /// Upstream connections the connector made.
    made: Arc<AtomicUsize>,
}

async fn side(pool: Option<PoolConfig>, rtt: Duration, destinations: usize) -> Side {
    let mut config = Config::default();
    config.logging.access_log = false;
    if let Some(pool) = pool {
        config.server.pool = pool;
    }
    let established = Established::default();
    let made = Arc::new(AtomicUsize::new(0));
    let connector = SlowConnector {
        rtt,
        established: established.clone(),
        made: made.clone(),
    };
    let services = Services::with_connector(config, Arc::new(connector));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy = listener.local_addr().expect("addr");
    tokio::spawn(server::serve(
        listener,
        services.clone(),
        std::future::pending(),
    ));
    let (dests, accepts) = listeners(destinations).await;
    Side {
        proxy,
        services,
        dests,
        accepts,
        established,
        made,
    }
}

/// One CONNECT's outcome.
struct Sample {
    index: usize,
    dest: usize,
    latency: Duration,
    hit: bool,
}

/// Greeting + CONNECT until the reply, one echoed byte, a short hold.
async fn session(side: &Side, index: usize, dest: usize) -> Sample {
    let target = side.dests[dest];
    let started = Instant::now();
    let mut stream = TcpStream::connect(side.proxy).await.expect("connect proxy");
    stream.set_nodelay(true).expect("nodelay");
    let SocketAddr::V4(v4) = target else {
        panic!("IPv4 destination expected")
    };
    stream
        .write_all(&[0x05, 0x01, 0x00])
        .await
        .expect("greeting");
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await.expect("method");
    let requested = Instant::now();
    let mut request = vec![0x05, 0x01, 0x00, 0x01];
    request.extend_from_slice(&v4.ip().octets());
    request.extend_from_slice(&v4.port().to_be_bytes());
    stream.write_all(&request).await.expect("request");
    let mut reply = [0u8; 10];
    stream.read_exact(&mut reply).await.expect("reply");
    let latency = started.elapsed();
    assert_eq!(reply[1], 0x00, "CONNECT refused");
    let ip = Ipv4Addr::new(reply[4], reply[5], reply[6], reply[7]);
    let port = u16::from_be_bytes([reply[8], reply[9]]);
    let bound = SocketAddr::V4(SocketAddrV4::new(ip, port));
    let hit = lock(&side.established)
        .get(&(bound, target))
        .is_some_and(|began| *began < requested);
    stream.write_all(b"x").await.expect("echo");
    let mut one = [0u8; 1];
    stream.read_exact(&mut one).await.expect("echo back");
    tokio::time::sleep(HOLD).await;
    Sample {
        index,
        dest,
        latency,
        hit,
    }
}

async fn drive(side: Arc<Side>, plan: Arc<Vec<usize>>, workers: usize) -> Vec<Sample> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (side, plan, next) = (side.clone(), plan.clone(), next.clone());
        tasks.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let index = next.fetch_add(1, SeqCst);
                let Some(&dest) = plan.get(index) else {
                    return samples;
                };
                samples.push(session(&side, index, dest).await);
            }
        });
    }
    let mut all = Vec::with_capacity(plan.len());
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("worker"));
    }
    all
}

/// Waits until no spare is being opened and the listeners have accepted
/// every connection the connector made.
async fn settle(side: &Side) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let made = side.made.load(SeqCst);
        let accepted: usize = side.accepts.iter().map(|a| a.load(SeqCst)).sum();
        let pending = side.services.pool.stats().pending_creates;
        if pending == 0 && accepted >= made {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {pending} pending, {accepted} accepted of {made}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Option<Duration> {
    samples.sort_unstable();
    let last = samples.len().checked_sub(1)?;
    Some(samples[(last as f64 * p).round() as usize])
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
}

fn ratio(a: usize, b: usize) -> String {
    if b == 0 {
        "-".into()
    } else {
        format!("{:.3}", a as f64 / b as f64)
    }
}

/// The figures of one side, as table cells.
struct Report {
    rows: Vec<(String, String)>,
}

fn report(side: &Side, samples: &[Sample], plan: &[usize], hottest: &[usize]) -> Report {
    let mut uses = vec![0usize; side.dests.len()];
    for &d in plan {
        uses[d] += 1;
    }
    let accepted = |d: usize| side.accepts[d].load(SeqCst);
    let opened: usize = (0..side.dests.len()).map(accepted).sum();
    let once: Vec<usize> = (0..side.dests.len()).filter(|&d| uses[d] == 1).collect();
    let once_opened: usize = once.iter().map(|&d| accepted(d)).sum();
    let steady_from = (plan.len() as f64 * WARM_UP_SHARE) as usize;
    let hot = |s: &&Sample| hottest.contains(&s.dest);
    let hot_all: Vec<&Sample> = samples.iter().filter(hot).collect();
    let hot_steady: Vec<&Sample> = hot_all
        .iter()
        .copied()
        .filter(|s| s.index >= steady_from)
        .collect();
    let hits = |v: &[&Sample]| v.iter().filter(|s| s.hit).count();
    let all: Vec<&Sample> = samples.iter().collect();
    let mut hit_latency: Vec<Duration> = samples
        .iter()
        .filter(|s| s.hit)
        .map(|s| s.latency)
        .collect();
    let mut miss_latency: Vec<Duration> = samples
        .iter()
        .filter(|s| !s.hit)
        .map(|s| s.latency)
        .collect();
    let stats: PoolStats = side.services.pool.stats();
    let rows = vec![
        (
            "upstream connections per CONNECT".into(),
            ratio(opened, samples.len()),
        ),
        (
            format!("  for destinations used once ({})", once.len()),
            ratio(once_opened, once.len()),
        ),
        (
            "hit ratio, ten hottest, whole run".into(),
            ratio(hits(&hot_all), hot_all.len()),
        ),
        (
            "hit ratio, ten hottest, after warm-up".into(),
            ratio(hits(&hot_steady), hot_steady.len()),
        ),
        (
            "  ten hottest, whole run, as the pool counts hits".into(),
            pool_hits_of(&stats, side, hottest),
        ),
        (
            "hit ratio, all CONNECTs".into(),
            ratio(hits(&all), all.len()),
        ),
        (
            "CONNECT p50 / p99, hits".into(),
            format!(
                "{} / {}",
                ms(percentile(&mut hit_latency.clone(), 0.5)),
                ms(percentile(&mut hit_latency, 0.99))
            ),
        ),
        (
            "CONNECT p50 / p99, misses".into(),
            format!(
                "{} / {}",
                ms(percentile(&mut miss_latency.clone(), 0.5)),
                ms(percentile(&mut miss_latency, 0.99))
            ),
        ),
        (
            "pool stats: total_created / CONNECTs".into(),
            ratio(
                stats.total_created as usize,
                (stats.pool_hits + stats.pool_misses) as usize,
            ),
        ),
        (
            "pool stats: hits / spares_created / idle at end".into(),
            format!(
                "{} / {} / {}",
                stats.pool_hits, stats.spares_created, stats.total_idle
            ),
        ),
        (
            "pool stats: evicted / expired / stale / dropped_full".into(),
            format!(
                "{} / {} / {} / {}",
                stats.evicted, stats.expired, stats.stale, stats.dropped_full
            ),
        ),
    ];
    Report { rows }
}

/// Hits over checkouts of `dests`, from the pool's per-destination stats.
fn pool_hits_of(stats: &PoolStats, side: &Side, dests: &[usize]) -> String {
    let (mut hits, mut all) = (0, 0);
    for &d in dests {
        let name = side.dests[d].to_string();
        if let Some(s) = stats.per_destination.iter().find(|s| s.destination == name) {
            hits += s.hits as usize;
            all += (s.hits + s.misses) as usize;
        }
    }
    ratio(hits, all)
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let connects: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(6000);
    let rtt_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let mut pool = PoolConfig {
        enabled: true,
        ..PoolConfig::default()
    };
    if let Some(n) = args.next().and_then(|a| a.parse().ok()) {
        pool.max_total_idle = n;
    }
    if let Some(n) = args.next().and_then(|a| a.parse().ok()) {
        pool.warm_after_checkouts = n;
    }
    let rtt = Duration::from_millis(rtt_ms);
    let (plan, destinations) = schedule(connects);
    let plan = Arc::new(plan);
    let mut uses = vec![0usize; destinations];
    for &d in plan.iter() {
        uses[d] += 1;
    }
    let mut by_use: Vec<usize> = (0..destinations).collect();
    by_use.sort_by_key(|&d| std::cmp::Reverse(uses[d]));
    let hottest: Vec<usize> = by_use.into_iter().take(10).collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let off = Arc::new(side(None, rtt, destinations).await);
        let on = Arc::new(side(Some(pool.clone()), rtt, destinations).await);
        let started = Instant::now();
        let (off_samples, on_samples) = tokio::join!(
            drive(off.clone(), plan.clone(), workers),
            drive(on.clone(), plan.clone(), workers)
        );
        let elapsed = started.elapsed();
        settle(&off).await;
        settle(&on).await;
        let off_report = report(&off, &off_samples, &plan, &hottest);
        let on_report = report(&on, &on_samples, &plan, &hottest);

        let hot_uses: usize = hottest.iter().map(|&d| uses[d]).sum();
        println!(
            "destination mix: {connects} CONNECTs per side over {destinations} destinations \
             ({REGULAR} regular by Zipf s={ZIPF_S}, {:.0}% of CONNECTs one-off), simulated RTT \
             {rtt_ms} ms, {workers} client workers per side, sessions held {} ms, both sides \
             at once, {:.1} s",
            ONE_OFF_SHARE * 100.0,
            HOLD.as_millis(),
            elapsed.as_secs_f64()
        );
        println!(
            "ten hottest destinations: {hot_uses} CONNECTs; warm-up: first {:.0}% of the \
             schedule; pool on: max_idle_per_dest {}, max_total_idle {}, \
             warm_after_checkouts {}, idle_timeout_secs {}",
            WARM_UP_SHARE * 100.0,
            pool.max_idle_per_dest,
            pool.max_total_idle,
            pool.warm_after_checkouts,
            pool.idle_timeout_secs
        );
        println!();
        println!("| | pool off | pool on |");
        println!("|---|---|---|");
        for ((name, off_cell), (_, on_cell)) in off_report.rows.iter().zip(&on_report.rows) {
            println!("| {name} | {off_cell} | {on_cell} |");
        }
    });
}
