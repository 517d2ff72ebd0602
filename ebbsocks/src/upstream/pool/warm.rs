//! Warm-up: deciding whether a destination gets a spare, reserving room for
//! it, opening it in the background and putting it in the pool.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use super::demand::{PauseReason, Rule};
use super::events::Kind;
use super::node::{DestNode, DestState, IdleConn};
use super::{connect_with_timeout, millis, Pool, MAX_PENDING_CONNECTS};
use crate::config::PoolConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Room {
    Reserved,
    /// No spare now: the destination is not in demand, has the spares its
    /// demand earned, is paused, or too many spares are in flight
    /// pool-wide. Nothing is counted: nothing was turned away.
    Skip,
}

impl Pool {
    /// The per-destination half of a warm-up, decided under the node's
    /// lock: reserves a spare if the destination's demand asks for more
    /// than it has idle or coming, and the pool-wide cap on spares in
    /// flight allows one.
    pub(super) fn reserve_warm_up(
        &self,
        state: &mut DestState,
        now: Instant,
        config: &PoolConfig,
    ) -> Room {
        if state.removed || state.pause.active(now) {
            return Room::Skip;
        }
        let target = state.demand.target(now, Rule::of(config));
        if state.idle.len() + state.reserved >= target
            || !take(&self.counters.pending, MAX_PENDING_CONNECTS)
        {
            return Room::Skip;
        }
        state.reserved += 1;
        Room::Reserved
    }

    /// The rest of a warm-up, with no lock held: reserves a pool-wide slot
    /// (evicting the oldest idle connection if the pool is full) and starts
    /// the spare's connect.
    pub(super) fn warm_up(
        self: &Arc<Self>,
        room: Room,
        node: &Arc<DestNode>,
        dest: SocketAddr,
        now: Instant,
        config: &PoolConfig,
    ) {
        if room == Room::Skip {
            return;
        }
        if !take(&self.slots, config.max_total_idle) {
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
                    // Every slot is a spare in flight.
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
        let timeout = config.connect_timeout();
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

    /// Counts and reports a destination judged unsuited to pooling.
    pub(super) fn warm_paused(&self, dest: SocketAddr, reason: PauseReason, length: Duration) {
        self.counters.warm_pauses.fetch_add(1, Relaxed);
        self.events.record(&self.telemetry, Kind::WarmPaused, || {
            serde_json::json!({
                "destination": dest.to_string(),
                "reason": reason.label(),
                "paused_secs": length.as_secs(),
            })
        });
    }
}

/// A reserved spare. Holds the pool weakly: if the pool is dropped
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
        let config = pool.settings();
        match result {
            Ok(stream) => {
                counters.spares_created.fetch_add(1, Relaxed);
                let id = pool.next_id.fetch_add(1, Relaxed);
                // The limit with no room left, if limits were lowered (or
                // the pool disabled) while it connected.
                let refused = {
                    let mut state = self.node.lock();
                    state.reserved -= 1;
                    state.counters.created += 1;
                    state.counters.spares_created += 1;
                    let refusal = if !config.enabled || state.removed {
                        Some("disabled")
                    } else if state.idle.len() >= config.max_idle_per_dest {
                        Some("max_idle_per_dest")
                    } else if pool.slots.load(Relaxed) > config.max_total_idle {
                        Some("max_total_idle")
                    } else {
                        state.idle.push(IdleConn {
                            id,
                            stream,
                            since: Instant::now(),
                        });
                        None
                    };
                    if refusal.is_some() {
                        state.counters.dropped += 1;
                    }
                    refusal
                };
                counters.pending.fetch_sub(1, Relaxed);
                match refused {
                    None => {
                        counters.idle.fetch_add(1, Relaxed);
                        // After the node's lock is released: lock order is
                        // queue first.
                        pool.evictions.push(id, self.dest, &self.node);
                    }
                    Some(limit) => {
                        pool.slots.fetch_sub(1, Relaxed);
                        pool.dropped_full(self.dest, limit);
                    }
                }
            }
            Err(error) => {
                let now = Instant::now();
                let paused = {
                    let mut state = self.node.lock();
                    state.reserved -= 1;
                    let reason = PauseReason::ConnectFailed;
                    state.pause.strike(now, config.idle_timeout(), reason)
                };
                pool.slots.fetch_sub(1, Relaxed);
                counters.pending.fetch_sub(1, Relaxed);
                counters.spares_failed.fetch_add(1, Relaxed);
                pool.connect_failed(self.dest, &error, "spare");
                if let Some(length) = paused {
                    pool.warm_paused(self.dest, PauseReason::ConnectFailed, length);
                }
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
