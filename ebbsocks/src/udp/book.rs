//! An association's bounded memory of where its client went: the
//! destinations it sent to (replies are accepted only from them), the names
//! it resolved, and the refusals already reported. Each is capped and starts
//! empty, without allocating, so an idle association pays nothing for them.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::access::Denial;
use crate::proto::TargetAddr;

/// Destinations remembered per association. A client talking to more
/// hosts than this at once (a scanner, not a game or a DNS client) loses
/// replies from the oldest until it sends to them again.
pub(super) const MAX_DESTINATIONS: usize = 256;
/// Names remembered per association, each for [`NAME_TTL`].
pub(super) const MAX_NAMES: usize = 32;
/// How long a resolved (or refused, or failed) name is reused. hickory's
/// record TTLs are not passed through `Resolver`, so this is a fixed, short
/// bound: a name that moves is followed within a minute.
pub(super) const NAME_TTL: Duration = Duration::from_secs(60);
/// Refused destinations reported per association; past it, refusals are
/// still counted per rule but no longer logged.
pub(super) const MAX_NOTED_DENIALS: usize = 64;

/// A set with a cap that forgets its oldest member to admit a new one.
#[derive(Debug)]
pub(super) struct BoundedSet<T> {
    members: HashSet<T>,
    order: VecDeque<T>,
    cap: usize,
}

impl<T: Hash + Eq + Clone> BoundedSet<T> {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            members: HashSet::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    pub(super) fn contains(&self, item: &T) -> bool {
        self.members.contains(item)
    }

    /// Adds `item`, forgetting the oldest member when full. Returns whether
    /// it was new.
    pub(super) fn insert(&mut self, item: T) -> bool {
        if self.members.contains(&item) {
            return false;
        }
        if self.members.len() >= self.cap {
            if let Some(oldest) = self.order.pop_front() {
                self.members.remove(&oldest);
            }
        }
        self.members.insert(item.clone());
        self.order.push_back(item);
        true
    }

    /// Adds `item` only while there is room; never forgets a member.
    /// Returns whether it was new and added.
    pub(super) fn insert_while_room(&mut self, item: T) -> bool {
        if self.members.len() >= self.cap || self.members.contains(&item) {
            return false;
        }
        self.insert(item)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.members.len()
    }
}

/// What resolving a name for a datagram came to.
#[derive(Debug, Clone)]
pub(super) enum NameVerdict {
    /// Send to this address (resolved, and allowed by the rules).
    Send(SocketAddr),
    /// The rules refuse the name, or every address it resolved to.
    Denied(Denial),
    /// It did not resolve (in time).
    Unresolved,
}

#[derive(Debug)]
struct NameEntry {
    name: Box<str>,
    port: u16,
    verdict: NameVerdict,
    expires: Instant,
}

/// Resolved names, keyed by name and port (the rules may decide by port).
/// A linear scan: with at most [`MAX_NAMES`] entries it is as fast as a
/// hash and needs no second copy of the key.
#[derive(Debug, Default)]
pub(super) struct NameCache {
    entries: Vec<NameEntry>,
}

impl NameCache {
    pub(super) fn get(&self, name: &str, port: u16, now: Instant) -> Option<&NameVerdict> {
        self.entries
            .iter()
            .find(|e| e.port == port && &*e.name == name && e.expires > now)
            .map(|e| &e.verdict)
    }

    pub(super) fn insert(&mut self, name: &str, port: u16, verdict: NameVerdict, now: Instant) {
        self.entries
            .retain(|e| e.expires > now && !(e.port == port && &*e.name == name));
        if self.entries.len() >= MAX_NAMES {
            // All live: forget the one closest to expiry (the oldest).
            if let Some(oldest) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].expires) {
                self.entries.swap_remove(oldest);
            }
        }
        self.entries.push(NameEntry {
            name: name.into(),
            port,
            verdict,
            expires: now + NAME_TTL,
        });
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The association's three memories.
#[derive(Debug)]
pub(super) struct Book {
    /// Where the client sent datagrams (canonical addresses), all of which
    /// the rules allowed: the only sources whose replies are relayed.
    pub(super) destinations: BoundedSet<SocketAddr>,
    pub(super) names: NameCache,
    /// Destinations whose refusal was already reported.
    pub(super) noted_denials: BoundedSet<TargetAddr>,
}

impl Book {
    pub(super) fn new() -> Self {
        Self {
            destinations: BoundedSet::new(MAX_DESTINATIONS),
            names: NameCache::default(),
            noted_denials: BoundedSet::new(MAX_NOTED_DENIALS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn destinations_forget_the_oldest_past_the_cap() {
        let mut set = BoundedSet::new(3);
        for port in 1..=3 {
            assert!(set.insert(addr(port)));
        }
        assert!(!set.insert(addr(2)), "already there");
        assert!(set.insert(addr(4)));
        assert_eq!(set.len(), 3);
        assert!(!set.contains(&addr(1)), "the oldest went");
        assert!(set.contains(&addr(2)) && set.contains(&addr(4)));
    }

    #[test]
    fn noted_denials_stop_at_the_cap_instead_of_forgetting() {
        let mut set = BoundedSet::new(2);
        assert!(set.insert_while_room(addr(1)));
        assert!(!set.insert_while_room(addr(1)), "noted once");
        assert!(set.insert_while_room(addr(2)));
        assert!(!set.insert_while_room(addr(3)), "full: not noted");
        assert!(!set.insert_while_room(addr(1)), "and 1 is still known");
    }

    #[tokio::test(start_paused = true)]
    async fn names_expire_and_stay_bounded() {
        let mut cache = NameCache::default();
        let now = Instant::now();
        cache.insert("a.test", 53, NameVerdict::Send(addr(53)), now);
        assert!(matches!(
            cache.get("a.test", 53, now),
            Some(NameVerdict::Send(a)) if *a == addr(53)
        ));
        assert!(cache.get("a.test", 54, now).is_none(), "keyed by port too");
        assert!(cache.get("a.test", 53, now + NAME_TTL).is_none(), "expired");

        for i in 0..(MAX_NAMES * 2) {
            let later = now + Duration::from_millis(i as u64);
            cache.insert(&format!("n{i}.test"), 1, NameVerdict::Unresolved, later);
        }
        assert_eq!(cache.len(), MAX_NAMES);
        let last = now + Duration::from_millis((MAX_NAMES * 2 - 1) as u64);
        let newest = format!("n{}.test", MAX_NAMES * 2 - 1);
        assert!(cache.get(&newest, 1, last).is_some());
        assert!(cache.get("n0.test", 1, last).is_none(), "oldest evicted");
    }
}
