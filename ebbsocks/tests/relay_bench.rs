//! Measurements of the relay and the memory policy, not checks: every test
//! here is `#[ignore]`d and prints figures. Run them one at a time, in
//! release mode, on a quiet machine:
//!
//! ```text
//! cargo test --release -p ebbsocks --test relay_bench -- --ignored --nocapture --test-threads 1
//! ```
//!
//! Knobs (environment): `BENCH_CONNS` (idle cost, default 5000),
//! `BENCH_THP=1` (leave transparent huge pages on), `BENCH_PURGE=0` (no
//! explicit purge, decay only), `BENCH_ROUNDS` (throughput, default 5),
//! `BENCH_MIB` (throughput, MiB per run, default 1024).

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ebbsocks::config::MemoryConfig;
use ebbsocks::memory::{self, MemoryMonitor};
use ebbsocks::relay::{self, RelayOptions};
use tokio::net::{TcpListener, TcpStream};

#[path = "bench_support/mod.rs"]
mod bench_support;
use bench_support::{env_or, mib, raise_fd_limit};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A two-worker runtime, like the server's on this two-core machine.
fn proxy_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Accepts on `listener`, connects each client to `upstream` and relays, the
/// way the server does after a SOCKS handshake.
async fn proxy(listener: TcpListener, upstream: SocketAddr, monitor: Arc<MemoryMonitor>) {
    let options = Arc::new(RelayOptions::default());
    loop {
        let (client, _) = listener.accept().await.unwrap();
        let monitor = Arc::clone(&monitor);
        let options = Arc::clone(&options);
        monitor.connection_opened();
        tokio::spawn(async move {
            let server = TcpStream::connect(upstream).await.unwrap();
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            relay::relay(client, server, &options).await;
            monitor.connection_closed();
        });
    }
}

fn rss() -> u64 {
    memory::rss_bytes().unwrap()
}

fn allocated() -> u64 {
    memory::read().allocator.unwrap().allocated
}

/// CPU time (user + system) this process has used.
fn cpu_time() -> Duration {
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Speed of one run and the CPU it took.
#[derive(Debug, Clone, Copy)]
struct Run {
    mib_per_s: f64,
    /// CPU seconds of the whole process (senders, receivers, proxy) per GiB.
    cpu_per_gib: f64,
}

/// One run: `streams` connections each carry `total / streams` bytes from a
/// sender thread to a receiver thread, through `target`.
fn transfer(target: SocketAddr, sink: &StdListener, streams: usize, total: usize) -> Run {
    let per_stream = total / streams;
    let cpu = cpu_time();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..streams {
            let mut out = StdStream::connect(target).unwrap();
            let (mut inp, _) = sink.accept().unwrap();
            scope.spawn(move || {
                let buf = vec![7u8; 128 * 1024];
                let mut left = per_stream;
                while left > 0 {
                    let n = left.min(buf.len());
                    out.write_all(&buf[..n]).unwrap();
                    left -= n;
                }
            });
            scope.spawn(move || {
                let mut buf = vec![0u8; 128 * 1024];
                let mut got = 0;
                while got < per_stream {
                    let n = inp.read(&mut buf).unwrap();
                    assert!(n > 0, "early EOF");
                    got += n;
                }
            });
        }
    });
    let moved = (per_stream * streams) as u64;
    Run {
        mib_per_s: mib(moved) / started.elapsed().as_secs_f64(),
        cpu_per_gib: (cpu_time() - cpu).as_secs_f64() / (moved as f64 / (1u64 << 30) as f64),
    }
}

