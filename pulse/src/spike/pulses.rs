//! Opening a pulse's connections with bounded concurrency, and closing them.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::sampler::Shared;
use crate::dial::Dialer;
use crate::fail::{FailCounts, FailKind};
use crate::socks::Target;

/// Opens `n` connections to `dest`, at most `concurrency` in flight. A fixed
/// set of workers pulls numbers from a counter, so no task per connection
/// sits waiting for a permit.
pub async fn open_many(
    n: usize,
    concurrency: usize,
    dialer: &Arc<Dialer>,
    dest: &Arc<Target>,
    shared: &Arc<Shared>,
) -> (Vec<TcpStream>, FailCounts) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = JoinSet::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let (next, dialer, dest, shared) =
            (next.clone(), dialer.clone(), dest.clone(), shared.clone());
        workers.spawn(async move {
            let mut held = Vec::new();
            let mut fails = FailCounts::default();
            while next.fetch_add(1, Ordering::Relaxed) < n {
                match dialer.dial(&dest).await {
                    Ok(s) => {
                        shared.open.fetch_add(1, Ordering::Relaxed);
                        held.push(s);
                    }
                    Err(kind) => fails.add(kind),
                }
            }
            (held, fails)
        });
    }
    let mut all = Vec::with_capacity(n);
    let mut fails = FailCounts::default();
    while let Some(done) = workers.join_next().await {
        match done {
            Ok((held, f)) => {
                all.extend(held);
                fails.merge(f);
            }
            Err(e) => fails.add(FailKind::Other(format!("worker: {e}"))),
        }
    }
    (all, fails)
}

/// Closes every stream. Before closing, a non-blocking read tells whether
/// the server dropped the connection during the hold: a server that sheds
/// idle connections must not look like one that held them.
pub fn close_all(streams: Vec<TcpStream>, shared: &Shared) -> FailCounts {
    let mut fails = FailCounts::default();
    let mut probe = [0u8; 1];
    for s in streams {
        match s.try_read(&mut probe) {
            Ok(0) => fails.add(FailKind::ClosedDuringHold),
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => {
                fails.add(FailKind::ClosedDuringHold);
            }
            _ => {}
        }
        drop(s);
        shared.open.fetch_sub(1, Ordering::Relaxed);
    }
    fails
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servers::{loopback, Server, Service};
    use std::time::Duration;

    #[tokio::test]
    async fn opens_counts_and_closes() {
        let sink = Server::start(loopback(), Service::Sink).await.unwrap();
        let shared = Arc::new(Shared::new());
        let dialer = Arc::new(Dialer::direct(Duration::from_secs(5)));
        let dest = Arc::new(Target::Addr(sink.addr));
        let (held, fails) = open_many(40, 8, &dialer, &dest, &shared).await;
        assert_eq!(held.len(), 40);
        assert!(fails.is_empty());
        assert_eq!(shared.open.load(Ordering::Relaxed), 40);
        assert!(close_all(held, &shared).is_empty());
        assert_eq!(shared.open.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn refused_connections_are_counted() {
        // Bind then drop a listener to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let shared = Arc::new(Shared::new());
        let dialer = Arc::new(Dialer::direct(Duration::from_secs(5)));
        let (held, fails) = open_many(3, 2, &dialer, &Arc::new(Target::Addr(port)), &shared).await;
        assert!(held.is_empty());
        assert_eq!(fails.to_map()["refused"], 3);
    }
}
