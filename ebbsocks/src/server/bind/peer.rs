//! Who a BIND waits for and where it listens: pure decisions plus one
//! routing-table lookup, kept apart from the socket handling in `mod.rs`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use crate::proto::Version;

/// The inbound connection a BIND accepts, from its DST.ADDR (RFC 1928
/// section 6: the server "uses DST.ADDR and DST.PORT in evaluating the BIND
/// request"; we match the address, never the port, which the peer picks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ExpectedPeer {
    /// DST.ADDR was 0.0.0.0 or `::`: any peer the access rules allow.
    Any,
    /// The requested address, or the allowed addresses its name resolved
    /// to; always in canonical form (see [`canonical_ip`]).
    Hosts(Vec<IpAddr>),
}

impl ExpectedPeer {
    pub(super) fn admits(&self, peer: IpAddr) -> bool {
        match self {
            Self::Any => true,
            Self::Hosts(hosts) => hosts.contains(&canonical_ip(peer)),
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack socket
/// reports an IPv4 peer) as the IPv4 address it is; anything else unchanged.
/// Comparisons and access checks always see this form, so one host cannot
/// pass as two.
pub(super) fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

pub(super) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(addr.ip()), addr.port())
}

/// The local address the kernel would send from to reach `dest`: the
/// address a peer at `dest` can most likely reach us at. A connected UDP
/// socket answers from the routing table; no packet is sent.
pub(super) async fn route_source(dest: IpAddr) -> io::Result<IpAddr> {
    // Any port will do for the lookup; some systems refuse port 0.
    const PROBE_PORT: u16 = 9;
    let dest = canonical_ip(dest);
    let local: SocketAddr = match dest {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let probe = tokio::net::UdpSocket::bind(local).await?;
    probe.connect((dest, PROBE_PORT)).await?;
    Ok(canonical_ip(probe.local_addr()?.ip()))
}

/// An address as a reply in `version` can carry it. SOCKS4 replies hold
/// IPv4 only; for an IPv6 address they say 0.0.0.0 with the real port,
/// which a SOCKS4 client reads as "the address of the proxy you are
/// connected to" (true for a listener on the control connection's address).
pub(super) fn for_reply(version: Version, addr: SocketAddr) -> SocketAddr {
    let addr = canonical(addr);
    match (version, addr) {
        (Version::Socks4, SocketAddr::V6(v6)) => {
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, v6.port()))
        }
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("valid address")
    }

    #[test]
    fn any_admits_every_peer() {
        assert!(ExpectedPeer::Any.admits(ip("192.0.2.9")));
        assert!(ExpectedPeer::Any.admits(ip("2001:db8::9")));
    }

    #[test]
    fn hosts_admit_only_their_addresses_in_either_form() {
        let expected = ExpectedPeer::Hosts(vec![ip("192.0.2.1"), ip("2001:db8::1")]);
        assert!(expected.admits(ip("192.0.2.1")));
        assert!(expected.admits(ip("::ffff:192.0.2.1")));
        assert!(expected.admits(ip("2001:db8::1")));
        assert!(!expected.admits(ip("192.0.2.2")));
        assert!(!expected.admits(ip("::ffff:192.0.2.2")));
        // IPv4-compatible (deprecated) is not the mapped form: no match.
        assert!(!expected.admits(ip("::192.0.2.1")));
    }

    #[test]
    fn socks4_replies_carry_ipv4_only() {
        let v6: SocketAddr = "[2001:db8::1]:4000".parse().expect("valid");
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:4000".parse().expect("valid");
        let v4: SocketAddr = "192.0.2.1:4000".parse().expect("valid");
        assert_eq!(
            for_reply(Version::Socks4, v6),
            "0.0.0.0:4000".parse().expect("valid")
        );
        assert_eq!(for_reply(Version::Socks4, mapped), v4);
        assert_eq!(for_reply(Version::Socks5, mapped), v4);
        assert_eq!(for_reply(Version::Socks5, v6), v6);
    }

    #[tokio::test]
    async fn the_route_to_loopback_starts_on_loopback() {
        let source = route_source(ip("127.0.0.1")).await.expect("route");
        assert!(source.is_loopback(), "{source}");
        let mapped = route_source(ip("::ffff:127.0.0.1")).await.expect("route");
        assert!(mapped.is_ipv4() && mapped.is_loopback(), "{mapped}");
    }
}