/// Medians of throughput and CPU over runs.
fn median(runs: &[Run]) -> Run {
    let pick = |f: fn(&Run) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(f).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Run {
        mib_per_s: pick(|r| r.mib_per_s),
        cpu_per_gib: pick(|r| r.cpu_per_gib),
    }
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture in release mode"]
fn throughput_direct_vs_relay() {
    let rounds = env_or("BENCH_ROUNDS", 5);
    let total = env_or("BENCH_MIB", 1024) << 20;
    let sink = StdListener::bind("127.0.0.1:0").unwrap();
    let sink_addr = sink.local_addr().unwrap();
    let rt = proxy_runtime();
    let monitor = MemoryMonitor::new(&MemoryConfig::default());
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    rt.spawn(proxy(listener, sink_addr, monitor));

    println!(
        "throughput, {} MiB per run, median of {rounds} rounds (MiB/s)",
        total >> 20
    );
    for streams in [1, 8] {
        let (mut direct, mut copy, mut splice) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            direct.push(transfer(sink_addr, &sink, streams, total));
            relay::set_splice(false);
            copy.push(transfer(proxy_addr, &sink, streams, total));
            relay::set_splice(true);
            splice.push(transfer(proxy_addr, &sink, streams, total));
        }
        let (d, c, s) = (median(&direct), median(&copy), median(&splice));
        println!(
            "  {streams} stream(s) MiB/s: direct {:6.0} | copy {:6.0} ({:.2}x) | splice {:6.0} ({:.2}x)",
            d.mib_per_s,
            c.mib_per_s,
            c.mib_per_s / d.mib_per_s,
            s.mib_per_s,
            s.mib_per_s / d.mib_per_s,
        );
        println!(
            "  {streams} stream(s) CPU s/GiB: direct {:.2} | copy {:.2} | splice {:.2}",
            d.cpu_per_gib, c.cpu_per_gib, s.cpu_per_gib
        );
        let speeds = |runs: &[Run]| runs.iter().map(|r| r.mib_per_s.round()).collect::<Vec<_>>();
        println!(
            "    rounds MiB/s: direct {:?} copy {:?} splice {:?}",
            speeds(&direct),
            speeds(&copy),
            speeds(&splice)
        );
    }
}

/// The client and far ends of the idle-cost benchmark live in a child process
/// (this test binary again), so the proxy process holds only its own two
/// sockets per connection, as the real server does, within the fd limit.
/// Commands on stdin: `open N`, `close`; answers on stdout: `@@sink ADDR`,
/// `@@ok`.
#[test]
#[ignore = "helper process of idle_cost_and_return_after_a_burst"]
fn load_generator_child() {
    let Ok(proxy_addr) = std::env::var("BENCH_CHILD_PROXY") else {
        return;
    };
    let proxy_addr: SocketAddr = proxy_addr.parse().unwrap();
    let sink = StdListener::bind("127.0.0.1:0").unwrap();
    println!("@@sink {}", sink.local_addr().unwrap());
    let mut pairs = Vec::new();
    for line in std::io::stdin().lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("open ") {
            for _ in 0..n.parse::<usize>().unwrap() {
                let mut client = StdStream::connect(proxy_addr).unwrap();
                let (mut server, _) = sink.accept().unwrap();
                let mut byte = [0u8; 1];
                client.write_all(b"a").unwrap();
                server.read_exact(&mut byte).unwrap();
                server.write_all(b"b").unwrap();
                client.read_exact(&mut byte).unwrap();
                pairs.push((client, server));
            }
        } else if line == "close" {
            pairs.clear();
        } else {
            break;
        }
        println!("@@ok");
    }
}

