//! SOCKS4 and its SOCKS4a extension (a domain name instead of an address).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use super::{bytes_at, u16_at, Command, ParseResult, ProtoError, TargetAddr};

/// The version byte of a SOCKS4 request.
pub(super) const VERSION: u8 = 0x04;
/// The version byte of a SOCKS4 reply.
const REPLY_VERSION: u8 = 0x00;
/// Fixed part of a request: VN, CD, DSTPORT, DSTIP.
const HEADER_LEN: usize = 8;
/// The DSTIP a SOCKS4a client sends with a domain (any `0.0.0.x`, x != 0,
/// means SOCKS4a; this is the one we write).
const SOCKS4A_MARKER_IP: Ipv4Addr = Ipv4Addr::new(0, 0, 0, 1);

/// Longest user id accepted (its NUL not counted).
pub const MAX_SOCKS4_USER_ID: usize = 255;
/// Longest SOCKS4a domain accepted (its NUL not counted).
pub const MAX_SOCKS4A_DOMAIN: usize = 255;
/// Largest request: header, longest user id and domain, two NULs.
pub const MAX_SOCKS4_REQUEST: usize = HEADER_LEN + MAX_SOCKS4_USER_ID + 1 + MAX_SOCKS4A_DOMAIN + 1;
/// Every reply is this long.
pub const SOCKS4_REPLY_LEN: usize = 8;

/// A SOCKS4 or SOCKS4a request.
///
/// ```text
/// +----+----+----+----+----+----+----+----+----+....+----+
/// | VN | CD | DSTPORT |      DSTIP        | USERID  |NULL|
/// +----+----+----+----+----+----+----+----+----+....+----+
///    1    1      2              4          variable   1
/// ```
///
/// VN is 4; CD is 1 (CONNECT) or 2 (BIND); DSTPORT is big-endian. SOCKS4a:
/// when DSTIP is `0.0.0.x` with x != 0, a NUL-terminated domain follows:
///
/// ```text
/// +----+----+---------+-------------------+---------+----+---------+----+
/// | VN | CD | DSTPORT |  0 . 0 . 0 . x    | USERID  |NULL| DOMAIN  |NULL|
/// +----+----+---------+-------------------+---------+----+---------+----+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socks4Request {
    /// `Connect` or `Bind`; never `UdpAssociate`.
    pub command: Command,
    /// An IPv4 address, or a domain (SOCKS4a).
    pub target: TargetAddr,
    /// USERID, without its NUL; at most 255 bytes.
    pub user_id: Vec<u8>,
}

impl Socks4Request {
    /// Parses a request from the front of `buf`. A user id or domain with
    /// no NUL within 255 bytes is [`ProtoError::FieldTooLong`], so a buffer
    /// of [`MAX_SOCKS4_REQUEST`] bytes always gets a definite answer.
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
        let command = match Command::from_u8(code) {
            Some(command @ (Command::Connect | Command::Bind)) => command,
            _ => return Err(ProtoError::UnsupportedCommand(code)),
        };
        let (Some(port), Some(ip)) = (u16_at(buf, 2), bytes_at::<4>(buf, 4)) else {
            return Ok(None);
        };
        let Some(user_end) = find_nul(buf, HEADER_LEN, MAX_SOCKS4_USER_ID)? else {
            return Ok(None);
        };
        let user_id = buf.get(HEADER_LEN..user_end).unwrap_or_default().to_vec();
        let ip = Ipv4Addr::from(ip);
        let (target, end) = if is_socks4a(ip) {
            let start = user_end + 1;
            let Some(domain_end) = find_nul(buf, start, MAX_SOCKS4A_DOMAIN)? else {
                return Ok(None);
            };
            let name = buf.get(start..domain_end).unwrap_or_default();
            let name = TargetAddr::check_domain(name)?;
            (TargetAddr::Domain(name.to_owned(), port), domain_end + 1)
        } else {
            let addr = SocketAddr::V4(SocketAddrV4::new(ip, port));
            (TargetAddr::Ip(addr), user_end + 1)
        };
        let request = Socks4Request {
            command,
            target,
            user_id,
        };
        Ok(Some((request, end)))
    }

    /// Appends the request; a domain target is sent as SOCKS4a with DSTIP
    /// `0.0.0.1`. Fails (appending nothing) for `UdpAssociate`
    /// ([`ProtoError::UnsupportedCommand`]), an IPv6 target
    /// ([`ProtoError::UnsupportedAddressType`] `0x04`), an IPv4 target
    /// `0.0.0.x` with x != 0, which the wire reads as SOCKS4a
    /// ([`ProtoError::UnsupportedAddressType`] `0x01`), a user id with NUL,
    /// an invalid domain, or a field over 255 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        if self.command == Command::UdpAssociate {
            return Err(ProtoError::UnsupportedCommand(self.command.as_u8()));
        }
        if self.user_id.contains(&0) {
            return Err(ProtoError::InvalidUserId);
        }
        if self.user_id.len() > MAX_SOCKS4_USER_ID {
            return Err(ProtoError::FieldTooLong);
        }
        let (ip, domain) = match &self.target {
            // On the wire 0.0.0.x announces a SOCKS4a domain: such an
            // address cannot be sent as itself.
            TargetAddr::Ip(SocketAddr::V4(v4)) if is_socks4a(*v4.ip()) => {
                return Err(ProtoError::UnsupportedAddressType(0x01))
            }
            TargetAddr::Ip(SocketAddr::V4(v4)) => (*v4.ip(), None),
            TargetAddr::Ip(SocketAddr::V6(_)) => {
                return Err(ProtoError::UnsupportedAddressType(0x04))
            }
            TargetAddr::Domain(name, _) => {
                let name = TargetAddr::check_domain(name.as_bytes())?;
                if name.len() > MAX_SOCKS4A_DOMAIN {
                    return Err(ProtoError::FieldTooLong);
                }
                (SOCKS4A_MARKER_IP, Some(name))
            }
        };
        out.extend_from_slice(&[VERSION, self.command.as_u8()]);
        out.extend_from_slice(&self.target.port().to_be_bytes());
        out.extend_from_slice(&ip.octets());
        out.extend_from_slice(&self.user_id);
        out.push(0);
        if let Some(name) = domain {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
        Ok(())
    }
}

