//! Checkout throughput and latency under contention.
//!
//! `cargo bench -p ebbsocks --bench pool_contention`
//!
//! N tasks (1, 8, 64) on a multi-thread runtime call `Pool::get` on one hot
//! destination as fast as they can, dropping each connection at once (a
//! handed-out connection is never reused, so every checkout consumes one and
//! the pool must replace it). `direct` is the pool disabled: every get is a
//! connect. Each cell is the median of several rounds, each with a fresh
//! pool. Latency includes waiting for a runtime worker (64 tasks share them).
//!
//! Connectors:
//! - `stock`: hands out loopback connections established before the round,
//!   so a "connect" costs a mutex pop: what is left is the pool's own cost
//!   (locks, the idle probe, spawning the replacement) and closing streams.
//!   A fixed number of gets per round.
//! - `0 ms`, `1 ms`: a real loopback connect, after a simulated round trip;
//!   fixed-length rounds.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ebbsocks::config::PoolConfig;
use ebbsocks::stats::Telemetry;
use ebbsocks::upstream::pool::{Connector, Pool};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

const LEVELS: [usize; 3] = [1, 8, 64];
const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_millis(300);
/// Gets per round with the stock connector (each consumes a connection).
const STOCK_GETS: usize = 3072;

/// Hands out connections made in advance; fails when the stock runs out.
struct Stock(Mutex<Vec<TcpStream>>);

impl Stock {
    async fn fill(target: SocketAddr, n: usize) -> Stock {
        let mut streams = Vec::with_capacity(n);
        for _ in 0..n {
            let stream = TcpStream::connect(target).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            socket2::SockRef::from(&stream)
                .set_linger(Some(Duration::ZERO))
                .expect("linger");
            streams.push(stream);
        }
        Stock(Mutex::new(streams))
    }
}

impl Connector for Stock {
    fn connect(
        &self,
        _addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        let next = self.0.lock().map(|mut s| s.pop()).ok().flatten();
        Box::pin(async move { next.ok_or_else(|| io::Error::other("stock exhausted")) })
    }
}

#[derive(Clone, Copy)]
enum Supply {
    Stock,
    Connect(Duration),
}

/// Loopback connect plus an optional delay standing in for a network round
/// trip. Closes with RST (linger 0) so tens of thousands of short
/// connections leave no TIME_WAIT behind.
struct Loopback {
    target: SocketAddr,
    rtt: Duration,
}

impl Connector for Loopback {
    fn connect(
        &self,
        _addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        Box::pin(async move {
            if !self.rtt.is_zero() {
                tokio::time::sleep(self.rtt).await;
            }
            let stream = TcpStream::connect(self.target).await?;
            stream.set_nodelay(true)?;
            socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO))?;
            Ok(stream)
        })
    }
}

async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 16];
                while let Ok(1..) = stream.read(&mut buf).await {}
            });
        }
    });
    addr
}

struct Round {
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    hit_rate: f64,
}

async fn round(target: SocketAddr, supply: Supply, enabled: bool, tasks: usize) -> Round {
    let config = PoolConfig {
        enabled,
        ..PoolConfig::default()
    };
    let (connector, per_task): (Arc<dyn Connector>, Option<usize>) = match supply {
        // Enough for every get plus the spares the pool may keep idle.
        Supply::Stock => (
            Arc::new(Stock::fill(target, STOCK_GETS + 16).await),
            Some(STOCK_GETS / tasks),
        ),
        Supply::Connect(rtt) => (Arc::new(Loopback { target, rtt }), None),
    };
    let pool = Pool::with_connector(config, Arc::new(Telemetry::default()), connector);
    let dest: SocketAddr = "192.0.2.1:443".parse().expect("address");
    let start = Instant::now();
    let deadline = start + ROUND;
    let mut workers = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let pool = pool.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(4096);
            let mut done = 0;
            while per_task.map_or(Instant::now() < deadline, |n| done < n) {
                done += 1;
                let t = Instant::now();
                let upstream = pool.get(dest).await.expect("get");
                latencies.push(t.elapsed());
                drop(upstream);
                // A session awaits I/O; so does this loop, once per get, so
                // that pre-connects get to run between checkouts.
                tokio::task::yield_now().await;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.expect("worker"));
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    let pct = |p: f64| {
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        all.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    let stats = pool.stats();
    let gets = (stats.pool_hits + stats.pool_misses).max(1);
    Round {
        ops_per_sec: all.len() as f64 / elapsed.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        hit_rate: stats.pool_hits as f64 / gets as f64,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let target = upstream().await;
        println!(
            "pool_contention: {} workers, {ROUNDS} rounds of {} ms per cell, medians; defaults \
             max_idle_per_dest=4 max_total_idle=100",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            ROUND.as_millis()
        );
        println!(
            "{:<8} {:<7} {:>5} {:>11} {:>9} {:>9} {:>6}",
            "connect", "mode", "tasks", "gets/s", "p50 us", "p99 us", "hits"
        );
        let supplies = [
            Supply::Stock,
            Supply::Connect(Duration::ZERO),
            Supply::Connect(Duration::from_millis(1)),
        ];
        for supply in supplies {
            for enabled in [true, false] {
                for tasks in LEVELS {
                    let mut rounds = Vec::new();
                    for _ in 0..ROUNDS {
                        rounds.push(round(target, supply, enabled, tasks).await);
                    }
                    let m = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
                    println!(
                        "{:<8} {:<7} {:>5} {:>11.0} {:>9.1} {:>9.1} {:>5.0}%",
                        match supply {
                            Supply::Stock => "stock".to_string(),
                            Supply::Connect(rtt) => format!("{} ms", rtt.as_millis()),
                        },
                        if enabled { "pool" } else { "direct" },
                        tasks,
                        m(|r| r.ops_per_sec),
                        m(|r| r.p50_us),
                        m(|r| r.p99_us),
                        m(|r| r.hit_rate) * 100.0,
                    );
                }
            }
        }
    });
}
