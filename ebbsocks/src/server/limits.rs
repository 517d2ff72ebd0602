//! Concurrent session limits per client address and per user
//! (`access.max_sessions_per_client`, `access.max_sessions_per_user`).
//!
//! A session holds a [`SessionSlot`] from its request until it ends; the
//! slot gives its count back when dropped, and a key whose count reaches
//! zero leaves the map, so the maps never hold more keys than there are
//! live sessions. With both limits at 0 nothing is tracked at all.
//!
//! A reload changes the limits in place ([`SessionLimits::set`]): sessions
//! already counted stay counted, and a limit turned on from 0 counts the
//! sessions that start after it (those already running were not tracked).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::stats::lock;

/// Which limit a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    PerClient,
    PerUser,
}

impl LimitHit {
    /// The counted reason.
    pub const fn reason(self) -> &'static str {
        match self {
            LimitHit::PerClient => "max_sessions_per_client",
            LimitHit::PerUser => "max_sessions_per_user",
        }
    }
}

#[derive(Debug)]
pub struct SessionLimits {
    clients: Counted<IpAddr>,
    users: Counted<Arc<str>>,
}

/// Live sessions per key, under a limit (0 = unlimited, nothing tracked).
#[derive(Debug)]
struct Counted<K> {
    limit: AtomicUsize,
    live: Mutex<HashMap<K, usize>>,
}

impl<K: Hash + Eq + Clone> Counted<K> {
    fn new(limit: usize) -> Self {
        Self {
            limit: AtomicUsize::new(limit),
            live: Mutex::new(HashMap::new()),
        }
    }

    fn tracks(&self) -> bool {
        self.limit.load(Relaxed) > 0
    }

    fn try_take(&self, key: &K) -> bool {
        let limit = self.limit.load(Relaxed);
        let mut live = lock(&self.live);
        let count = live.entry(key.clone()).or_insert(0);
        // 0 here means a reload turned the limit off after `tracks()`: the
        // session is counted all the same, and its slot gives it back.
        if limit > 0 && *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    fn give_back(&self, key: &K) {
        let mut live = lock(&self.live);
        if let Some(count) = live.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                live.remove(key);
            }
        }
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        lock(&self.live).len()
    }
}

impl SessionLimits {
    pub fn new(per_client: usize, per_user: usize) -> Arc<Self> {
        Arc::new(Self {
            clients: Counted::new(per_client),
            users: Counted::new(per_user),
        })
    }

    /// New limits for sessions that start from now on (a reload); running
    /// sessions keep their slots, so a lowered limit refuses new sessions
    /// until enough of them end.
    pub fn set(&self, per_client: usize, per_user: usize) {
        self.clients.limit.store(per_client, Relaxed);
        self.users.limit.store(per_user, Relaxed);
    }

    /// A slot for one more session of `client` (and `user`), or the limit
    /// it would exceed. `Ok(None)` when no limit is configured.
    pub fn admit(
        self: &Arc<Self>,
        client: IpAddr,
        user: Option<&str>,
    ) -> Result<Option<Box<SessionSlot>>, LimitHit> {
        let user = user.filter(|_| self.users.tracks());
        if !self.clients.tracks() && user.is_none() {
            return Ok(None);
        }
        let client = canonical(client);
        let client = if self.clients.tracks() {
            if !self.clients.try_take(&client) {
                return Err(LimitHit::PerClient);
            }
            Some(client)
        } else {
            None
        };
        let user: Option<Arc<str>> = user.map(Arc::from);
        if let Some(name) = &user {
            if !self.users.try_take(name) {
                if let Some(client) = &client {
                    self.clients.give_back(client);
                }
                return Err(LimitHit::PerUser);
            }
        }
        Ok(Some(Box::new(SessionSlot {
            limits: self.clone(),
            client,
            user,
        })))
    }
}