/// `0.0.0.x` with x != 0 announces a SOCKS4a domain.
fn is_socks4a(ip: Ipv4Addr) -> bool {
    matches!(ip.octets(), [0, 0, 0, x] if x != 0)
}

/// The index of the NUL ending a field that starts at `start` and may hold
/// up to `cap` bytes. `Ok(None)` while the buffer ends before the NUL could
/// be; [`ProtoError::FieldTooLong`] once `cap + 1` bytes hold no NUL.
fn find_nul(buf: &[u8], start: usize, cap: usize) -> Result<Option<usize>, ProtoError> {
    let rest = buf.get(start..).unwrap_or_default();
    let window = rest.get(..=cap).unwrap_or(rest);
    match window.iter().position(|&b| b == 0) {
        Some(at) => Ok(Some(start + at)),
        None if window.len() > cap => Err(ProtoError::FieldTooLong),
        None => Ok(None),
    }
}

/// The CD field of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Socks4Status {
    /// `0x5A` (90): request granted.
    Granted = 0x5A,
    /// `0x5B` (91): request rejected or failed.
    Rejected = 0x5B,
}

impl Socks4Status {
    /// The wire code.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The status for a wire code, if it is one this crate sends.
    pub const fn from_u8(code: u8) -> Option<Self> {
        match code {
            0x5A => Some(Socks4Status::Granted),
            0x5B => Some(Socks4Status::Rejected),
            _ => None,
        }
    }
}

/// The server's reply to a SOCKS4 or SOCKS4a request.
///
/// ```text
/// +----+----+----+----+----+----+----+----+
/// | VN | CD | DSTPORT |      DSTIP        |
/// +----+----+----+----+----+----+----+----+
///    1    1      2              4
/// ```
///
/// VN is 0; CD is the status; DSTPORT and DSTIP carry the bound address
/// (pass `0.0.0.0:0` when there is none to report).
pub const fn encode_socks4_reply(status: Socks4Status, bound: SocketAddrV4) -> [u8; 8] {
    let [p0, p1] = bound.port().to_be_bytes();
    let [a, b, c, d] = bound.ip().octets();
    [REPLY_VERSION, status.as_u8(), p0, p1, a, b, c, d]
}

/// Parses a reply (client side).
pub fn parse_socks4_reply(buf: &[u8]) -> ParseResult<(Socks4Status, SocketAddrV4)> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    if version != REPLY_VERSION {
        return Err(ProtoError::VersionMismatch);
    }
    let Some(&code) = buf.get(1) else {
        return Ok(None);
    };
    let status = Socks4Status::from_u8(code).ok_or(ProtoError::UnknownReplyCode(code))?;
    let (Some(port), Some(ip)) = (u16_at(buf, 2), bytes_at::<4>(buf, 4)) else {
        return Ok(None);
    };
    let bound = SocketAddrV4::new(Ipv4Addr::from(ip), port);
    Ok(Some(((status, bound), SOCKS4_REPLY_LEN)))
}
