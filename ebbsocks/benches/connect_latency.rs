//! CONNECT latency through the proxy with a pool hit versus a miss.
//!
//! Loopback has no round trip to save, so upstream connects go through a
//! connector that waits a simulated round trip (default 5 ms) before it
//! connects. The same server code runs with the pool on and off, side by
//! side in one process, alternating rounds.
//!
//! `cargo bench -p ebbsocks --bench connect_latency [-- RTT_MS ROUNDS]`

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ebbsocks::config::Config;
use ebbsocks::server::{self, Services};
use ebbsocks::upstream::pool::Connector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Connects after sleeping for a simulated network round trip.
struct SlowConnector {
    rtt: Duration,
}

impl Connector for SlowConnector {
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        Box::pin(async move {
            tokio::time::sleep(self.rtt).await;
            TcpStream::connect(addr).await
        })
    }
}

async fn start_proxy(pool: bool, rtt: Duration) -> SocketAddr {
    let mut config = Config::default();
    config.logging.access_log = false;
    config.server.pool.enabled = pool;
    let services = Services::with_connector(config, Arc::new(SlowConnector { rtt }));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(server::serve(listener, services, std::future::pending()));
    addr
}

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Greeting + CONNECT until the success reply; returns the elapsed time.
async fn timed_connect(proxy: SocketAddr, dest: SocketAddr) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(proxy).await.expect("connect proxy");
    stream.set_nodelay(true).expect("nodelay");
    let SocketAddr::V4(v4) = dest else {
        panic!("IPv4 destination expected")
    };
    let mut hello = vec![0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01];
    hello.extend_from_slice(&v4.ip().octets());
    hello.extend_from_slice(&v4.port().to_be_bytes());
    stream.write_all(&hello).await.expect("send");
    let mut reply = [0u8; 12];
    stream.read_exact(&mut reply).await.expect("reply");
    let elapsed = started.elapsed();
    assert_eq!(reply[3], 0x00, "CONNECT refused");
    stream.write_all(b"x").await.expect("echo");
    let mut one = [0u8; 1];
    stream.read_exact(&mut one).await.expect("echo back");
    elapsed
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let rtt_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let rtt = Duration::from_millis(rtt_ms);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dest = echo_server().await;
        let pooled = start_proxy(true, rtt).await;
        let direct = start_proxy(false, rtt).await;
        // Prime the pool: two CONNECTs within the idle timeout put the
        // destination in demand (a destination seen once gets no spare).
        timed_connect(pooled, dest).await;
        timed_connect(pooled, dest).await;
        let (mut hits, mut misses) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            // Leave the pool time to replace what the last round took.
            tokio::time::sleep(rtt * 3).await;
            hits.push(timed_connect(pooled, dest).await);
            misses.push(timed_connect(direct, dest).await);
        }
        hits.sort();
        misses.sort();
        println!("CONNECT latency through ebbsocks, simulated upstream RTT {rtt_ms} ms, {rounds} rounds each");
        println!("{:<22} {:>10} {:>10} {:>10}", "", "p50", "p90", "p99");
        for (name, samples) in [("pool hit (pool on)", &hits), ("miss (pool off)", &misses)] {
            println!(
                "{:<22} {:>10.3?} {:>10.3?} {:>10.3?}",
                name,
                percentile(samples, 0.5),
                percentile(samples, 0.9),
                percentile(samples, 0.99)
            );
        }
        let saved = percentile(&misses, 0.5).saturating_sub(percentile(&hits, 0.5));
        println!("median saved per CONNECT: {saved:.3?}");
    });
}
