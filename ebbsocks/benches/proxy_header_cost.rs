//! What the PROXY protocol step costs a CONNECT: three servers in one
//! process, side by side, rounds alternating between them:
//!
//! - `off`: `server.proxy_protocol.trusted` empty (the default);
//! - `trusted`: loopback trusted, each connection starting with a v2
//!   header (as HAProxy's `send-proxy-v2` sends it, in the same write as the
//!   greeting and request);
//! - `untrusted`: the PROXY protocol on for another address, so a direct
//!   loopback client is read once more up front and checked for a header.
//!
//! Each round times connect, [header,] greeting + CONNECT until the success
//! reply, then echoes one byte.
//!
//! `cargo bench -p ebbsocks --bench proxy_header_cost [-- ROUNDS]`

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ebbsocks::config::Config;
use ebbsocks::proto::ProxyHeader;
use ebbsocks::server::{self, Services};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start_proxy(extra: &str) -> SocketAddr {
    let text = format!("[logging]\naccess_log = false\n{extra}");
    let config = Config::from_toml(&text, Path::new("bench.toml")).expect("config");
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

/// [header +] greeting + CONNECT until the success reply; the elapsed time.
async fn timed_connect(proxy: SocketAddr, dest: SocketAddr, header: &[u8]) -> Duration {
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
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dest = echo_server().await;
        let off = start_proxy("").await;
        let trusted = start_proxy("[server.proxy_protocol]\ntrusted = [\"127.0.0.1\"]\n").await;
        let untrusted = start_proxy("[server.proxy_protocol]\ntrusted = [\"192.0.2.1\"]\n").await;
        let mut header = Vec::new();
        ProxyHeader::Proxied {
            source: "192.0.2.7:40000".parse().expect("addr"),
            destination: "127.0.0.1:1080".parse().expect("addr"),
        }
        .encode_v2(&mut header)
        .expect("header");
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            // Rotate which server goes first, so none always follows another.
            for turn in 0..3 {
                match (round + turn) % 3 {
                    0 => a.push(timed_connect(off, dest, &[]).await),
                    1 => b.push(timed_connect(trusted, dest, &header).await),
                    _ => c.push(timed_connect(untrusted, dest, &[]).await),
                }
            }
        }
        println!("CONNECT setup through ebbsocks, {rounds} rounds each, rotating order");
        println!("{:<36} {:>10} {:>10} {:>10}", "", "p50", "p90", "p99");
        let rows = [
            ("PROXY protocol off", &mut a),
            ("trusted balancer, v2 header", &mut b),
            ("on, direct untrusted client", &mut c),
        ];
        for (name, samples) in rows {
            samples.sort();
            println!(
                "{:<36} {:>10.3?} {:>10.3?} {:>10.3?}",
                name,
                percentile(samples, 0.5),
                percentile(samples, 0.9),
                percentile(samples, 0.99)
            );
        }
    });
}
