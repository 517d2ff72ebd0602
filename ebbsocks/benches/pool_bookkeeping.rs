//! Per-destination bookkeeping under a flood of one-off destinations.
//!
//! `cargo bench -p ebbsocks --bench pool_bookkeeping [-- [CASE] [DESTINATIONS]]`
//!
//! CASE is `blackholed` or `refused` (default: both, in that order).
//! Checks out DESTINATIONS (default 100,000) distinct destinations, one task
//! per checkout on a current-thread runtime, yielding after each spawn so the
//! checkout and the pool's cleanup task run as they would in the server.
//! Prints the mean wall time per checkout for each slice of 10,000, which
//! includes whatever cleanup work the slice's checkouts caused.
//!
//! Two connectors, no sockets at all:
//! - `blackholed`: connects never finish (a destination that drops SYNs,
//!   with a long connect timeout), so every destination stays busy and
//!   none can be pruned: the map grows with the flood.
//! - `refused`: connects fail at once, so every destination is unused as
//!   soon as its checkout returns and pruning keeps the map near its cap.
//!
//! Flat rows mean the bookkeeping cost per new destination does not grow
//! with the number of destinations tracked.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use ebbsocks::config::PoolConfig;
use ebbsocks::stats::Telemetry;
use ebbsocks::upstream::pool::{Connector, Pool};
use tokio::net::TcpStream;

const SLICE: u32 = 10_000;

struct Blackholed;

impl Connector for Blackholed {
    fn connect(
        &self,
        _addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        Box::pin(std::future::pending())
    }
}

struct Refused;

impl Connector for Refused {
    fn connect(
        &self,
        _addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        Box::pin(async { Err(io::ErrorKind::ConnectionRefused.into()) })
    }
}

/// A distinct destination per `i` (10.0.0.0/8 and beyond, port 443).
fn dest(i: u32) -> SocketAddr {
    SocketAddr::from((0x0a00_0000u32.wrapping_add(i).to_be_bytes(), 443))
}

async fn flood(name: &str, connector: Arc<dyn Connector>, total: u32) {
    let config = PoolConfig {
        enabled: true,
        // Nothing may time out during the run: busy stays busy.
        connect_timeout_ms: 3_600_000,
        ..PoolConfig::default()
    };
    let pool = Pool::with_connector(config, Arc::new(Telemetry::default()), connector);
    println!("\n{name}: {total} one-off destinations");
    println!("| destinations | µs per checkout | tracked after |");
    println!("|---|---|---|");
    let mut i = 0;
    while i < total {
        let end = (i + SLICE).min(total);
        let start = Instant::now();
        for d in i..end {
            let pool = pool.clone();
            // Blackholed checkouts stay pending until the runtime is dropped.
            drop(tokio::spawn(async move { pool.get(dest(d)).await }));
            tokio::task::yield_now().await;
        }
        let per = start.elapsed().as_secs_f64() * 1e6 / f64::from(end - i);
        let tracked = pool.stats().destinations;
        println!("| {i}-{end} | {per:.2} | {tracked} |");
        i = end;
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let total: u32 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let only = args.iter().find(|a| a.parse::<u32>().is_err());
    for (name, connector) in [
        ("blackholed", Arc::new(Blackholed) as Arc<dyn Connector>),
        ("refused", Arc::new(Refused)),
    ] {
        if only.is_some_and(|only| only != name) {
            continue;
        }
        // A fresh runtime per case: dropping it drops the pending checkouts.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(flood(name, connector, total));
    }
}
