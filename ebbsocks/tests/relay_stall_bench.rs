//! What a slow-reader attack costs the relay: N relayed connections whose
//! upstream floods and whose client never reads. A measurement, not a check
//! (`#[ignore]`d); run it alone, in release mode:
//!
//! ```text
//! cargo test --release -p ebbsocks --test relay_stall_bench -- --ignored --nocapture --exact stalled_readers_cost
//! ```
//!
//! Knobs (environment): `BENCH_CONNS` (default 5000; each connection takes
//! two descriptors here and two in the helper process), `BENCH_SPLICE=0`
//! (copy path only; by default splice is on and its 64 pipes run out at
//! once, so the rest take the fallback path the attack is about).

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::time::{Duration, Instant};

use ebbsocks::config::MemoryConfig;
use ebbsocks::memory;
use ebbsocks::relay::{self, RelayOptions};
use tokio::net::{TcpListener, TcpStream};

#[path = "bench_support/mod.rs"]
mod bench_support;
use bench_support::{env_or, mib, raise_fd_limit};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Accepts, connects each client to `upstream` and relays, as the server
/// does after a SOCKS handshake.
async fn proxy(listener: TcpListener, upstream: SocketAddr) {
    loop {
        let (client, _) = listener.accept().await.unwrap();
        tokio::spawn(async move {
            let server = TcpStream::connect(upstream).await.unwrap();
            relay::relay(client, server, &RelayOptions::default()).await;
        });
    }
}

/// Small kernel buffers in the helper keep the kernel's share of the test
/// modest at thousands of connections; the proxy's sockets keep defaults.
const HELPER_SOCKET_BUFFER: usize = 32 * 1024;

/// The helper process (this binary again) holds the clients and the
/// upstreams, so the proxy process holds only its own sockets. Commands on
/// stdin: `open N` (connections that carried one byte each way), `flood`
/// (every upstream writes until its socket would block, repeatedly, until
/// nothing more goes in), `close`; answers `@@ok ...` on stdout.
#[test]
#[ignore = "helper process of stalled_readers_cost"]
fn stall_helper_child() {
    let Ok(proxy_addr) = std::env::var("BENCH_STALL_PROXY") else {
        return;
    };
    let proxy_addr: SocketAddr = proxy_addr.parse().unwrap();
    let sink = StdListener::bind("127.0.0.1:0").unwrap();
    println!("@@sink {}", sink.local_addr().unwrap());
    let mut pairs: Vec<(StdStream, StdStream)> = Vec::new();
    for line in std::io::stdin().lines() {
        let line = line.unwrap();
        let mut answer = String::new();
        if let Some(n) = line.strip_prefix("open ") {
            for _ in 0..n.parse::<usize>().unwrap() {
                let socket =
                    socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                        .unwrap();
                socket.set_recv_buffer_size(HELPER_SOCKET_BUFFER).unwrap();
                socket.connect(&proxy_addr.into()).unwrap();
                let mut client: StdStream = socket.into();
                let (mut server, _) = sink.accept().unwrap();
                socket2::SockRef::from(&server)
                    .set_send_buffer_size(HELPER_SOCKET_BUFFER)
                    .unwrap();
                let mut byte = [0u8; 1];
                client.write_all(b"a").unwrap();
                server.read_exact(&mut byte).unwrap();
                server.write_all(b"b").unwrap();
                client.read_exact(&mut byte).unwrap();
                server.set_nonblocking(true).unwrap();
                pairs.push((client, server));
            }
        } else if line == "flood" {
            answer = format!("{} bytes", flood(&mut pairs));
        } else if line == "close" {
            pairs.clear();
        } else {
            break;
        }
        println!("@@ok {answer}");
    }
}

/// Writes into every upstream until a whole pass over all of them, 200 ms
/// after the previous one, moves nothing three times in a row.
fn flood(pairs: &mut [(StdStream, StdStream)]) -> u64 {
    let chunk = vec![0x5a_u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut total, mut quiet) = (0u64, 0);
    while quiet < 3 {
        assert!(Instant::now() < deadline, "the flood never settled");
        let mut pass = 0u64;
        for (_, server) in pairs.iter_mut() {
            loop {
                match server.write(&chunk) {
                    Ok(n) => pass += n as u64,
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(err) => panic!("upstream write failed: {err}"),
                }
            }
        }
        total += pass;
        quiet = if pass == 0 { quiet + 1 } else { 0 };
        std::thread::sleep(Duration::from_millis(200));
    }
    total
}

struct Helper {
    process: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl Helper {
    fn start(proxy_addr: SocketAddr) -> (Self, SocketAddr) {
        use std::process::{Command, Stdio};
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "stall_helper_child", "--ignored", "--nocapture"])
            .env("BENCH_STALL_PROXY", proxy_addr.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = process.stdin.take().unwrap();
        let stdout = std::io::BufReader::new(process.stdout.take().unwrap()).lines();
        let mut helper = Helper {
            process,
            stdin,
            stdout,
        };
        let sink = helper.expect("sink").trim().parse().unwrap();
        (helper, sink)
    }

    fn expect(&mut self, prefix: &str) -> String {
        for line in &mut self.stdout {
            // libtest may print its own text before ours on the same line.
            if let Some((_, rest)) = line.unwrap().split_once(&format!("@@{prefix}")) {
                return rest.to_owned();
            }
        }
        panic!("helper process exited");
    }

    fn command(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.expect("ok")
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "exit");
        let _ = self.process.wait();
    }
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture in release mode"]
fn stalled_readers_cost() {
    raise_fd_limit();
    let conns = env_or("BENCH_CONNS", 5000);
    let splice = env_or("BENCH_SPLICE", 1) == 1;
    relay::set_splice(splice);
    // The server's allocator settings (freed pages go back to the OS), so
    // RSS shows what is live.
    memory::configure(&MemoryConfig::default()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    let (mut helper, sink_addr) = Helper::start(proxy_addr);
    rt.spawn(proxy(listener, sink_addr));
    let rss = || memory::rss_bytes().unwrap();

    // Warm up worker scratch buffers and runtime structures.
    helper.command("open 100");
    helper.command("flood");
    helper.command("close");
    std::thread::sleep(Duration::from_secs(2));
    let rss0 = rss();

    helper.command(&format!("open {conns}"));
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = rss();
    let flooded = helper.command("flood");
    std::thread::sleep(Duration::from_millis(500));
    let rss_stalled = rss();
    let held = relay::buffered();

    let per = |rss: u64| rss.saturating_sub(rss0) / conns as u64;
    println!(
        "{conns} relayed connections, splice {}: baseline RSS {:.1} MiB",
        if splice { "on" } else { "off" },
        mib(rss0)
    );
    println!(
        "  idle: {:.1} MiB, {} B per connection",
        mib(rss_idle),
        per(rss_idle)
    );
    println!(
        "  every client stalled ({} flooded): {:.1} MiB, {} B per connection",
        flooded.trim(),
        mib(rss_stalled),
        per(rss_stalled)
    );
    println!("  relay holds {held:?}");
    helper.command("close");
}