struct Child {
    process: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Child {
    fn start(proxy_addr: SocketAddr) -> (Self, SocketAddr) {
        use std::process::{Command, Stdio};
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "load_generator_child",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("BENCH_CHILD_PROXY", proxy_addr.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = process.stdin.take().unwrap();
        let stdout =
            std::io::BufRead::lines(std::io::BufReader::new(process.stdout.take().unwrap()));
        let mut child = Child {
            process,
            stdin,
            stdout,
        };
        let sink = child.expect("sink").trim().parse().unwrap();
        (child, sink)
    }

    fn expect(&mut self, prefix: &str) -> String {
        for line in &mut self.stdout {
            // libtest may print its own text before ours on the same line.
            if let Some((_, rest)) = line.unwrap().split_once(&format!("@@{prefix}")) {
                return rest.to_owned();
            }
        }
        panic!("load generator exited");
    }

    fn command(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        self.expect("ok");
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "exit");
        let _ = self.process.wait();
    }
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture in release mode"]
fn idle_cost_and_return_after_a_burst() {
    raise_fd_limit();
    let conns = env_or("BENCH_CONNS", 5000);
    let config = MemoryConfig {
        disable_thp: env_or("BENCH_THP", 0) == 0,
        purge_drop_fraction: if env_or("BENCH_PURGE", 1) == 1 {
            0.5
        } else {
            0.0
        },
        ..MemoryConfig::default()
    };
    memory::configure(&config).unwrap();
    let rt = proxy_runtime();
    let monitor = MemoryMonitor::new(&config);
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    let (mut child, sink_addr) = Child::start(proxy_addr);
    rt.spawn(proxy(listener, sink_addr, Arc::clone(&monitor)));

    // A ticker on the runtime: the largest lateness of a 1 ms sleep shows
    // whether anything stalls a worker while connections close and memory is
    // purged.
    let stall = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ticker_stall = Arc::clone(&stall);
    rt.spawn(async move {
        loop {
            let before = Instant::now();
            tokio::time::sleep(Duration::from_millis(1)).await;
            let late = before.elapsed().saturating_sub(Duration::from_millis(2));
            ticker_stall.fetch_max(
                late.as_micros() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    });
    let wait_closed = || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while monitor.open_connections() > 0 {
            assert!(Instant::now() < deadline, "relays did not end");
            std::thread::sleep(Duration::from_millis(1));
        }
    };

    // Warm up: worker scratch buffers, runtime structures, allocator caches.
    child.command("open 200");
    child.command("close");
    wait_closed();
    std::thread::sleep(Duration::from_secs(3));
    let (rss0, alloc0) = (rss(), allocated());

    let started = Instant::now();
    child.command(&format!("open {conns}"));
    let opened_in = started.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let (rss1, alloc1) = (rss(), allocated());
    println!(
        "{conns} idle relayed connections (THP {}, purge {}), opened in {opened_in:.1?}",
        if config.disable_thp { "off" } else { "on" },
        if config.purge_drop_fraction > 0.0 {
            "on"
        } else {
            "off"
        }
    );
    println!(
        "  baseline RSS {:.1} MiB; with connections {:.1} MiB: {} B RSS and {} B allocated per connection",
        mib(rss0),
        mib(rss1),
        (rss1.saturating_sub(rss0)) / conns as u64,
        (alloc1.saturating_sub(alloc0)) / conns as u64,
    );

    stall.store(0, std::sync::atomic::Ordering::Relaxed);
    let closing = Instant::now();
    child.command("close");
    wait_closed();
    println!(
        "  all relays ended {:.0?} after the close; largest worker stall while closing {} us",
        closing.elapsed(),
        stall.swap(0, std::sync::atomic::Ordering::Relaxed)
    );
    let mut line = String::from("  RSS after the burst (s: MiB above baseline):");
    for at_ms in [0u64, 250, 500, 1000, 1500, 2000, 3000, 5000] {
        let at = Duration::from_millis(at_ms);
        if let Some(wait) = at.checked_sub(closing.elapsed()) {
            std::thread::sleep(wait);
        }
        let now = rss();
        line += &format!(
            " {:.2}: {:+.2};",
            at_ms as f64 / 1000.0,
            mib(now) - mib(rss0)
        );
    }
    println!("{line}");
    let report = monitor.report();
    println!(
        "  purges {:?}\n  allocator {:?}\n  largest worker stall after the close (purges) {} us",
        report.purge,
        report.allocator,
        stall.load(std::sync::atomic::Ordering::Relaxed)
    );
}
