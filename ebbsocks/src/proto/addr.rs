//! The target address of a request, and the SOCKS5 address encoding
//! (ATYP, address, port) shared by requests and replies.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{bytes_at, len_byte, u16_at, ParseResult, ProtoError};

/// ATYP `0x01`: 4 bytes of IPv4 address.
pub(super) const ATYP_IPV4: u8 = 0x01;
/// ATYP `0x03`: a length byte, then that many bytes of domain name.
pub(super) const ATYP_DOMAIN: u8 = 0x03;
/// ATYP `0x04`: 16 bytes of IPv6 address.
pub(super) const ATYP_IPV6: u8 = 0x04;

/// Where the client wants to go: an address, or a name the proxy resolves.
///
/// A `Domain` that came from a parser is never empty, is at most 255 bytes
/// and holds no control characters (see [`TargetAddr::check_domain`]).
/// It is kept as sent, even when it spells an IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TargetAddr {
    /// An IPv4 or IPv6 socket address.
    Ip(SocketAddr),
    /// A host name and a port.
    Domain(String, u16),
}

impl TargetAddr {
    /// The destination port.
    pub const fn port(&self) -> u16 {
        match self {
            TargetAddr::Ip(addr) => addr.port(),
            TargetAddr::Domain(_, port) => *port,
        }
    }

    /// Checks a domain name as it appears on the wire: not empty, UTF-8, no
    /// NUL or other control characters. Length is the caller's business
    /// (the SOCKS5 and SOCKS4a limits are both 255 bytes).
    pub fn check_domain(name: &[u8]) -> Result<&str, ProtoError> {
        if name.is_empty() {
            return Err(ProtoError::EmptyDomain);
        }
        let name = std::str::from_utf8(name).map_err(|_| ProtoError::InvalidDomain)?;
        if name.chars().any(char::is_control) {
            return Err(ProtoError::InvalidDomain);
        }
        Ok(name)
    }
}

impl From<SocketAddr> for TargetAddr {
    fn from(addr: SocketAddr) -> Self {
        TargetAddr::Ip(addr)
    }
}

/// `1.2.3.4:80`, `[::1]:80`, `example.com:443`.
impl fmt::Display for TargetAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetAddr::Ip(addr) => write!(f, "{addr}"),
            TargetAddr::Domain(host, port) => write!(f, "{host}:{port}"),
        }
    }
}

/// Parses ATYP, address and port from the front of `buf`.
///
/// ```text
/// +------+----------+----------+
/// | ATYP | DST.ADDR | DST.PORT |
/// +------+----------+----------+
/// |  1   | Variable |    2     |
/// +------+----------+----------+
/// ```
///
/// DST.ADDR is 4 bytes (IPv4), 16 bytes (IPv6), or a length byte followed
/// by that many bytes of name (domain).
pub(super) fn parse_addr(buf: &[u8]) -> ParseResult<TargetAddr> {
    let Some(&atyp) = buf.first() else {
        return Ok(None);
    };
    match atyp {
        ATYP_IPV4 => {
            let (Some(ip), Some(port)) = (bytes_at::<4>(buf, 1), u16_at(buf, 5)) else {
                return Ok(None);
            };
            let addr = SocketAddr::from((Ipv4Addr::from(ip), port));
            Ok(Some((TargetAddr::Ip(addr), 1 + 4 + 2)))
        }
        ATYP_IPV6 => {
            let (Some(ip), Some(port)) = (bytes_at::<16>(buf, 1), u16_at(buf, 17)) else {
                return Ok(None);
            };
            let addr = SocketAddr::from((Ipv6Addr::from(ip), port));
            Ok(Some((TargetAddr::Ip(addr), 1 + 16 + 2)))
        }
        ATYP_DOMAIN => {
            let Some(&len) = buf.get(1) else {
                return Ok(None);
            };
            if len == 0 {
                return Err(ProtoError::EmptyDomain);
            }
            let end = 2 + usize::from(len);
            let Some(name) = buf.get(2..end) else {
                return Ok(None);
            };
            let name = TargetAddr::check_domain(name)?;
            let Some(port) = u16_at(buf, end) else {
                return Ok(None);
            };
            Ok(Some((TargetAddr::Domain(name.to_owned(), port), end + 2)))
        }
        other => Err(ProtoError::UnsupportedAddressType(other)),
    }
}

/// Appends ATYP, address and port. Fails (appending nothing) for a domain
/// that is empty, invalid or longer than 255 bytes.
pub(super) fn encode_addr(addr: &TargetAddr, out: &mut Vec<u8>) -> Result<(), ProtoError> {
    match addr {
        TargetAddr::Ip(addr) => encode_socket_addr(addr, out),
        TargetAddr::Domain(name, port) => {
            TargetAddr::check_domain(name.as_bytes())?;
            let len = len_byte(name.as_bytes())?;
            out.push(ATYP_DOMAIN);
            out.push(len);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&port.to_be_bytes());
        }
    }
    Ok(())
}

/// Appends ATYP, address and port of a socket address. IPv6 flow info and
/// scope id have no place on the wire and are dropped.
pub(super) fn encode_socket_addr(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr {
        SocketAddr::V4(v4) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&v6.ip().octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}
