//! Server-wide UDP ASSOCIATE counters, and the association limit (the
//! active count is the one number both need, so one atomic serves both).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// Why a datagram was not relayed. Every reason is a fixed label, so the
/// counters are a fixed array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpDrop {
    /// From the client side, but not from the client's IP and port.
    ForeignSource,
    /// The UDP request header does not parse.
    Malformed,
    /// FRAG is not 0: fragments are not reassembled.
    Fragmented,
    /// The access rules refuse the destination.
    Denied,
    /// The destination name did not resolve (or not in time).
    Unresolved,
    /// From a remote host the client never sent to.
    Unsolicited,
    /// The kernel would not send it (buffer full, too large with the
    /// header, unreachable network).
    SendFailed,
}

impl UdpDrop {
    pub const ALL: [UdpDrop; 7] = [
        UdpDrop::ForeignSource,
        UdpDrop::Malformed,
        UdpDrop::Fragmented,
        UdpDrop::Denied,
        UdpDrop::Unresolved,
        UdpDrop::Unsolicited,
        UdpDrop::SendFailed,
    ];

    /// The stable label it is counted under.
    pub const fn label(self) -> &'static str {
        match self {
            UdpDrop::ForeignSource => "foreign_source",
            UdpDrop::Malformed => "malformed",
            UdpDrop::Fragmented => "fragmented",
            UdpDrop::Denied => "denied",
            UdpDrop::Unresolved => "unresolved",
            UdpDrop::Unsolicited => "unsolicited",
            UdpDrop::SendFailed => "send_failed",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Drops by reason: a fixed array, for the server and for one association.
#[derive(Debug, Default)]
pub struct DropCounts<T>([T; UdpDrop::ALL.len()]);

impl DropCounts<u64> {
    pub fn add(&mut self, reason: UdpDrop) {
        self.0[reason.index()] += 1;
    }

    /// `reason=count` pairs of the non-zero counts, for a log line.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = UdpDrop::ALL
            .iter()
            .filter(|r| self.0[r.index()] > 0)
            .map(|r| format!("{}={}", r.label(), self.0[r.index()]))
            .collect();
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(",")
        }
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// Counters for UDP associations. Bytes are payload bytes (DATA), without
/// the SOCKS header.
#[derive(Debug, Default)]
pub struct UdpStats {
    associations_active: AtomicU64,
    associations_total: AtomicU64,
    associations_refused: AtomicU64,
    datagrams_client_to_remote: AtomicU64,
    bytes_client_to_remote: AtomicU64,
    datagrams_remote_to_client: AtomicU64,
    bytes_remote_to_client: AtomicU64,
    drops: DropCounts<AtomicU64>,
}

/// A point-in-time copy of [`UdpStats`], the `udp` object of `/api/stats`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UdpSnapshot {
    pub associations_active: u64,
    pub associations_total: u64,
    pub associations_refused: u64,
    pub datagrams_client_to_remote: u64,
    pub bytes_client_to_remote: u64,
    pub datagrams_remote_to_client: u64,
    pub bytes_remote_to_client: u64,
    /// Every reason, zeros included, so the keys are stable.
    pub drops: BTreeMap<&'static str, u64>,
}

/// One slot under `max_udp_associations`, held for the association's life;
/// dropping it (normal end or a dropped future) frees the slot.
#[derive(Debug)]
pub struct AssociationSlot<'a> {
    stats: &'a UdpStats,
}

impl Drop for AssociationSlot<'_> {
    fn drop(&mut self) {
        self.stats.associations_active.fetch_sub(1, Relaxed);
    }
}

