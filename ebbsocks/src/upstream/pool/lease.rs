//! What a checkout hands out: the stream, and a lease that counts it as in
//! use until the session ends. Dropping the lease returns nothing to the
//! pool: a connection that was handed out may have carried bytes, so it is
//! closed with its session, never reused.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::node::DestNode;
use super::stats::Counters;

/// An upstream connection from [`Pool::get`](super::Pool::get).
#[derive(Debug)]
pub struct Upstream {
    pub stream: TcpStream,
    /// True if the connection was pre-connected by the pool (a hit); it had
    /// still never carried a byte.
    pub reused: bool,
    lease: Lease,
}

impl Upstream {
    pub(super) fn new(stream: TcpStream, reused: bool, lease: Lease) -> Self {
        Self {
            stream,
            reused,
            lease,
        }
    }

    /// Splits off the stream so the relay can own it; keep the lease alive
    /// for as long as the session, since it counts the connection in use.
    pub fn into_parts(self) -> (TcpStream, Lease) {
        (self.stream, self.lease)
    }

    pub fn lease(&self) -> &Lease {
        &self.lease
    }
}

/// Counts one upstream connection as in use until dropped.
#[derive(Debug)]
pub struct Lease {
    dest: SocketAddr,
    reused: bool,
    counters: Arc<Counters>,
    /// `None` when the pool is disabled (no per-destination bookkeeping).
    node: Option<Arc<DestNode>>,
}

impl Lease {
    /// Counts a new connection in use. With a node, the caller has already
    /// counted it in the node's state under its lock.
    pub(super) fn new(
        dest: SocketAddr,
        reused: bool,
        counters: Arc<Counters>,
        node: Option<Arc<DestNode>>,
    ) -> Self {
        counters.in_use.fetch_add(1, Relaxed);
        Self {
            dest,
            reused,
            counters,
            node,
        }
    }

    pub fn destination(&self) -> SocketAddr {
        self.dest
    }

    pub fn reused(&self) -> bool {
        self.reused
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.counters.in_use.fetch_sub(1, Relaxed);
        if let Some(node) = &self.node {
            let mut state = node.lock();
            state.in_use -= 1;
            state.last_activity = Instant::now();
        }
    }
}

/// A checkout that missed and is connecting. Counted in its node so that
/// the cleanup task does not prune the destination meanwhile; dropping it
/// (connect failed, or the caller gave up on `get`) uncounts it.
#[derive(Debug)]
pub(super) struct Connecting {
    dest: SocketAddr,
    counters: Arc<Counters>,
    node: Option<Arc<DestNode>>,
}

impl Connecting {
    /// The caller has counted `connecting` in the node's state.
    pub(super) fn new(dest: SocketAddr, counters: Arc<Counters>, node: Arc<DestNode>) -> Self {
        Self {
            dest,
            counters,
            node: Some(node),
        }
    }

    /// The connect succeeded: the checkout becomes a lease.
    pub(super) fn into_lease(mut self) -> Lease {
        let node = self.node.take();
        if let Some(node) = &node {
            let mut state = node.lock();
            state.connecting -= 1;
            state.in_use += 1;
            state.counters.created += 1;
        }
        self.counters.checkout_created.fetch_add(1, Relaxed);
        Lease::new(self.dest, false, self.counters.clone(), node)
    }
}

impl Drop for Connecting {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            let mut state = node.lock();
            state.connecting -= 1;
            state.last_activity = Instant::now();
        }
    }
}
