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
use std::time::Duration;

use ebbsocks::config::Config;
use ebbsocks::proto::ProxyHeader;
use ebbsocks::server::Services;

mod support;
use support::{echo_server, print_percentiles, serve_on_loopback};

async fn start_proxy(extra: &str) -> SocketAddr {
    let text = format!("[logging]\naccess_log = false\n{extra}");
    let config = Config::from_toml(&text, Path::new("bench.toml")).expect("config");
    serve_on_loopback(Services::new(config)).await
}

/// [header +] greeting + CONNECT until the success reply; the elapsed time.
async fn timed_connect(proxy: SocketAddr, dest: SocketAddr, header: &[u8]) -> Duration {
    support::timed_session(proxy, dest, header).await.reply
}

fn main() {
    let rounds: usize = support::arg(0, 2000);
    support::runtime().block_on(async {
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
        a.sort();
        b.sort();
        c.sort();
        print_percentiles(
            36,
            &[
                ("PROXY protocol off", &a),
                ("trusted balancer, v2 header", &b),
                ("on, direct untrusted client", &c),
            ],
        );
    });
}
