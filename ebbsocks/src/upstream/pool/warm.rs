//! Warm-up: reserving room for a pre-connect, running it in the background
//! and putting the new connection in the pool.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::events::Kind;
use super::node::{DestNode, DestState, IdleConn};
use super::{connect_with_timeout, millis, Pool, MAX_PENDING_CONNECTS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Room {
    Reserved,
    /// Not warming this destination now (paused after a banner), or too
    /// many pre-connects in flight pool-wide: skip quietly.
    Skip,
    /// The destination already has `max_idle_per_dest` idle or reserved.
    Full,
}

impl Pool {
    /// The per-destination half of a warm-up, decided under the node's lock
    /// during the checkout: reserves a pre-connect if the destination has
    /// room and the pool-wide cap on pre-connects in flight allows one.
    pub(super) fn reserve_warm_up(&self, state: &mut DestState, now: Instant) -> Room {
        if state.warm_paused_until.is_some_and(|until| now < until) {
            Room::Skip
        } else if state.idle.len() + state.reserved >= self.config.max_idle_per_dest {
            state.counters.dropped += 1;
            Room::Full
        } else if !take(&self.counters.pending, MAX_PENDING_CONNECTS) {
            Room::Skip
        } else {
            state.reserved += 1;
            Room::Reserved
        }
    }

    /// The rest of a warm-up, with no lock held: reports a full destination,
    /// or reserves a pool-wide slot (evicting the oldest idle connection if
    /// the pool is full) and starts the pre-connect.
    pub(super) fn warm_up(
        self: &Arc<Self>,
        room: Room,
        node: &Arc<DestNode>,
        dest: SocketAddr,
        now: Instant,
    ) {
        match room {
            Room::Reserved => {}
            Room::Skip => return,
            Room::Full => return self.dropped_full(dest, "max_idle_per_dest"),
        }

        if !take(&self.slots, self.config.max_total_idle) {
            // The pool is full: the oldest idle connection anywhere makes
            // room, and its slot passes straight to this reservation.
            match self.evictions.evict_oldest() {
                Some((victim, conn)) => {
                    self.counters.idle.fetch_sub(1, Relaxed);
                    self.counters.evicted.fetch_add(1, Relaxed);
                    self.events.record(&self.telemetry, Kind::Evicted, || {
                        serde_json::json!({
                            "destination": victim.to_string(),
                            "idle_ms": millis(now.saturating_duration_since(conn.since)),
                            "for_destination": dest.to_string(),
                        })
                    });
                    drop(conn);
                }
                None => {
                    // Every slot is a pre-connect in flight.
                    {
                        let mut state = node.lock();
                        state.reserved -= 1;
                        state.counters.dropped += 1;
                    }
                    self.counters.pending.fetch_sub(1, Relaxed);
                    return self.dropped_full(dest, "max_total_idle");
                }
            }
        }

        let task = PreConnect {
            pool: Arc::downgrade(self),
            node: node.clone(),
            dest,
        };
        let connector = self.connector.clone();
        let timeout = self.config.connect_timeout();
        tokio::spawn(async move {
            let result = connect_with_timeout(&*connector, task.dest, timeout).await;
            task.land(result);
        });
    }

    fn dropped_full(&self, dest: SocketAddr, limit: &'static str) {
        self.counters.dropped_full.fetch_add(1, Relaxed);
        self.events.record(
            &self.telemetry,
            Kind::DroppedFull,
            || serde_json::json!({ "destination": dest.to_string(), "limit": limit }),
        );
    }
}

/// A reserved pre-connect. Holds the pool weakly: if the pool is dropped
/// meanwhile, the new connection is simply closed.
struct PreConnect {
    pool: Weak<Pool>,
    node: Arc<DestNode>,
    dest: SocketAddr,
}

impl PreConnect {
    fn land(self, result: io::Result<TcpStream>) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        let counters = &pool.counters;
        match result {
            Ok(stream) => {
                let id = pool.next_id.fetch_add(1, Relaxed);
                {
                    let mut state = self.node.lock();
                    state.reserved -= 1;
                    state.counters.created += 1;
                    state.idle.push(IdleConn {
                        id,
                        stream,
                        since: Instant::now(),
                    });
                }
                counters.created.fetch_add(1, Relaxed);
                counters.idle.fetch_add(1, Relaxed);
                counters.pending.fetch_sub(1, Relaxed);
                // After the node's lock is released: lock order is queue first.
                pool.evictions.push(id, self.dest, &self.node);
            }
            Err(error) => {
                self.node.lock().reserved -= 1;
                pool.slots.fetch_sub(1, Relaxed);
                counters.pending.fetch_sub(1, Relaxed);
                pool.connect_failed(self.dest, &error, "pre-connect");
            }
        }
    }
}

/// Increments `counter` if it is below `max`.
fn take(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
        .is_ok()
}
