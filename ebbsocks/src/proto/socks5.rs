//! SOCKS5 (RFC 1928): method negotiation, request and reply.

use std::net::{Ipv4Addr, SocketAddr};

use super::addr::{encode_addr, encode_socket_addr, parse_addr, ATYP_DOMAIN};
use super::{encode_atomically, len_byte, Command, ParseResult, ProtoError, TargetAddr};

/// The version byte of every SOCKS5 message.
pub(super) const VERSION: u8 = 0x05;

/// Largest greeting: VER, NMETHODS = 255, 255 methods.
pub const MAX_GREETING: usize = 2 + 255;
/// Largest request: VER, CMD, RSV, ATYP, a 255-byte domain with its length
/// byte, DST.PORT.
pub const MAX_SOCKS5_REQUEST: usize = 4 + 1 + 255 + 2;
/// Largest reply (a domain BND.ADDR, which [`Reply::parse`] rejects, is the
/// longest form on the wire).
pub const MAX_SOCKS5_REPLY: usize = MAX_SOCKS5_REQUEST;

/// Authentication method codes (RFC 1928 section 3).
pub mod method {
    /// `0x00`: no authentication required.
    pub const NO_AUTH: u8 = 0x00;
    /// `0x02`: username/password (RFC 1929).
    pub const USERPASS: u8 = 0x02;
    /// `0xFF`: no acceptable methods; the client must close.
    pub const NO_ACCEPTABLE: u8 = 0xFF;
}

/// The client's first message: the authentication methods it supports.
///
/// ```text
/// +----+----------+----------+
/// |VER | NMETHODS | METHODS  |
/// +----+----------+----------+
/// | 1  |    1     | 1 to 255 |
/// +----+----------+----------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// Method codes in the client's order (see [`method`]); never empty.
    pub methods: Vec<u8>,
}

impl Greeting {
    /// Parses a greeting from the front of `buf`.
    pub fn parse(buf: &[u8]) -> ParseResult<Self> {
        let Some(&version) = buf.first() else {
            return Ok(None);
        };
        if version != VERSION {
            return Err(ProtoError::UnknownVersion(version));
        }
        let Some(&count) = buf.get(1) else {
            return Ok(None);
        };
        if count == 0 {
            return Err(ProtoError::NoMethods);
        }
        let end = 2 + usize::from(count);
        let Some(methods) = buf.get(2..end) else {
            return Ok(None);
        };
        let methods = methods.to_vec();
        Ok(Some((Greeting { methods }, end)))
    }

    /// Whether the client offers `method`.
    pub fn offers(&self, method: u8) -> bool {
        self.methods.contains(&method)
    }

    /// Appends the greeting. Fails (appending nothing) with no methods or
    /// more than 255.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        if self.methods.is_empty() {
            return Err(ProtoError::NoMethods);
        }
        let count = len_byte(&self.methods)?;
        out.extend_from_slice(&[VERSION, count]);
        out.extend_from_slice(&self.methods);
        Ok(())
    }
}

/// The server's answer to a greeting: the chosen method, or
/// [`method::NO_ACCEPTABLE`].
///
/// ```text
/// +----+--------+
/// |VER | METHOD |
/// +----+--------+
/// | 1  |   1    |
/// +----+--------+
/// ```
pub const fn encode_method_selection(method: u8) -> [u8; 2] {
    [VERSION, method]
}

/// Parses a method selection (client side): the chosen method code.
pub fn parse_method_selection(buf: &[u8]) -> ParseResult<u8> {
    match buf {
        [] => Ok(None),
        [version, ..] if *version != VERSION => Err(ProtoError::VersionMismatch),
        [_] => Ok(None),
        [_, method, ..] => Ok(Some((*method, 2))),
    }
}

/// What the client asks for once authentication is done.
///
/// ```text
/// +----+-----+-------+------+----------+----------+
/// |VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
/// +----+-----+-------+------+----------+----------+
/// | 1  |  1  | X'00' |  1   | Variable |    2     |
/// +----+-----+-------+------+----------+----------+
/// ```
///
/// ATYP is `0x01` (IPv4, 4 bytes), `0x03` (domain: a length byte, then the
/// name) or `0x04` (IPv6, 16 bytes). DST.PORT is big-endian.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// CONNECT, BIND or UDP ASSOCIATE.
    pub command: Command,
    /// DST.ADDR and DST.PORT.
    pub target: TargetAddr,
}

impl Request {
    /// Parses a request from the front of `buf`. Each header byte is checked
    /// as soon as it arrives: VER must be 5 ([`ProtoError::VersionMismatch`]),
    /// CMD known ([`ProtoError::UnsupportedCommand`]), RSV zero
    /// ([`ProtoError::BadReserved`]), then the address.
    pub fn parse(buf: &[u8]) -> ParseResult<Self> {
        let Some(&version) = buf.first() else {
            return Ok(None);
        };
        if version != VERSION {
            return Err(ProtoError::VersionMismatch);
        }
        let Some(&code) = buf.get(1) else {
            return Ok(None);
        };
        let command = Command::from_u8(code).ok_or(ProtoError::UnsupportedCommand(code))?;
        let Some(&reserved) = buf.get(2) else {
            return Ok(None);
        };
        if reserved != 0 {
            return Err(ProtoError::BadReserved(reserved));
        }
        let Some((target, used)) = parse_addr(buf.get(3..).unwrap_or_default())? else {
            return Ok(None);
        };
        Ok(Some((Request { command, target }, 3 + used)))
    }

