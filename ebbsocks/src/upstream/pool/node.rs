//! One destination's node: its idle connections and bookkeeping behind a
//! small mutex of its own, so checkouts to different destinations never
//! contend, and the idle probe that decides whether a connection is still
//! pristine.

use std::io;
use std::mem::MaybeUninit;
use std::sync::{Mutex, MutexGuard};

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::demand::{Demand, Pause};
use crate::stats::lock;

/// A connection the pool opened itself and has never handed out.
#[derive(Debug)]
pub(super) struct IdleConn {
    /// Unique per pool, increasing in the order connections went idle; the
    /// eviction queue refers to connections by it.
    pub(super) id: u64,
    pub(super) stream: TcpStream,
    /// When it went idle, which for a never-used connection is when it was
    /// opened.
    pub(super) since: Instant,
}

/// Per-destination counters, as reported in the stats.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct DestCounters {
    pub(super) hits: u64,
    pub(super) misses: u64,
    /// Connections opened for this destination, by checkouts and spares.
    pub(super) created: u64,
    /// The part of `created` opened as spares.
    pub(super) spares_created: u64,
    pub(super) dropped: u64,
    pub(super) evicted: u64,
    pub(super) expired: u64,
    pub(super) stale: u64,
}

#[derive(Debug)]
pub(super) struct DestState {
    /// Oldest first: checkout pops from the end (LIFO), so the connection
    /// handed out is the one least likely to have been closed by the peer,
    /// and the oldest ones age out.
    pub(super) idle: Vec<IdleConn>,
    /// Pre-connects in flight for this destination; each one holds a slot
    /// under both limits until it lands or fails.
    pub(super) reserved: usize,
    /// Checkouts that missed and are connecting now.
    pub(super) connecting: usize,
    /// Connections handed out whose lease is alive.
    pub(super) in_use: usize,
    pub(super) last_activity: Instant,
    /// Recent checkouts: whether, and how many, spares are earned.
    pub(super) demand: Demand,
    /// Warming suspended after the destination proved unsuited to pooling
    /// (closed or talking idle connections, a failed spare connect).
    pub(super) pause: Pause,
    /// Set, under the map's write lock, when the node leaves the map. A
    /// checkout that finds it set looks the destination up again.
    pub(super) removed: bool,
    pub(super) counters: DestCounters,
}

impl DestState {
    /// Nothing refers to this destination but its bookkeeping.
    pub(super) fn is_unused(&self) -> bool {
        self.idle.is_empty() && self.reserved == 0 && self.connecting == 0 && self.in_use == 0
    }
}

#[derive(Debug)]
pub(super) struct DestNode {
    state: Mutex<DestState>,
}

impl DestNode {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            state: Mutex::new(DestState {
                idle: Vec::new(),
                reserved: 0,
                connecting: 0,
                in_use: 0,
                last_activity: now,
                demand: Demand::new(now),
                pause: Pause::default(),
                removed: false,
                counters: DestCounters::default(),
            }),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, DestState> {
        lock(&self.state)
    }
}

/// What a non-blocking one-byte peek says about an idle connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Probe {
    /// Nothing to read and no error: still pristine.
    Pristine,
    /// The peer closed it.
    Closed,
    /// The peer sent bytes on its own (a banner, or anything): the
    /// connection is no longer pristine.
    Data,
    Error(io::ErrorKind),
}

impl Probe {
    pub(super) fn label(self) -> &'static str {
        match self {
            Probe::Pristine => "pristine",
            Probe::Closed => "closed",
            Probe::Data => "data",
            Probe::Error(_) => "error",
        }
    }
}

/// Peeks at one byte with a real `recv(MSG_PEEK)` on the non-blocking
/// socket. Tokio's `try_read` is not enough: it answers from readiness the
/// reactor has cached and may say "would block" for a FIN the reactor has
/// not seen yet.
pub(super) fn probe(stream: &TcpStream) -> Probe {
    let socket = socket2::SockRef::from(stream);
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    loop {
        return match socket.peek(&mut byte) {
            Ok(0) => Probe::Closed,
            Ok(_) => Probe::Data,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Probe::Pristine,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Probe::Error(e.kind()),
        };
    }
}
