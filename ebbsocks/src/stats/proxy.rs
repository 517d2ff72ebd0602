//! PROXY protocol headers received from trusted balancers. Refused headers
//! are not here: they end the handshake and are counted with the other
//! handshake failures (`proxy_header_*` reasons).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

#[derive(Debug, Default)]
pub struct ProxyProtocolStats {
    proxied: AtomicU64,
    local: AtomicU64,
    unknown: AtomicU64,
}

/// Accepted headers by what they said, as served in `/api/stats`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ProxyProtocolSnapshot {
    /// Headers that carried a client address, which then stood for the
    /// connection's peer.
    pub proxied: u64,
    /// LOCAL headers: the balancer's own connections (health checks). One
    /// that closes before sending a byte is counted only here, never as a
    /// handshake failure.
    pub local: u64,
    /// UNKNOWN headers, or ones for other than TCP over IPv4/IPv6: the
    /// balancer's address stood for the client.
    pub unknown: u64,
}

impl ProxyProtocolStats {
    pub fn proxied(&self) {
        self.proxied.fetch_add(1, Relaxed);
    }

    pub fn local(&self) {
        self.local.fetch_add(1, Relaxed);
    }

    pub fn unknown(&self) {
        self.unknown.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> ProxyProtocolSnapshot {
        ProxyProtocolSnapshot {
            proxied: self.proxied.load(Relaxed),
            local: self.local.load(Relaxed),
            unknown: self.unknown.load(Relaxed),
        }
    }
}