    /// Appends the request. Fails (appending nothing) if the target is a
    /// domain that is empty, invalid or longer than 255 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        encode_atomically(out, |out| {
            out.extend_from_slice(&[VERSION, self.command.as_u8(), 0x00]);
            encode_addr(&self.target, out)
        })
    }
}

/// The REP field of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ReplyCode {
    /// `0x00`: succeeded.
    Succeeded = 0x00,
    /// `0x01`: general SOCKS server failure.
    GeneralFailure = 0x01,
    /// `0x02`: connection not allowed by ruleset.
    NotAllowed = 0x02,
    /// `0x03`: network unreachable.
    NetworkUnreachable = 0x03,
    /// `0x04`: host unreachable.
    HostUnreachable = 0x04,
    /// `0x05`: connection refused.
    ConnectionRefused = 0x05,
    /// `0x06`: TTL expired.
    TtlExpired = 0x06,
    /// `0x07`: command not supported.
    CommandNotSupported = 0x07,
    /// `0x08`: address type not supported.
    AddressTypeNotSupported = 0x08,
}

impl ReplyCode {
    /// Every reply code, in wire order.
    pub const ALL: [ReplyCode; 9] = [
        ReplyCode::Succeeded,
        ReplyCode::GeneralFailure,
        ReplyCode::NotAllowed,
        ReplyCode::NetworkUnreachable,
        ReplyCode::HostUnreachable,
        ReplyCode::ConnectionRefused,
        ReplyCode::TtlExpired,
        ReplyCode::CommandNotSupported,
        ReplyCode::AddressTypeNotSupported,
    ];

    /// The wire code.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The reply code for a wire code, if RFC 1928 defines it.
    pub const fn from_u8(code: u8) -> Option<Self> {
        match code {
            0x00 => Some(ReplyCode::Succeeded),
            0x01 => Some(ReplyCode::GeneralFailure),
            0x02 => Some(ReplyCode::NotAllowed),
            0x03 => Some(ReplyCode::NetworkUnreachable),
            0x04 => Some(ReplyCode::HostUnreachable),
            0x05 => Some(ReplyCode::ConnectionRefused),
            0x06 => Some(ReplyCode::TtlExpired),
            0x07 => Some(ReplyCode::CommandNotSupported),
            0x08 => Some(ReplyCode::AddressTypeNotSupported),
            _ => None,
        }
    }
}

/// The server's answer to a request.
///
/// ```text
/// +----+-----+-------+------+----------+----------+
/// |VER | REP |  RSV  | ATYP | BND.ADDR | BND.PORT |
/// +----+-----+-------+------+----------+----------+
/// | 1  |  1  | X'00' |  1   | Variable |    2     |
/// +----+-----+-------+------+----------+----------+
/// ```
///
/// This server always sends an IP address in BND.ADDR, so `bound` is a
/// [`SocketAddr`]; [`Reply::parse`] rejects a domain BND.ADDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// REP.
    pub code: ReplyCode,
    /// BND.ADDR and BND.PORT.
    pub bound: SocketAddr,
}

impl Reply {
    /// A reply whose bound address is `0.0.0.0:0`, as sent with failures.
    pub const fn failure(code: ReplyCode) -> Self {
        let bound = SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        Reply { code, bound }
    }

    /// Appends the reply.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[VERSION, self.code.as_u8(), 0x00]);
        encode_socket_addr(&self.bound, out);
    }

    /// Parses a reply from the front of `buf` (client side).
    pub fn parse(buf: &[u8]) -> ParseResult<Self> {
        let Some(&version) = buf.first() else {
            return Ok(None);
        };
        if version != VERSION {
            return Err(ProtoError::VersionMismatch);
        }
        let Some(&rep) = buf.get(1) else {
            return Ok(None);
        };
        let code = ReplyCode::from_u8(rep).ok_or(ProtoError::UnknownReplyCode(rep))?;
        let Some(&reserved) = buf.get(2) else {
            return Ok(None);
        };
        if reserved != 0 {
            return Err(ProtoError::BadReserved(reserved));
        }
        let rest = buf.get(3..).unwrap_or_default();
        if rest.first() == Some(&ATYP_DOMAIN) {
            return Err(ProtoError::UnsupportedAddressType(ATYP_DOMAIN));
        }
        let Some((bound, used)) = parse_addr(rest)? else {
            return Ok(None);
        };
        let bound = match bound {
            TargetAddr::Ip(addr) => addr,
            TargetAddr::Domain(..) => return Err(ProtoError::UnsupportedAddressType(ATYP_DOMAIN)),
        };
        Ok(Some((Reply { code, bound }, 3 + used)))
    }
}