impl UdpStats {
    /// Takes a slot if fewer than `max` associations are active; otherwise
    /// counts the refusal.
    pub fn admit(&self, max: usize) -> Option<AssociationSlot<'_>> {
        let max = max as u64;
        let admitted = self
            .associations_active
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok();
        if admitted {
            self.associations_total.fetch_add(1, Relaxed);
            Some(AssociationSlot { stats: self })
        } else {
            self.associations_refused.fetch_add(1, Relaxed);
            None
        }
    }

    pub fn client_to_remote(&self, payload: usize) {
        self.datagrams_client_to_remote.fetch_add(1, Relaxed);
        self.bytes_client_to_remote
            .fetch_add(payload as u64, Relaxed);
    }

    pub fn remote_to_client(&self, payload: usize) {
        self.datagrams_remote_to_client.fetch_add(1, Relaxed);
        self.bytes_remote_to_client
            .fetch_add(payload as u64, Relaxed);
    }

    pub fn dropped(&self, reason: UdpDrop) {
        self.drops.0[reason.index()].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> UdpSnapshot {
        UdpSnapshot {
            associations_active: self.associations_active.load(Relaxed),
            associations_total: self.associations_total.load(Relaxed),
            associations_refused: self.associations_refused.load(Relaxed),
            datagrams_client_to_remote: self.datagrams_client_to_remote.load(Relaxed),
            bytes_client_to_remote: self.bytes_client_to_remote.load(Relaxed),
            datagrams_remote_to_client: self.datagrams_remote_to_client.load(Relaxed),
            bytes_remote_to_client: self.bytes_remote_to_client.load(Relaxed),
            drops: UdpDrop::ALL
                .iter()
                .map(|r| (r.label(), self.drops.0[r.index()].load(Relaxed)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_and_freed_on_drop() {
        let stats = UdpStats::default();
        let first = stats.admit(2).expect("first");
        let second = stats.admit(2).expect("second");
        assert!(stats.admit(2).is_none(), "a third is over the limit");
        drop(first);
        let third = stats.admit(2).expect("a slot was freed");
        let snap = stats.snapshot();
        assert_eq!(snap.associations_active, 2);
        assert_eq!(snap.associations_total, 3);
        assert_eq!(snap.associations_refused, 1);
        drop((second, third));
        assert_eq!(stats.snapshot().associations_active, 0);
    }

    #[test]
    fn datagrams_bytes_and_drops_are_counted() {
        let stats = UdpStats::default();
        stats.client_to_remote(512);
        stats.client_to_remote(0);
        stats.remote_to_client(100);
        stats.dropped(UdpDrop::Fragmented);
        stats.dropped(UdpDrop::Fragmented);
        stats.dropped(UdpDrop::Unsolicited);
        let snap = stats.snapshot();
        assert_eq!(
            (snap.datagrams_client_to_remote, snap.bytes_client_to_remote),
            (2, 512)
        );
        assert_eq!(
            (snap.datagrams_remote_to_client, snap.bytes_remote_to_client),
            (1, 100)
        );
        assert_eq!(snap.drops["fragmented"], 2);
        assert_eq!(snap.drops["unsolicited"], 1);
        assert_eq!(snap.drops["malformed"], 0);
        assert_eq!(snap.drops.len(), UdpDrop::ALL.len(), "stable keys");
    }

    #[test]
    fn the_api_shows_every_counter_and_reason() {
        let stats = UdpStats::default();
        stats.dropped(UdpDrop::Denied);
        let json = serde_json::to_value(stats.snapshot()).expect("serializes");
        for key in [
            "associations_active",
            "associations_total",
            "associations_refused",
            "datagrams_client_to_remote",
            "bytes_client_to_remote",
            "datagrams_remote_to_client",
            "bytes_remote_to_client",
        ] {
            assert_eq!(json[key], 0, "{key}");
        }
        assert_eq!(json["drops"]["denied"], 1);
        for reason in UdpDrop::ALL {
            assert!(json["drops"][reason.label()].is_u64(), "{}", reason.label());
        }
    }

    #[test]
    fn per_association_drops_summarise_for_the_log() {
        let mut drops = DropCounts::<u64>::default();
        assert_eq!(drops.summary(), "-");
        drops.add(UdpDrop::Malformed);
        drops.add(UdpDrop::Malformed);
        drops.add(UdpDrop::Denied);
        assert_eq!(drops.summary(), "malformed=2,denied=1");
        assert_eq!(drops.total(), 3);
    }
}
