//! What the session socket options cost a short session: CONNECT through
//! the proxy with TCP keepalive on both legs (the default) versus off.
//! TCP_NODELAY is set either way. Both servers run in one process with the
//! real connector, alternating rounds, against one loopback echo server.
//!
//! `cargo bench -p ebbsocks --bench session_options [-- ROUNDS]`

use std::net::SocketAddr;
use std::time::Duration;

use ebbsocks::config::Config;
use ebbsocks::server::Services;

mod support;
use support::{echo_server, percentile, print_percentiles, serve_on_loopback};

async fn start_proxy(keepalive: bool) -> SocketAddr {
    let mut config = Config::default();
    config.logging.access_log = false;
    config.server.keepalive.enabled = keepalive;
    serve_on_loopback(Services::new(config)).await
}

/// A whole short session but its close (see `support::timed_session`).
async fn timed_session(proxy: SocketAddr, dest: SocketAddr) -> Duration {
    support::timed_session(proxy, dest, &[]).await.echoed
}

fn main() {
    let rounds: usize = support::arg(0, 2000);
    support::runtime().block_on(async {
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
        print_percentiles(
            28,
            &[("keepalive on (default)", &with), ("keepalive off", &without)],
        );
        let ratio = percentile(&with, 0.5).as_secs_f64() / percentile(&without, 0.5).as_secs_f64();
        println!("median ratio on/off: {ratio:.3}");
    });
}
