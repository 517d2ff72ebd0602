//! UDP ASSOCIATE (RFC 1928 section 7): one association relays datagrams
//! between a client and the hosts it names, for as long as its TCP control
//! connection lives. `server/udp.rs` admits it, opens the relay socket and
//! replies; this module is the datagram path.
//!
//! ```text
//! client --[hdr|data]--> relay socket (control conn's local IP, port 0)
//!            checks: client's IP and port, header, FRAG 0, access rules
//!        remote socket (per family, unspecified address) --[data]--> host
//! host --[data]--> remote socket
//!            check: the client sent to this host before
//!        relay socket --[hdr(source)|data]--> client
//! ```
//!
//! Two sockets, not one: the relay socket is bound where the client can
//! reach it, which (on loopback, or on one interface of several) may be an
//! address remote hosts cannot be reached from; and with the two directions
//! on different sockets, a datagram's direction is never guessed from its
//! source (a client may well send to a service on its own host).
//!
//! Files: `run.rs` (the event loop and what ends it), `datagrams.rs` (each
//! direction's checks and relaying), `book.rs` (bounded destinations, names
//! and reported refusals), `recv.rs` (batched receives that skip the empty
//! read), `scratch.rs` (the per-thread buffer).

mod book;
mod datagrams;
mod recv;
mod run;
mod scratch;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::access::{AccessRules, Denial, Subject};
use crate::proto::TargetAddr;
use crate::stats::udp::DropCounts;
use crate::stats::{Stats, UdpDrop};
use crate::upstream::resolve::Resolver;

pub use run::End;

/// What an association borrows from the server for its whole life. The
/// rules are the snapshot taken when it started.
pub struct Context<'a> {
    pub rules: &'a AccessRules,
    pub who: Subject<'a>,
    pub resolver: &'a Resolver,
    pub stats: &'a Stats,
    /// Ends the association after this long without a relayed datagram.
    pub idle_timeout: Option<Duration>,
    /// Reports a refused destination (log line, telemetry, per-rule count);
    /// called at most once per destination per association.
    pub on_denial: &'a (dyn Fn(&TargetAddr, &Denial) + Sync),
}

/// Which datagrams on the relay socket come from the client: its IP (that
/// of the control connection) and one port.
#[derive(Debug, Clone)]
pub struct ClientFilter {
    ip: IpAddr,
    /// Declared in the request, or learnt from the first datagram.
    port: Option<u16>,
    /// Where replies go: the source of the client's datagrams, as the
    /// relay socket saw it.
    reply_to: Option<SocketAddr>,
}

impl ClientFilter {
    /// `control_peer` is the control connection's peer IP; `declared` the
    /// request's DST.ADDR and DST.PORT. The port is pinned only when the
    /// client named its own IP (as the proxy sees it) and a non-zero port;
    /// an unspecified address, port 0, a name, or another IP (a client
    /// behind NAT naming its private address, which says nothing about the
    /// port the proxy will see) leave the first datagram's port to decide.
    pub fn new(control_peer: IpAddr, declared: &TargetAddr) -> Self {
        let ip = control_peer.to_canonical();
        let port = match declared {
            TargetAddr::Ip(addr) if addr.port() != 0 && addr.ip().to_canonical() == ip => {
                Some(addr.port())
            }
            _ => None,
        };
        Self {
            ip,
            port,
            reply_to: None,
        }
    }

    /// Whether a datagram from `source` is the client's; the first one
    /// from its IP fixes the port when none was declared.
    fn admit(&mut self, source: SocketAddr) -> bool {
        if source.ip().to_canonical() != self.ip {
            return false;
        }
        match self.port {
            Some(port) if port != source.port() => return false,
            Some(_) => {}
            None => self.port = Some(source.port()),
        }
        self.reply_to.get_or_insert(source);
        true
    }
}

/// What one association relayed and dropped, for its access-log line.
#[derive(Debug, Default)]
pub struct Tally {
    pub datagrams_up: u64,
    pub bytes_up: u64,
    pub datagrams_down: u64,
    pub bytes_down: u64,
    pub drops: DropCounts<u64>,
}

/// The sockets toward remote hosts, one per address family, opened on
/// first use (an association that only ever talks IPv4 has no IPv6 socket).
#[derive(Debug, Default)]
struct RemoteSockets {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("who", &self.who)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// One association: the relay socket, the remote sockets, what it knows
/// about its client and destinations, and its tally.
#[derive(Debug)]
pub struct Association<'a> {
    cx: Context<'a>,
    relay: UdpSocket,
    remote: RemoteSockets,
    client: ClientFilter,
    book: book::Book,
    last_activity: Instant,
    pub tally: Tally,
}

impl<'a> Association<'a> {
    /// `relay` is the bound client-facing socket (already in the reply).
    pub fn new(cx: Context<'a>, relay: UdpSocket, client: ClientFilter) -> Self {
        Self {
            cx,
            relay,
            remote: RemoteSockets::default(),
            client,
            book: book::Book::new(),
            last_activity: Instant::now(),
            tally: Tally::default(),
        }
    }

    fn drop_datagram(&mut self, reason: UdpDrop) {
        self.tally.drops.add(reason);
        self.cx.stats.udp.dropped(reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn a_declared_port_of_the_clients_own_ip_is_pinned() {
        let peer: IpAddr = "192.0.2.7".parse().expect("ip");
        let mut filter = ClientFilter::new(peer, &TargetAddr::Ip(addr("192.0.2.7:5000")));
        assert!(!filter.admit(addr("192.0.2.7:5001")), "another port first");
        assert!(filter.admit(addr("192.0.2.7:5000")));
        assert!(!filter.admit(addr("198.51.100.1:5000")), "another host");
        assert_eq!(filter.reply_to, Some(addr("192.0.2.7:5000")));
    }

    #[test]
    fn otherwise_the_first_datagram_fixes_the_port() {
        let peer: IpAddr = "192.0.2.7".parse().expect("ip");
        let declarations = [
            TargetAddr::Ip(addr("0.0.0.0:0")),
            TargetAddr::Ip(addr("0.0.0.0:5000")),
            TargetAddr::Ip(addr("192.0.2.7:0")),
            // A client behind NAT naming its private address.
            TargetAddr::Ip(addr("10.0.0.2:5000")),
            TargetAddr::Domain("client.test".into(), 5000),
        ];
        for declared in declarations {
            let mut filter = ClientFilter::new(peer, &declared);
            assert!(!filter.admit(addr("198.51.100.1:6000")), "{declared}");
            assert!(filter.admit(addr("192.0.2.7:6000")), "{declared}");
            assert!(!filter.admit(addr("192.0.2.7:6001")), "{declared}");
            assert!(filter.admit(addr("192.0.2.7:6000")), "{declared}");
        }
    }

    #[test]
    fn ipv4_mapped_sources_are_the_same_client() {
        let peer: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        let mut filter = ClientFilter::new(peer, &TargetAddr::Ip(addr("0.0.0.0:0")));
        assert!(filter.admit(addr("127.0.0.1:7000")));
        assert!(filter.admit(addr("[::ffff:127.0.0.1]:7000")));
        assert_eq!(filter.reply_to, Some(addr("127.0.0.1:7000")));
    }
}
