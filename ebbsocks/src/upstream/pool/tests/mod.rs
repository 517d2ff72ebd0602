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
mod policy;
mod reconfigure;

use std::collections::HashMap;
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

    /// The next `n` streams accepted (Keep and Banner modes).
    pub(super) async fn take_streams(&mut self, n: usize) -> Vec<TcpStream> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let what = format!("accepted stream {} of {n}", i + 1);
            out.push(bounded(&what, self.streams.recv()).await.unwrap());
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

/// Like [`Redirect`], but each destination's first `free` connects go
/// through at once and later ones wait until the gate opens; connects are
/// counted. Since a destination's spares are only opened after its
/// checkouts, `free` = the checkouts a test makes holds back exactly the
/// spares, and a test can stop the world with spares in flight.
pub(super) struct Gated {
    pub(super) target: SocketAddr,
    pub(super) free: usize,
    pub(super) open: tokio::sync::watch::Receiver<bool>,
    pub(super) calls: Arc<AtomicUsize>,
    pub(super) per_dest: std::sync::Mutex<HashMap<SocketAddr, usize>>,
}

impl Gated {
    /// The connector and the sender that opens its gate.
    pub(super) fn new(
        target: SocketAddr,
        free: usize,
    ) -> (Self, tokio::sync::watch::Sender<bool>, Arc<AtomicUsize>) {
        let (gate, open) = tokio::sync::watch::channel(false);
        let calls = Arc::new(AtomicUsize::new(0));
        let connector = Gated {
            target,
            free,
            open,
            calls: calls.clone(),
            per_dest: Default::default(),
        };
        (connector, gate, calls)
    }
}

impl Connector for Gated {
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        self.calls.fetch_add(1, SeqCst);
        let seen = {
            let mut per_dest = self.per_dest.lock().unwrap();
            let seen = per_dest.entry(addr).or_default();
            *seen += 1;
            *seen
        };
        let mut open = self.open.clone();
        Box::pin(async move {
            if seen > self.free && open.wait_for(|open| *open).await.is_err() {
                return Err(io::ErrorKind::ConnectionAborted.into());
            }
            TcpStream::connect(self.target).await
        })
    }
}

/// Connects like [`Redirect`] or refuses, as the test switches it; counts
/// every call. A spare connects only when its task first runs, after the
/// checkout that asked for it has returned, so on the test's
/// current-thread runtime a test can let checkouts through and refuse the
/// spares they start.
pub(super) struct Switch {
    pub(super) target: Option<SocketAddr>,
    pub(super) refuse: Arc<std::sync::atomic::AtomicBool>,
    pub(super) calls: Arc<AtomicUsize>,
}

impl Connector for Switch {
    fn connect(
        &self,
        _addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        self.calls.fetch_add(1, SeqCst);
        let target = self.target.filter(|_| !self.refuse.load(SeqCst));
        Box::pin(async move {
            match target {
                Some(target) => TcpStream::connect(target).await,
                None => Err(io::ErrorKind::ConnectionRefused.into()),
            }
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
        warm_after_checkouts: 2,
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

/// Awaits `fut`; fails the test after 10 s of wall-clock time. For waits
/// on sockets, which no clock jump can end.
pub(super) async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    tokio::pin!(fut);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            () = tokio::task::yield_now() => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
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

/// Two checkouts of `d`, closed at once: `d` is now in demand and has one
/// spare idle.
pub(super) async fn warm(pool: &Arc<Pool>, d: SocketAddr) {
    drop(pool.get(d).await.unwrap());
    drop(pool.get(d).await.unwrap());
    settled(pool).await;
}

/// The destination's entry in the stats.
pub(super) fn dest_stats(pool: &Pool, d: SocketAddr) -> DestinationStats {
    let stats = pool.stats().per_destination;
    let found = stats.into_iter().find(|s| s.destination == d.to_string());
    found.unwrap_or_else(|| panic!("{d} is not tracked"))
}

/// A fake destination address (the connector decides where it goes).
pub(super) fn dest(i: u32) -> SocketAddr {
    let [a, b, c, d] = (0x0a00_0000u32 + i).to_be_bytes();
    SocketAddr::from(([a, b, c, d], 443))
}
