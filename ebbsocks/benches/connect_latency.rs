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
use std::time::Duration;

use ebbsocks::config::Config;
use ebbsocks::server::Services;
use ebbsocks::upstream::pool::Connector;
use tokio::net::TcpStream;

mod support;
use support::{echo_server, percentile, print_percentiles, serve_on_loopback};

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
    serve_on_loopback(Services::with_connector(
        config,
        Arc::new(SlowConnector { rtt }),
    ))
    .await
}

/// Greeting + CONNECT until the success reply; returns the elapsed time.
async fn timed_connect(proxy: SocketAddr, dest: SocketAddr) -> Duration {
    support::timed_session(proxy, dest, &[]).await.reply
}

fn main() {
    let rtt_ms: u64 = support::arg(0, 5);
    let rounds: usize = support::arg(1, 200);
    let rtt = Duration::from_millis(rtt_ms);
    support::runtime().block_on(async {
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
        print_percentiles(22, &[("pool hit (pool on)", &hits), ("miss (pool off)", &misses)]);
        let saved = percentile(&misses, 0.5).saturating_sub(percentile(&hits, 0.5));
        println!("median saved per CONNECT: {saved:.3?}");
    });
}
