//! Per-client budget of failed logins. Once a client address has used up
//! `max_failures` within one window (which starts at its first attempt),
//! its further attempts are refused before argon2 runs, until the window
//! ends. A success does not refund failures, so one valid account cannot be
//! used to reset the budget while guessing another.
//!
//! Attempts still being verified count against the budget too: otherwise a
//! client could open a hundred connections at once and have every one of
//! them verified before the first failure is recorded.
//!
//! IPv6 clients are keyed by their /64 network, since one host usually
//! holds a whole /64 and could otherwise rotate through fresh addresses.
//! The table is bounded: expired entries are pruned, clients without
//! failures or attempts in flight are not kept, and when it is still full
//! the entry whose window started first is evicted. An attacker with more
//! addresses than the table holds gains nothing it did not already have
//! (each fresh address is a fresh budget anyway).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::stats::lock;

#[derive(Debug)]
pub(super) struct FailureThrottle {
    /// 0 turns the throttle off.
    max_failures: u32,
    window: Duration,
    max_clients: usize,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    clients: HashMap<IpAddr, Entry>,
    last_prune: Option<Instant>,
}

#[derive(Debug)]
struct Entry {
    window_start: Instant,
    failures: u32,
    in_flight: u32,
    /// Attempts refused in this window.
    refused: u32,
}

/// The client's budget is used up; `first` is true for the first refusal
/// in this window (worth a log line of its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Throttled {
    pub(super) first: bool,
}

impl FailureThrottle {
    pub(super) fn new(max_failures: u32, window: Duration, max_clients: usize) -> Self {
        Self {
            max_failures,
            window,
            max_clients: max_clients.max(1),
            table: Mutex::new(Table::default()),
        }
    }

    /// Admits one login attempt from `client`, or refuses it. The attempt
    /// counts as in flight until [`Attempt::finish`] or drop.
    pub(super) fn begin(&self, client: IpAddr) -> Result<Attempt<'_>, Throttled> {
        let key = client_key(client);
        if self.max_failures == 0 {
            return Ok(Attempt {
                throttle: self,
                key: None,
            });
        }
        let now = Instant::now();
        let mut table = lock(&self.table);
        self.prune_if_due(&mut table, now);
        if !table.clients.contains_key(&key) && table.clients.len() >= self.max_clients {
            self.make_room(&mut table, now);
        }
        let entry = table.clients.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            in_flight: 0,
            refused: 0,
        });
        if now.duration_since(entry.window_start) >= self.window {
            entry.window_start = now;
            entry.failures = 0;
            entry.refused = 0;
        }
        if entry.failures + entry.in_flight >= self.max_failures {
            let first = entry.refused == 0;
            entry.refused = entry.refused.saturating_add(1);
            return Err(Throttled { first });
        }
        entry.in_flight += 1;
        Ok(Attempt {
            throttle: self,
            key: Some(key),
        })
    }

    /// Client entries held now (for tests of the bound).
    #[cfg(test)]
    pub(super) fn tracked(&self) -> usize {
        lock(&self.table).clients.len()
    }

    fn settle(&self, key: IpAddr, failed: bool) {
        let now = Instant::now();
        let mut table = lock(&self.table);
        let clients = &mut table.clients;
        match clients.get_mut(&key) {
            Some(entry) => {
                entry.in_flight = entry.in_flight.saturating_sub(1);
                if failed {
                    if now.duration_since(entry.window_start) >= self.window {
                        entry.window_start = now;
                        entry.failures = 0;
                        entry.refused = 0;
                    }
                    entry.failures = entry.failures.saturating_add(1);
                }
                if entry.failures == 0 && entry.in_flight == 0 {
                    clients.remove(&key);
                }
            }
            // Evicted while verifying: start again with this failure.
            None if failed => {
                if clients.len() >= self.max_clients {
                    self.make_room(&mut table, now);
                }
                table.clients.insert(
                    key,
                    Entry {
                        window_start: now,
                        failures: 1,
                        in_flight: 0,
                        refused: 0,
                    },
                );
            }
            None => {}
        }
    }

    /// Drops expired entries at most once per window, and gives memory
    /// back when the table has shrunk well below its capacity.
    fn prune_if_due(&self, table: &mut Table, now: Instant) {
        if table
            .last_prune
            .is_some_and(|last| now.duration_since(last) < self.window)
        {
            return;
        }
        table.last_prune = Some(now);
        self.prune(table, now);
    }

    fn prune(&self, table: &mut Table, now: Instant) {
        let window = self.window;
        table
            .clients
            .retain(|_, e| e.in_flight > 0 || now.duration_since(e.window_start) < window);
        if table.clients.capacity() > 2 * table.clients.len() + 16 {
            table.clients.shrink_to_fit();
        }
    }

    /// Called when the table is full and a new client arrives.
    fn make_room(&self, table: &mut Table, now: Instant) {
        self.prune(table, now);
        if table.clients.len() < self.max_clients {
            return;
        }
        let oldest = table
            .clients
            .iter()
            .min_by_key(|(_, e)| e.window_start)
            .map(|(key, _)| *key);
        if let Some(oldest) = oldest {
            table.clients.remove(&oldest);
        }
    }
}

/// One login attempt admitted by the throttle. Dropped without
/// [`Attempt::finish`] (the handshake deadline passed), it is released
/// without counting: the client never learned whether it was right.
#[derive(Debug)]
pub(super) struct Attempt<'a> {
    throttle: &'a FailureThrottle,
    /// `None` when the throttle is off.
    key: Option<IpAddr>,
}

impl Attempt<'_> {
    pub(super) fn finish(mut self, accepted: bool) {
        if let Some(key) = self.key.take() {
            self.throttle.settle(key, !accepted);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut table = lock(&self.throttle.table);
            if let Some(entry) = table.clients.get_mut(&key) {
                entry.in_flight = entry.in_flight.saturating_sub(1);
                if entry.failures == 0 && entry.in_flight == 0 {
                    table.clients.remove(&key);
                }
            }
        }
    }
}

/// IPv4 (also when mapped into IPv6) by address, IPv6 by /64 network.
fn client_key(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
#[path = "throttle_tests.rs"]
mod tests;
