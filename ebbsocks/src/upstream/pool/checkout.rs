//! The checkout's synchronous part: find the destination's node, take its
//! newest idle connection that is still pristine, and count what happened,
//! all under that one node's lock.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::time::Instant;

use super::demand::{PauseReason, Rule};
use super::events::Kind;
use super::node::{probe, DestNode, IdleConn, Probe};
use super::{millis, read, write, Outcome, Pool};
use crate::config::PoolConfig;

impl Pool {
    /// Takes the newest usable idle connection for `dest`, discarding
    /// expired and stale ones on the way, counts the checkout as demand,
    /// and on a hit reserves the destination's side of its replacement,
    /// all under one lock.
    pub(super) fn checkout(
        &self,
        dest: SocketAddr,
        now: Instant,
        config: &PoolConfig,
    ) -> (Arc<DestNode>, Outcome) {
        let timeout = config.idle_timeout();
        let mut discarded: Vec<(IdleConn, Option<Probe>)> = Vec::new();
        let mut paused = None;
        let (node, outcome) = loop {
            let node = self.node_for(dest);
            let mut state = node.lock();
            if state.removed {
                // Pruned between the lookup and the lock: look up again.
                continue;
            }
            state.last_activity = now;
            let mut hit = None;
            while let Some(conn) = state.idle.pop() {
                self.counters.idle.fetch_sub(1, Relaxed);
                self.slots.fetch_sub(1, Relaxed);
                if now.saturating_duration_since(conn.since) >= timeout {
                    state.counters.expired += 1;
                    discarded.push((conn, None));
                    continue;
                }
                match probe(&conn.stream) {
                    Probe::Pristine => {
                        hit = Some(conn.stream);
                        break;
                    }
                    verdict => {
                        state.counters.stale += 1;
                        let reason = match verdict {
                            Probe::Data => PauseReason::SpeaksFirst,
                            Probe::Closed => PauseReason::ClosesIdle,
                            Probe::Pristine | Probe::Error(_) => PauseReason::Broken,
                        };
                        if let Some(length) = state.pause.strike(now, timeout, reason) {
                            paused = Some((reason, length));
                        }
                        discarded.push((conn, Some(verdict)));
                    }
                }
            }
            let outcome = match hit {
                Some(stream) => {
                    state.counters.hits += 1;
                    state.in_use += 1;
                    // A spare served a client: pooling works here.
                    state.pause.clear_strikes();
                    let open = state.in_use + state.connecting;
                    state.demand.checkout(now, open, Rule::of(config));
                    Outcome::Hit(stream, self.reserve_warm_up(&mut state, now, config))
                }
                None => {
                    state.counters.misses += 1;
                    state.connecting += 1;
                    let open = state.in_use + state.connecting;
                    state.demand.checkout(now, open, Rule::of(config));
                    Outcome::Miss
                }
            };
            drop(state);
            break (node, outcome);
        };
        let counter = match outcome {
            Outcome::Hit(..) => &self.counters.hits,
            Outcome::Miss => &self.counters.misses,
        };
        counter.fetch_add(1, Relaxed);
        // Closed here, outside the node's lock.
        for (conn, verdict) in discarded {
            match verdict {
                None => {
                    self.counters.expired.fetch_add(1, Relaxed);
                }
                Some(verdict) => {
                    self.counters.stale.fetch_add(1, Relaxed);
                    self.events.record(&self.telemetry, Kind::Stale, || {
                        serde_json::json!({
                            "destination": dest.to_string(),
                            "reason": verdict.label(),
                            "idle_ms": millis(now.saturating_duration_since(conn.since)),
                        })
                    });
                }
            }
        }
        if let Some((reason, length)) = paused {
            self.warm_paused(dest, reason, length);
        }
        (node, outcome)
    }

    /// The destination's node, added if new.
    fn node_for(&self, dest: SocketAddr) -> Arc<DestNode> {
        if let Some(node) = read(&self.dests).get(&dest) {
            return node.clone();
        }
        let mut map = write(&self.dests);
        let node = map
            .entry(dest)
            .or_insert_with(|| Arc::new(DestNode::new(Instant::now())))
            .clone();
        // Amortised: see `cleanup.rs` for why this is not every time the
        // map is over the cap.
        if self.trigger.wants_pass(map.len()) {
            self.cleanup_wake.notify_one();
        }
        node
    }
}
