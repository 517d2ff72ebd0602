//! The PROXY protocol header (HAProxy's specification, versions 1 and 2),
//! which a load balancer sends before anything else on a connection it
//! relays, naming the client it accepted the connection from.
//!
//! Version 1 is one text line of at most 107 bytes:
//!
//! ```text
//! PROXY TCP4 192.0.2.7 198.51.100.1 51234 1080\r\n
//! PROXY TCP6 2001:db8::7 2001:db8::1 51234 1080\r\n
//! PROXY UNKNOWN[ anything]\r\n
//! ```
//!
//! Version 2 is binary:
//!
//! ```text
//! +------------------------------+--------+--------+---------+-----------------+
//! | \r \n \r \n \0 \r \n Q U I T \n | VERCMD | FAMPRO |   LEN   | addresses, TLVs |
//! +------------------------------+--------+--------+---------+-----------------+
//! |             12               |   1    |   1    | 2 (BE)  |       LEN       |
//! +------------------------------+--------+--------+---------+-----------------+
//! ```
//!
//! VERCMD: version 2 in the high nibble; command 0 = LOCAL (the balancer's
//! own connection, such as a health check) or 1 = PROXY. FAMPRO: family
//! (0 UNSPEC, 1 INET, 2 INET6, 3 UNIX) in the high nibble, transport
//! (0 UNSPEC, 1 STREAM, 2 DGRAM) in the low one. INET carries source and
//! destination address (4 bytes each) and port (2 each); INET6 the same
//! with 16-byte addresses. TLVs after the addresses are skipped.
//!
//! Written here rather than taken from a crate: `proto/` depends on nothing
//! (the fuzz targets compile it from source with `std` and `thiserror`),
//! and the server's reads rely on the contract below, which a parser that
//! wants whole headers does not give. The `ppp` crate, a widely used
//! parser of the same specification, checks this one in the tests: headers
//! it writes parse here to the same addresses, and on mutated headers the
//! two agree on what is valid (`tests/proxy.rs`).
//!
//! The parser follows the contract of `proto/mod.rs`: `Ok(None)` while the
//! bytes are a valid beginning, an answer that never changes once given,
//! and a definite answer once [`MAX_PROXY_HEADER`] bytes are in. Version 2
//! and the fixed words of version 1 are checked byte by byte as they
//! arrive; the addresses and ports of a version 1 line when its CRLF does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{bytes_at, ProtoError};

/// The version 2 signature.
pub const PROXY_V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// What every version 1 line starts with.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest version 1 line, CRLF included (the specification's limit).
pub const MAX_PROXY_V1_HEADER: usize = 107;
/// Signature, VERCMD, FAMPRO, LEN.
const V2_FIXED: usize = 16;
/// The longest version 2 address block (addresses and TLVs) accepted. The
/// protocol allows 64 KiB; a balancer sends 12 or 36 bytes of addresses
/// plus whatever TLVs it was told to add, and this leaves room for the
/// usual ones (unique id, authority, TLS details).
pub const MAX_PROXY_V2_ADDRESS_BLOCK: usize = 1024 - V2_FIXED;
/// The longest header of either version: a buffer this full always gets an
/// answer.
pub const MAX_PROXY_HEADER: usize = V2_FIXED + MAX_PROXY_V2_ADDRESS_BLOCK;

const CMD_LOCAL: u8 = 0x0;
const CMD_PROXY: u8 = 0x1;
const FAMILY_UNSPEC: u8 = 0x0;
const FAMILY_INET: u8 = 0x1;
const FAMILY_INET6: u8 = 0x2;
const FAMILY_UNIX: u8 = 0x3;
const TRANSPORT_STREAM: u8 = 0x1;
const TRANSPORT_DGRAM: u8 = 0x2;
/// Bytes of the address block that INET and INET6 need.
const INET_ADDRESSES: usize = 4 + 4 + 2 + 2;
const INET6_ADDRESSES: usize = 16 + 16 + 2 + 2;

/// What a PROXY header says about the connection it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A relayed TCP connection: `source` is the client the balancer
    /// accepted it from, `destination` the address that client connected to.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// Version 2 LOCAL: the balancer's own connection (a health check, say);
    /// the connection's own endpoints apply.
    Local,
    /// Version 1 UNKNOWN, or a version 2 PROXY header for something other
    /// than TCP over IPv4 or IPv6: no client address is carried, and the
    /// connection's own endpoints apply.
    Unknown,
}

impl ProxyHeader {
    /// Parses a version 1 or version 2 header at the front of `buf`. A
    /// first byte that can start neither is
    /// [`ProtoError::MissingProxyHeader`].
    pub fn parse(buf: &[u8]) -> super::ParseResult<ProxyHeader> {
        match buf.first() {
            None => Ok(None),
            Some(&b'P') => parse_v1(buf),
            Some(&b'\r') => parse_v2(buf),
            Some(_) => Err(ProtoError::MissingProxyHeader),
        }
    }

