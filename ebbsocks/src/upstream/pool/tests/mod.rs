//! Pool tests against real loopback listeners. Helpers here; the tests are
//! grouped by topic in the submodules.
//!
//! Waiting is on conditions (with a wall-clock bound), never on sleeps.
//! Time jumps use tokio's paused clock only while no socket I/O is in
//! flight, so an auto-advanced clock can never fire a connect timeout early.

mod bookkeeping;
mod checkout;
mod lifecycle;
mod limits;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::node::{probe, Probe};
use super::*;

pub(super) const BANNER: &[u8] = b"220 upstream says hello first\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Hand every accepted stream to the test, untouched.
    Keep,
    /// Write a banner first, then hand the stream to the test.
    Banner,
    /// Read each accepted stream to its end, counting bytes and closes.
    Drain,
}

/// A loopback upstream on an ephemeral port.
pub(super) struct Server {
    pub(super) addr: SocketAddr,
    pub(super) accepted: Arc<AtomicUsize>,
    /// Streams that reached end of stream (Drain mode).
    pub(super) closed: Arc<AtomicUsize>,
    /// Bytes received from clients (Drain mode).
    pub(super) bytes: Arc<AtomicUsize>,
    /// Banners written (Banner mode).
    pub(super) banners: Arc<AtomicUsize>,
    pub(super) streams: mpsc::UnboundedReceiver<TcpStream>,
}

impl Server {
    pub(super) async fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, streams) = mpsc::unbounded_channel();
        let server = Server {
            addr,
            accepted: Arc::default(),
            closed: Arc::default(),
            bytes: Arc::default(),
            banners: Arc::default(),
            streams,
        };
        let (accepted, closed, bytes, banners) = (
            server.accepted.clone(),
            server.closed.clone(),
            server.bytes.clone(),
            server.banners.clone(),
        );
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                accepted.fetch_add(1, SeqCst);
                match mode {
                    Mode::Keep => {
                        let _ = tx.send(stream);
                    }
                    Mode::Banner => {
                        stream.write_all(BANNER).await.unwrap();
                        banners.fetch_add(1, SeqCst);
                        let _ = tx.send(stream);
                    }
                    Mode::Drain => {
                        let (closed, bytes) = (closed.clone(), bytes.clone());
                        tokio::spawn(async move {
                            let mut buf = [0u8; 64];
                            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                                bytes.fetch_add(n, SeqCst);
                            }
                            closed.fetch_add(1, SeqCst);
                        });
                    }
                }
            }
        });
        server
    }

    pub(super) fn accepted(&self) -> usize {
        self.accepted.load(SeqCst)
    }

    /// Every stream accepted so far (Keep and Banner modes).
    pub(super) async fn take_streams(&mut self, n: usize) -> Vec<TcpStream> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.streams.recv().await.unwrap());
        }
        out
    }
}

/// Connects every destination to one real listener, so one server can
/// stand in for many destinations.
pub(super) struct Redirect(pub(super) SocketAddr);

impl Connector for Redirect {
    fn connect(
        &self,
        _addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        Box::pin(TcpStream::connect(self.0))
    }
}

/// Like [`Redirect`], after a delay (a simulated round trip).
pub(super) struct Slow(pub(super) SocketAddr, pub(super) Duration);

impl Connector for Slow {
    fn connect(
        &self,
        _addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        Box::pin(async move {
            tokio::time::sleep(self.1).await;
            TcpStream::connect(self.0).await
        })
    }
}

/// Like [`Redirect`], but every connect waits until the gate opens, and
/// connects are counted: a test can stop the world with checkouts and
/// pre-connects in flight and look at it.
pub(super) struct Gated {
    pub(super) target: SocketAddr,
    pub(super) open: tokio::sync::watch::Receiver<bool>,
    pub(super) calls: Arc<AtomicUsize>,
}

impl Connector for Gated {
    fn connect(
        &self,
        _addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        self.calls.fetch_add(1, SeqCst);
        let mut open = self.open.clone();
        Box::pin(async move {
            if open.wait_for(|open| *open).await.is_err() {
                return Err(io::ErrorKind::ConnectionAborted.into());
            }
            TcpStream::connect(self.target).await
        })
    }
}

/// Every connect is refused at once.
pub(super) struct Refused;

impl Connector for Refused {
    fn connect(
        &self,
        _addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        Box::pin(async { Err(io::ErrorKind::ConnectionRefused.into()) })
    }
}

/// Every connect hangs forever.
pub(super) struct Hangs;

impl Connector for Hangs {
    fn connect(
        &self,
        _addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        Box::pin(std::future::pending())
    }
}

pub(super) fn config(max_idle_per_dest: usize, max_total_idle: usize) -> PoolConfig {
    PoolConfig {
        enabled: true,
        max_idle_per_dest,
        max_total_idle,
        idle_timeout_secs: 30,
        connect_timeout_ms: 5000,
    }
}

/// A pool without its cleanup task, so tests run cleanup passes themselves.
pub(super) fn pool_with(
    config: PoolConfig,
    connector: impl Connector,
) -> (Arc<Pool>, Arc<Telemetry>) {
    let telemetry = Arc::new(Telemetry::new(256));
    let pool = Pool::unstarted(config, telemetry.clone(), Arc::new(connector));
    (pool, telemetry)
}

pub(super) fn pool_for(config: PoolConfig, server: &Server) -> (Arc<Pool>, Arc<Telemetry>) {
    pool_with(config, Redirect(server.addr))
}

/// Waits until `cond` holds, yielding to the runtime in between; fails the
/// test after 10 s of wall-clock time.
pub(super) async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::task::yield_now().await;
    }
}

/// Waits until no pre-connect is in flight.
pub(super) async fn settled(pool: &Pool) {
    until("pre-connects to land", || {
        pool.counters.pending.load(SeqCst) == 0
    })
    .await;
}

/// Moves tokio's clock forward by `by`. Call with no socket I/O in flight.
pub(super) async fn jump(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// The destination's idle connections, oldest first, by local address.
pub(super) fn idle_ports(pool: &Pool, dest: SocketAddr) -> Vec<SocketAddr> {
    read(&pool.dests).get(&dest).map_or_else(Vec::new, |node| {
        node.lock()
            .idle
            .iter()
            .map(|c| c.stream.local_addr().unwrap())
            .collect()
    })
}

/// What a probe says about each of the destination's idle connections.
pub(super) fn idle_probes(pool: &Pool, dest: SocketAddr) -> Vec<Probe> {
    read(&pool.dests).get(&dest).map_or_else(Vec::new, |node| {
        node.lock().idle.iter().map(|c| probe(&c.stream)).collect()
    })
}

/// Number of telemetry events whose message contains `needle`.
pub(super) fn events(telemetry: &Telemetry, needle: &str) -> usize {
    telemetry
        .query(&Default::default())
        .iter()
        .filter(|e| e.message.contains(needle))
        .count()
}

/// A fake destination address (the connector decides where it goes).
pub(super) fn dest(i: u32) -> SocketAddr {
    let [a, b, c, d] = (0x0a00_0000u32 + i).to_be_bytes();
    SocketAddr::from(([a, b, c, d], 443))
}
