//! The UDP request header of RFC 1928 section 7, which every datagram
//! relayed through a UDP association carries, in both directions.
//!
//! ```text
//! +----+------+------+----------+----------+----------+
//! |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
//! +----+------+------+----------+----------+----------+
//! | 2  |  1   |  1   | Variable |    2     | Variable |
//! +----+------+------+----------+----------+----------+
//! ```
//!
//! From the client, DST is where the payload goes; towards the client, the
//! same field carries the remote host the payload came from.
//!
//! A datagram arrives whole, so unlike the stream parsers there is no "read
//! more": a header cut short is [`ProtoError::Truncated`].

use std::net::{IpAddr, SocketAddr};

use super::addr::{encode_addr, parse_addr, ATYP_IPV4, ATYP_IPV6};
use super::{encode_atomically, ProtoError, TargetAddr};

/// RSV, FRAG.
const PREFIX: usize = 3;

/// Longest header: RSV, FRAG, ATYP, a 255-byte domain with its length byte,
/// DST.PORT.
pub const MAX_UDP_HEADER: usize = PREFIX + 1 + 1 + 255 + 2;

/// Longest header with an IP address (IPv6): what a reply to the client
/// needs in front of its payload.
pub const MAX_UDP_IP_HEADER: usize = PREFIX + 1 + 16 + 2;

/// A parsed UDP request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpHeader {
    /// Fragment number; 0 means a whole datagram. ebbsocks does not
    /// reassemble fragments (optional in the RFC) and drops the others.
    pub frag: u8,
    /// DST.ADDR and DST.PORT.
    pub target: TargetAddr,
}

impl UdpHeader {
    /// Parses the header at the front of a whole datagram and returns it
    /// with the offset where DATA starts (which may equal `datagram.len()`:
    /// an empty payload is valid).
    pub fn parse(datagram: &[u8]) -> Result<(UdpHeader, usize), ProtoError> {
        let Some(&[rsv_hi, rsv_lo, frag]) = datagram.get(..PREFIX) else {
            return Err(ProtoError::Truncated);
        };
        if rsv_hi != 0 || rsv_lo != 0 {
            // The first non-zero reserved byte, as the stream parsers report.
            let bad = if rsv_hi != 0 { rsv_hi } else { rsv_lo };
            return Err(ProtoError::BadReserved(bad));
        }
        match parse_addr(&datagram[PREFIX..])? {
            Some((target, used)) => Ok((UdpHeader { frag, target }, PREFIX + used)),
            None => Err(ProtoError::Truncated),
        }
    }

    /// Appends the header (without DATA). Fails, appending nothing, for a
    /// domain that is empty, invalid or longer than 255 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        encode_atomically(out, |out| {
            out.extend_from_slice(&[0, 0, self.frag]);
            encode_addr(&self.target, out)
        })
    }
}

/// The header of a whole datagram from `source`, built in a fixed array:
/// the server writes it in front of a payload without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpReplyHeader {
    bytes: [u8; MAX_UDP_IP_HEADER],
    len: u8,
}

impl UdpReplyHeader {
    /// FRAG 0, ATYP IPv4 or IPv6 (an IPv4-mapped IPv6 source is sent as the
    /// IPv4 address it stands for, so the client sees the host it sent to).
    pub fn new(source: SocketAddr) -> Self {
        let mut bytes = [0u8; MAX_UDP_IP_HEADER];
        let port = source.port().to_be_bytes();
        let len = match source.ip().to_canonical() {
            IpAddr::V4(ip) => {
                bytes[PREFIX] = ATYP_IPV4;
                bytes[PREFIX + 1..PREFIX + 5].copy_from_slice(&ip.octets());
                PREFIX + 5
            }
            IpAddr::V6(ip) => {
                bytes[PREFIX] = ATYP_IPV6;
                bytes[PREFIX + 1..PREFIX + 17].copy_from_slice(&ip.octets());
                PREFIX + 17
            }
        };
        bytes[len..len + 2].copy_from_slice(&port);
        Self {
            bytes,
            len: (len + 2) as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}
