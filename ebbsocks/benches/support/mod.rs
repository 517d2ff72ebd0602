//! Setup shared by the CONNECT benchmarks (`connect_latency`,
//! `session_options`, `proxy_header_cost`): a proxy and an echo server on
//! loopback, one timed SOCKS5 session, the percentile table. Each benchmark
//! is its own crate and uses only part of this, hence the `dead_code` allow.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ebbsocks::server::{self, Services};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Argument `index` (from 0, not counting the `--bench` cargo adds) as a
/// `T`; `default` when it is missing or does not parse.
pub fn arg<T: FromStr>(index: usize, default: T) -> T {
    std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .nth(index)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Serves `services` on a fresh loopback port until the process ends.
pub async fn serve_on_loopback(services: Arc<Services>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(server::serve(listener, services, std::future::pending()));
    addr
}

/// A loopback server that echoes every connection back.
pub async fn echo_server() -> SocketAddr {
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

/// When a timed session reached each step, from its connect.
pub struct SessionTimes {
    /// The CONNECT success reply was read.
    pub reply: Duration,
    /// One byte went to the destination and came back.
    pub echoed: Duration,
}

/// Connect, `header` (may be empty) + greeting + CONNECT to `dest` in one
/// write, the reply, one byte echoed: a whole short session but its close.
pub async fn timed_session(proxy: SocketAddr, dest: SocketAddr, header: &[u8]) -> SessionTimes {
    let started = Instant::now();
    let mut stream = TcpStream::connect(proxy).await.expect("connect proxy");
    stream.set_nodelay(true).expect("nodelay");
    let SocketAddr::V4(v4) = dest else {
        panic!("IPv4 destination expected")
    };
    let mut hello = header.to_vec();
    hello.extend_from_slice(&[0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01]);
    hello.extend_from_slice(&v4.ip().octets());
    hello.extend_from_slice(&v4.port().to_be_bytes());
    stream.write_all(&hello).await.expect("send");
    let mut reply = [0u8; 12];
    stream.read_exact(&mut reply).await.expect("reply");
    let replied = started.elapsed();
    assert_eq!(reply[3], 0x00, "CONNECT refused");
    stream.write_all(b"x").await.expect("echo");
    let mut one = [0u8; 1];
    stream.read_exact(&mut one).await.expect("echo back");
    SessionTimes {
        reply: replied,
        echoed: started.elapsed(),
    }
}

/// The `p` quantile (0..=1) of `sorted`, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// A p50/p90/p99 table, one row a named sorted sample set, names padded to
/// `name_width`.
pub fn print_percentiles(name_width: usize, rows: &[(&str, &[Duration])]) {
    println!(
        "{:<name_width$} {:>10} {:>10} {:>10}",
        "", "p50", "p90", "p99"
    );
    for (name, samples) in rows {
        println!(
            "{:<name_width$} {:>10.3?} {:>10.3?} {:>10.3?}",
            name,
            percentile(samples, 0.5),
            percentile(samples, 0.9),
            percentile(samples, 0.99)
        );
    }
}