    /// Appends the version 1 line. Fails, appending nothing, for LOCAL
    /// (version 1 cannot say it) and for source and destination of
    /// different families.
    pub fn encode_v1(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        let line = match *self {
            ProxyHeader::Unknown => "PROXY UNKNOWN\r\n".to_owned(),
            ProxyHeader::Local => return Err(ProtoError::BadProxyHeader("command")),
            ProxyHeader::Proxied {
                source,
                destination,
            } => {
                let family = match (source.ip(), destination.ip()) {
                    (IpAddr::V4(_), IpAddr::V4(_)) => "TCP4",
                    (IpAddr::V6(_), IpAddr::V6(_)) => "TCP6",
                    _ => return Err(ProtoError::BadProxyHeader("family")),
                };
                format!(
                    "PROXY {family} {} {} {} {}\r\n",
                    source.ip(),
                    destination.ip(),
                    source.port(),
                    destination.port()
                )
            }
        };
        out.extend_from_slice(line.as_bytes());
        Ok(())
    }

    /// Appends the version 2 header, without TLVs. `Unknown` becomes
    /// PROXY with family UNSPEC. Fails, appending nothing, for source and
    /// destination of different families.
    pub fn encode_v2(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        let (command, family_transport, addresses): (u8, u8, Vec<u8>) = match *self {
            ProxyHeader::Local => (CMD_LOCAL, FAMILY_UNSPEC << 4, Vec::new()),
            ProxyHeader::Unknown => (CMD_PROXY, FAMILY_UNSPEC << 4, Vec::new()),
            ProxyHeader::Proxied {
                source,
                destination,
            } => {
                let mut block = Vec::with_capacity(INET6_ADDRESSES);
                let family = match (source.ip(), destination.ip()) {
                    (IpAddr::V4(src), IpAddr::V4(dst)) => {
                        block.extend_from_slice(&src.octets());
                        block.extend_from_slice(&dst.octets());
                        FAMILY_INET
                    }
                    (IpAddr::V6(src), IpAddr::V6(dst)) => {
                        block.extend_from_slice(&src.octets());
                        block.extend_from_slice(&dst.octets());
                        FAMILY_INET6
                    }
                    _ => return Err(ProtoError::BadProxyHeader("family")),
                };
                block.extend_from_slice(&source.port().to_be_bytes());
                block.extend_from_slice(&destination.port().to_be_bytes());
                (CMD_PROXY, family << 4 | TRANSPORT_STREAM, block)
            }
        };
        out.extend_from_slice(&PROXY_V2_SIGNATURE);
        out.push(0x20 | command);
        out.push(family_transport);
        // At most 36 bytes: always fits.
        out.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        out.extend_from_slice(&addresses);
        Ok(())
    }
}

/// Whether `buf` (non-empty) begins the way a PROXY header of either
/// version begins, as far as it goes: how a connection that must not send
/// one is caught sending one.
pub fn starts_like_proxy_header(buf: &[u8]) -> bool {
    let agrees = |signature: &[u8]| {
        let n = buf.len().min(signature.len());
        n > 0 && buf[..n] == signature[..n]
    };
    agrees(V1_PREFIX) || agrees(&PROXY_V2_SIGNATURE)
}

/// Checks the bytes present against `expected`, which starts at `at`.
fn check_fixed(
    buf: &[u8],
    at: usize,
    expected: &[u8],
    what: &'static str,
) -> Result<(), ProtoError> {
    let present = buf.get(at..).unwrap_or_default();
    let n = present.len().min(expected.len());
    if present[..n] == expected[..n] {
        Ok(())
    } else {
        Err(ProtoError::BadProxyHeader(what))
    }
}

fn parse_v2(buf: &[u8]) -> super::ParseResult<ProxyHeader> {
    check_fixed(buf, 0, &PROXY_V2_SIGNATURE, "signature")?;
    let Some([version_command]) = bytes_at::<1>(buf, 12) else {
        return Ok(None);
    };
    if version_command >> 4 != 2 {
        return Err(ProtoError::BadProxyHeader("version"));
    }
    let command = version_command & 0x0f;
    if command != CMD_LOCAL && command != CMD_PROXY {
        return Err(ProtoError::BadProxyHeader("command"));
    }
    let Some([family_transport]) = bytes_at::<1>(buf, 13) else {
        return Ok(None);
    };
    let (family, transport) = (family_transport >> 4, family_transport & 0x0f);
    if family > FAMILY_UNIX || transport > TRANSPORT_DGRAM {
        return Err(ProtoError::BadProxyHeader("family"));
    }
    let Some(len) = bytes_at::<2>(buf, 14).map(u16::from_be_bytes) else {
        return Ok(None);
    };
    let len = usize::from(len);
    if len > MAX_PROXY_V2_ADDRESS_BLOCK {
        return Err(ProtoError::ProxyHeaderTooLong);
    }
    let needed = match (command, family) {
        (CMD_PROXY, FAMILY_INET) => INET_ADDRESSES,
        (CMD_PROXY, FAMILY_INET6) => INET6_ADDRESSES,
        _ => 0,
    };
    if len < needed {
        return Err(ProtoError::BadProxyHeader("length"));
    }
    let Some(block) = buf.get(V2_FIXED..V2_FIXED + len) else {
        return Ok(None);
    };
    let header = match (command, family, transport) {
        (CMD_LOCAL, ..) => ProxyHeader::Local,
        (_, FAMILY_INET, TRANSPORT_STREAM) => {
            let address = |at: usize| Ipv4Addr::from(bytes_at::<4>(block, at).unwrap_or_default());
            inet_pair(address(0).into(), address(4).into(), &block[8..])
        }
        (_, FAMILY_INET6, TRANSPORT_STREAM) => {
            let address = |at: usize| Ipv6Addr::from(bytes_at::<16>(block, at).unwrap_or_default());
            inet_pair(address(0).into(), address(16).into(), &block[32..])
        }
        // UNSPEC, UNIX, or datagrams: nothing a TCP listener can use.
        _ => ProxyHeader::Unknown,
    };
    Ok(Some((header, V2_FIXED + len)))
}