/// IPv4 clients that reach a dual-stack listener arrive as IPv4-mapped
/// IPv6 addresses; they count as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// One session's share of the limits, returned when dropped.
#[derive(Debug)]
pub struct SessionSlot {
    limits: Arc<SessionLimits>,
    client: Option<IpAddr>,
    user: Option<Arc<str>>,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        if let Some(client) = &self.client {
            self.limits.clients.give_back(client);
        }
        if let Some(user) = &self.user {
            self.limits.users.give_back(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn unlimited_tracks_nothing() {
        let limits = SessionLimits::new(0, 0);
        for _ in 0..100 {
            assert!(limits.admit(A, Some("alice")).expect("no limit").is_none());
        }
        assert_eq!(limits.clients.keys() + limits.users.keys(), 0);
    }

    #[test]
    fn per_client_limit_holds_until_a_slot_is_dropped() {
        let limits = SessionLimits::new(2, 0);
        let first = limits.admit(A, None).expect("first");
        let _second = limits.admit(A, None).expect("second");
        assert_eq!(limits.admit(A, None).unwrap_err(), LimitHit::PerClient);
        // Another address has its own budget.
        let _other = limits.admit(B, None).expect("other client");
        drop(first);
        let _third = limits.admit(A, None).expect("slot freed");
    }

    #[test]
    fn ipv4_mapped_clients_count_as_ipv4() {
        let limits = SessionLimits::new(1, 0);
        let _v4 = limits.admit(A, None).expect("first");
        let mapped = IpAddr::V6(std::net::Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        assert_eq!(limits.admit(mapped, None).unwrap_err(), LimitHit::PerClient);
    }

    #[test]
    fn per_user_limit_spans_client_addresses_and_gives_back_the_client_slot() {
        let limits = SessionLimits::new(5, 1);
        let _alice = limits.admit(A, Some("alice")).expect("first");
        assert_eq!(
            limits.admit(B, Some("alice")).unwrap_err(),
            LimitHit::PerUser
        );
        // The refused request took nothing: B still has its whole budget.
        assert_eq!(limits.clients.keys(), 1);
        let _bob = limits.admit(B, Some("bob")).expect("another user");
        // Without authentication there is no user to limit.
        let _anon = limits.admit(B, None).expect("no user");
    }

    #[test]
    fn maps_shrink_back_to_empty() {
        let limits = SessionLimits::new(3, 3);
        let slots: Vec<_> = (0..3)
            .map(|i| {
                let user = format!("u{i}");
                limits.admit(A, Some(&user)).expect("admitted")
            })
            .collect();
        assert_eq!(limits.clients.keys(), 1);
        assert_eq!(limits.users.keys(), 3);
        drop(slots);
        assert_eq!(limits.clients.keys() + limits.users.keys(), 0);
    }

    #[test]
    fn new_limits_apply_to_new_sessions_and_running_ones_keep_their_slots() {
        let limits = SessionLimits::new(2, 0);
        let first = limits.admit(A, None).expect("first");
        let second = limits.admit(A, None).expect("second");
        limits.set(1, 0);
        // Both running sessions keep their slots; the lowered limit refuses
        // new ones until the count is below it.
        assert_eq!(limits.admit(A, None).unwrap_err(), LimitHit::PerClient);
        drop(first);
        assert_eq!(limits.admit(A, None).unwrap_err(), LimitHit::PerClient);
        drop(second);
        let third = limits.admit(A, None).expect("below the new limit");
        // Turned off: nothing new is tracked, and the slot still counted
        // gives its count back.
        limits.set(0, 0);
        assert!(limits.admit(A, None).expect("unlimited").is_none());
        drop(third);
        assert_eq!(limits.clients.keys(), 0);
        // Turned on from 0: counts the sessions that start from now on.
        limits.set(0, 1);
        let _alice = limits.admit(A, Some("alice")).expect("first of alice");
        assert_eq!(
            limits.admit(B, Some("alice")).unwrap_err(),
            LimitHit::PerUser
        );
    }
}
