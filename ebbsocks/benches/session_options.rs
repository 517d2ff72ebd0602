//! What the session socket options cost a short session: CONNECT through
//! the proxy with TCP keepalive on both legs (the default) versus off.
//! TCP_NODELAY is set either way. Both servers run in one process with the
//! real connector, alternating rounds, against one loopback echo server.
//!
//! `cargo bench -p ebbsocks --bench session_options [-- ROUNDS]`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ebbsocks::config::Config;
use ebbsocks::server::{self, Services};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start_proxy(keepalive: bool) -> SocketAddr {
    let mut config = Config::default();
    config.logging.access_log = false;
    config.server.keepalive.enabled = keepalive;
    let services = Services::new(config);
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

/// Connect, greeting + CONNECT, reply, one byte echoed: a whole short
/// session but its close.
async fn timed_session(proxy: SocketAddr, dest: SocketAddr) -> Duration {
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
    assert_eq!(reply[3], 0x00, "CONNECT refused");
    stream.write_all(b"x").await.expect("echo");
    let mut one = [0u8; 1];
    stream.read_exact(&mut one).await.expect("echo back");
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dest = echo_server().await;
        let on = start_proxy(true).await;
        let off = start_proxy(false).await;
        // Warm both (first-use allocations, resolver start).
        for _ in 0..50 {
            timed_session(on, dest).await;
            timed_session(off, dest).await;
        }
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which goes first, so neither always follows the other.
            if round % 2 == 0 {
                with.push(timed_session(on, dest).await);
                without.push(timed_session(off, dest).await);
            } else {
                without.push(timed_session(off, dest).await);
                with.push(timed_session(on, dest).await);
            }
        }
        with.sort();
        without.sort();
        println!("short CONNECT session through ebbsocks (connect, request, reply, 1-byte echo), {rounds} rounds each");
        println!("{:<28} {:>10} {:>10} {:>10}", "", "p50", "p90", "p99");
        for (name, samples) in [("keepalive on (default)", &with), ("keepalive off", &without)] {
            println!(
                "{:<28} {:>10.3?} {:>10.3?} {:>10.3?}",
                name,
                percentile(samples, 0.5),
                percentile(samples, 0.9),
                percentile(samples, 0.99)
            );
        }
        let ratio = percentile(&with, 0.5).as_secs_f64() / percentile(&without, 0.5).as_secs_f64();
        println!("median ratio on/off: {ratio:.3}");
    });
}