/// Source and destination from their addresses and the two ports at the
/// front of `ports`.
fn inet_pair(source: IpAddr, destination: IpAddr, ports: &[u8]) -> ProxyHeader {
    let port = |at: usize| u16::from_be_bytes(bytes_at::<2>(ports, at).unwrap_or_default());
    ProxyHeader::Proxied {
        source: SocketAddr::new(source, port(0)),
        destination: SocketAddr::new(destination, port(2)),
    }
}

fn parse_v1(buf: &[u8]) -> super::ParseResult<ProxyHeader> {
    check_fixed(buf, 0, V1_PREFIX, "signature")?;
    let rest = buf.get(V1_PREFIX.len()..).unwrap_or_default();
    // The protocol word, checked as it arrives.
    let word_ok = [&b"TCP4 "[..], b"TCP6 ", b"UNKNOWN"].iter().any(|word| {
        let n = rest.len().min(word.len());
        rest[..n] == word[..n]
    });
    if !word_ok {
        return Err(ProtoError::BadProxyHeader("protocol"));
    }
    // The line ends with CRLF; CR may come no later than the last place
    // that leaves room for LF within the limit.
    let last_cr = MAX_PROXY_V1_HEADER - 2;
    let scanned = buf.len().min(last_cr + 1);
    let mut end = None;
    for (at, &byte) in buf.iter().enumerate().take(scanned).skip(V1_PREFIX.len()) {
        match byte {
            b'\r' => {
                end = Some(at);
                break;
            }
            0x20..=0x7e => {}
            _ => return Err(ProtoError::BadProxyHeader("character")),
        }
    }
    let Some(cr) = end else {
        return if buf.len() > last_cr {
            Err(ProtoError::ProxyHeaderTooLong)
        } else {
            Ok(None)
        };
    };
    match buf.get(cr + 1) {
        None => return Ok(None),
        Some(b'\n') => {}
        Some(_) => return Err(ProtoError::BadProxyHeader("line end")),
    }
    // Only printable ASCII was let through, so this is UTF-8.
    let line = std::str::from_utf8(&buf[V1_PREFIX.len()..cr])
        .map_err(|_| ProtoError::BadProxyHeader("character"))?;
    Ok(Some((parse_v1_fields(line)?, cr + 2)))
}

/// `TCP4 src dst sport dport`, `TCP6 ...`, or `UNKNOWN[ anything]`.
fn parse_v1_fields(line: &str) -> Result<ProxyHeader, ProtoError> {
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Ok(ProxyHeader::Unknown);
    }
    let fields: Vec<&str> = line.split(' ').collect();
    let [protocol, source, destination, source_port, destination_port] = fields[..] else {
        return Err(ProtoError::BadProxyHeader("fields"));
    };
    let (source, destination): (IpAddr, IpAddr) = match protocol {
        "TCP4" => (
            v1_address::<Ipv4Addr>(source)?.into(),
            v1_address::<Ipv4Addr>(destination)?.into(),
        ),
        "TCP6" => (
            v1_address::<Ipv6Addr>(source)?.into(),
            v1_address::<Ipv6Addr>(destination)?.into(),
        ),
        _ => return Err(ProtoError::BadProxyHeader("protocol")),
    };
    Ok(ProxyHeader::Proxied {
        source: SocketAddr::new(source, v1_port(source_port)?),
        destination: SocketAddr::new(destination, v1_port(destination_port)?),
    })
}

fn v1_address<T: std::str::FromStr>(text: &str) -> Result<T, ProtoError> {
    text.parse()
        .map_err(|_| ProtoError::BadProxyHeader("address"))
}

/// A decimal port: digits only (no sign, no leading zero), at most 65535.
fn v1_port(text: &str) -> Result<u16, ProtoError> {
    let digits = !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return Err(ProtoError::BadProxyHeader("port"));
    }
    text.parse().map_err(|_| ProtoError::BadProxyHeader("port"))
}
