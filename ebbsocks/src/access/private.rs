//! Which destination addresses are not public: the set refused when
//! `private_destinations` denies them.
//!
//! IPv6 has several forms that carry an IPv4 address inside (IPv4-mapped,
//! IPv4-compatible, NAT64, 6to4, Teredo). A dual-stack socket or a
//! translator on the path delivers them to that IPv4 host, so an IPv6
//! address is as private as any IPv4 address it embeds; otherwise
//! `::ffff:169.254.169.254` would walk past a check that only knows IPv4.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True for loopback, unspecified, RFC 1918, CGNAT, link-local, `0.0.0.0/8`,
/// broadcast, multicast and reserved IPv4 addresses, the IPv6 equivalents
/// (unique-local, link-local, site-local, multicast, local-use NAT64), and
/// any IPv6 address embedding such an IPv4 address.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, _, _] = ip.octets();
    a == 0                                  // 0.0.0.0/8 "this network", incl. unspecified
        || a == 10                          // 10.0.0.0/8
        || a == 127                         // 127.0.0.0/8 loopback
        || (a == 100 && (b & 0xc0) == 64)   // 100.64.0.0/10 CGNAT
        || (a == 169 && b == 254)           // 169.254.0.0/16 link-local, cloud metadata
        || (a == 172 && (b & 0xf0) == 16)   // 172.16.0.0/12
        || (a == 192 && b == 168)           // 192.168.0.0/16
        || a >= 224 // 224.0.0.0/4 multicast, 240.0.0.0/4 reserved, 255.255.255.255
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let native = ip.is_unspecified()
        || ip.is_loopback()
        || (first & 0xfe00) == 0xfc00       // fc00::/7 unique-local
        || (first & 0xffc0) == 0xfe80       // fe80::/10 link-local
        || (first & 0xffc0) == 0xfec0       // fec0::/10 site-local (deprecated)
        || (first & 0xff00) == 0xff00       // ff00::/8 multicast
        || in_prefix(ip, LOCAL_NAT64, 48); // 64:ff9b:1::/48, translated by local policy
    native || embedded_ipv4(ip).into_iter().flatten().any(is_private_v4)
}

const LOCAL_NAT64: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0);
const NAT64: Ipv6Addr = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);
const MAPPED: Ipv6Addr = Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0);
const SIX_TO_FOUR: Ipv6Addr = Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0);
const TEREDO: Ipv6Addr = Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0);

/// The IPv4 addresses an IPv6 address carries: IPv4-mapped `::ffff:0:0/96`,
/// IPv4-compatible `::/96`, NAT64 `64:ff9b::/96` (the low 32 bits), 6to4
/// `2002::/16` (bits 16..48), Teredo `2001::/32` (the server in bits
/// 32..64, the client inverted in the low 32 bits; both count).
pub fn embedded_ipv4(ip: Ipv6Addr) -> [Option<Ipv4Addr>; 2] {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from(bits as u32);
    if in_prefix(ip, MAPPED, 96) || in_prefix(ip, Ipv6Addr::UNSPECIFIED, 96) {
        return [Some(low), None];
    }
    if in_prefix(ip, NAT64, 96) {
        return [Some(low), None];
    }
    if in_prefix(ip, SIX_TO_FOUR, 16) {
        return [Some(Ipv4Addr::from((bits >> 80) as u32)), None];
    }
    if in_prefix(ip, TEREDO, 32) {
        let server = Ipv4Addr::from((bits >> 64) as u32);
        let client = Ipv4Addr::from(!(bits as u32));
        return [Some(server), Some(client)];
    }
    [None, None]
}

fn in_prefix(ip: Ipv6Addr, network: Ipv6Addr, len: u32) -> bool {
    let mask = u128::MAX << (128 - len);
    u128::from(ip) & mask == u128::from(network)
}
