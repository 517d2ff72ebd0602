//! The SOCKS wire format, sans IO: bytes in, messages out.
//!
//! Nothing here touches a socket, a runtime or the rest of the crate. Each
//! parser looks at the front of a buffer and answers with a [`ParseResult`]:
//!
//! - `Ok(None)`: the bytes so far are a valid beginning; read more.
//! - `Ok(Some((message, consumed)))`: a whole message used the first
//!   `consumed` bytes. Bytes after it are never consumed, so a client's
//!   read-ahead payload stays in the buffer for the relay.
//! - `Err(ProtoError)`: the bytes can never become a valid message; close
//!   the connection (after a reply where the protocol has one).
//!
//! A parser reports an error as soon as the offending byte is in the buffer,
//! and its answer never changes once it stops being `Ok(None)`: more bytes
//! cannot turn an error into a message or change a parsed message.
//!
//! Every message has a `MAX_*` size. A buffer holding that many bytes always
//! gets a definite answer, so a server that caps its read buffer at the
//! maximum never waits forever.
//!
//! Files: `addr.rs` (the target address and its SOCKS5 form), `socks5.rs`
//! (RFC 1928), `udp.rs` (the RFC 1928 UDP request header), `userpass.rs`
//! (RFC 1929), `socks4.rs` (SOCKS4 and 4a), `proxy.rs` (the PROXY
//! protocol header a load balancer sends first), `tests/` (byte-exact unit tests and robustness tests).

mod addr;
mod proxy;
mod socks4;
mod socks5;
mod udp;
mod userpass;

#[cfg(test)]
mod tests;

pub use addr::TargetAddr;
pub use proxy::{
    starts_like_proxy_header, ProxyHeader, MAX_PROXY_HEADER, MAX_PROXY_V1_HEADER,
    MAX_PROXY_V2_ADDRESS_BLOCK, PROXY_V2_SIGNATURE,
};
pub use socks4::{
    encode_socks4_reply, parse_socks4_reply, Socks4Request, Socks4Status, MAX_SOCKS4A_DOMAIN,
    MAX_SOCKS4_REQUEST, MAX_SOCKS4_USER_ID, SOCKS4_REPLY_LEN,
};
pub use socks5::{
    encode_method_selection, method, parse_method_selection, Greeting, Reply, ReplyCode, Request,
    MAX_GREETING, MAX_SOCKS5_REPLY, MAX_SOCKS5_REQUEST,
};
pub use udp::{UdpHeader, UdpReplyHeader, MAX_UDP_HEADER, MAX_UDP_IP_HEADER};
pub use userpass::{encode_userpass_status, parse_userpass_status, UserPass, MAX_USERPASS};

/// Result of trying to parse a message from the front of a buffer.
///
/// `Ok(None)` = need more bytes; `Ok(Some((msg, consumed)))` = complete
/// message using `consumed` bytes; `Err(ProtoError)` = malformed, the
/// connection will be closed.
pub type ParseResult<T> = Result<Option<(T, usize)>, ProtoError>;

/// Which protocol a client speaks, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `0x04`: SOCKS4 or SOCKS4a.
    Socks4,
    /// `0x05`: SOCKS5.
    Socks5,
}

/// Looks at the first byte: `0x04` / `0x05`; anything else is
/// [`ProtoError::UnknownVersion`]; an empty buffer is `Ok(None)`.
pub fn detect_version(buf: &[u8]) -> Result<Option<Version>, ProtoError> {
    match buf.first() {
        None => Ok(None),
        Some(&socks4::VERSION) => Ok(Some(Version::Socks4)),
        Some(&socks5::VERSION) => Ok(Some(Version::Socks5)),
        Some(&other) => Err(ProtoError::UnknownVersion(other)),
    }
}

/// What the client asks the proxy to do. SOCKS4 knows only `Connect` and
/// `Bind`, with the same codes as SOCKS5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `0x01`: open a TCP connection to the target.
    Connect,
    /// `0x02`: accept one inbound TCP connection from the target.
    Bind,
    /// `0x03`: relay UDP datagrams (SOCKS5 only).
    UdpAssociate,
}

impl Command {
    /// The wire code.
    pub const fn as_u8(self) -> u8 {
        match self {
            Command::Connect => 0x01,
            Command::Bind => 0x02,
            Command::UdpAssociate => 0x03,
        }
    }

    /// The command for a wire code, if there is one.
    pub const fn from_u8(code: u8) -> Option<Self> {
        match code {
            0x01 => Some(Command::Connect),
            0x02 => Some(Command::Bind),
            0x03 => Some(Command::UdpAssociate),
            _ => None,
        }
    }

    /// A short stable label for logs and counters.
    pub const fn name(self) -> &'static str {
        match self {
            Command::Connect => "connect",
            Command::Bind => "bind",
            Command::UdpAssociate => "udp_associate",
        }
    }
}

/// Why bytes are not a valid message (when parsing), or why a message
/// cannot be put on the wire (when encoding; the same variant the parser
/// would give for such bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// The first byte is neither 4 nor 5.
    #[error("unknown SOCKS version {0:#04x}")]
    UnknownVersion(u8),
    /// A SOCKS5 greeting with NMETHODS = 0.
    #[error("greeting offers no authentication methods")]
    NoMethods,
    /// A command code this protocol version does not define.
    #[error("unsupported command {0:#04x}")]
    UnsupportedCommand(u8),
    /// An address type (ATYP) that is not IPv4, domain or IPv6, or one the
    /// message cannot carry (a domain in a SOCKS5 reply, IPv6 in SOCKS4).
    #[error("unsupported address type {0:#04x}")]
    UnsupportedAddressType(u8),
    /// The RSV byte of a SOCKS5 request or reply is not 0.
    #[error("reserved byte is {0:#04x}, not 0")]
    BadReserved(u8),
    /// A domain name of length 0.
    #[error("empty domain name")]
    EmptyDomain,
    /// A domain name that is not UTF-8 or contains NUL or control characters.
    #[error("invalid domain name")]
    InvalidDomain,
    /// The RFC 1929 sub-negotiation version is not 1.
    #[error("username/password version {0:#04x}, expected 0x01")]
    BadAuthVersion(u8),
    /// An RFC 1929 username of length 0.
    #[error("empty username")]
    EmptyUsername,
    /// A username that is not UTF-8 or contains control characters.
    #[error("invalid username")]
    InvalidUsername,
    /// A field longer than the protocol allows: a SOCKS4 user id or 4a
    /// domain without NUL within 255 bytes, or (encoding) a field over 255.
    #[error("field too long")]
    FieldTooLong,
    /// A SOCKS4 user id containing NUL (encoding only: on the wire NUL ends it).
    #[error("user id contains NUL")]
    InvalidUserId,
    /// A message's version byte differs from the version of the exchange
    /// (a request that is not 5 after a SOCKS5 greeting, a reply to the
    /// wrong version).
    #[error("version byte does not match the negotiated SOCKS version")]
    VersionMismatch,
    /// A reply or status code this protocol does not define (client side).
    #[error("unknown reply code {0:#04x}")]
    UnknownReplyCode(u8),
    /// A whole datagram that ends inside its UDP request header (a stream
    /// message would wait for more bytes instead).
    #[error("datagram ends inside its header")]
    Truncated,
    /// A connection that must start with a PROXY protocol header starts
    /// with something else.
    #[error("no PROXY protocol header")]
    MissingProxyHeader,
    /// A PROXY protocol header that breaks the specification; the label
    /// names the part that does.
    #[error("malformed PROXY protocol header ({0})")]
    BadProxyHeader(&'static str),
    /// A PROXY protocol header longer than this server accepts.
    #[error("PROXY protocol header too long")]
    ProxyHeaderTooLong,
}

impl ProtoError {
    /// A short stable snake_case label, for counting and logs.
    pub const fn reason(&self) -> &'static str {
        match self {
            ProtoError::UnknownVersion(_) => "unknown_version",
            ProtoError::NoMethods => "no_methods",
            ProtoError::UnsupportedCommand(_) => "unsupported_command",
            ProtoError::UnsupportedAddressType(_) => "unsupported_address_type",
            ProtoError::BadReserved(_) => "bad_reserved",
            ProtoError::EmptyDomain => "empty_domain",
            ProtoError::InvalidDomain => "invalid_domain",
            ProtoError::BadAuthVersion(_) => "bad_auth_version",
            ProtoError::EmptyUsername => "empty_username",
            ProtoError::InvalidUsername => "invalid_username",
            ProtoError::FieldTooLong => "field_too_long",
            ProtoError::InvalidUserId => "invalid_user_id",
            ProtoError::VersionMismatch => "version_mismatch",
            ProtoError::UnknownReplyCode(_) => "unknown_reply_code",
            ProtoError::Truncated => "truncated",
            ProtoError::MissingProxyHeader => "proxy_header_missing",
            ProtoError::BadProxyHeader(_) => "proxy_header_invalid",
            ProtoError::ProxyHeaderTooLong => "proxy_header_too_long",
        }
    }
}

/// `N` bytes at `at`, or `None` if the buffer ends first.
fn bytes_at<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..)?.get(..N)?.try_into().ok()
}

/// A big-endian `u16` at `at`, or `None` if the buffer ends first.
fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    bytes_at(buf, at).map(u16::from_be_bytes)
}

/// Runs `encode` on `out`; on error, removes whatever it appended, so a
/// failed encode leaves `out` as it was.
fn encode_atomically(
    out: &mut Vec<u8>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<(), ProtoError>,
) -> Result<(), ProtoError> {
    let start = out.len();
    let result = encode(out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// A length-prefixed field's length byte, or [`ProtoError::FieldTooLong`].
fn len_byte(field: &[u8]) -> Result<u8, ProtoError> {
    u8::try_from(field.len()).map_err(|_| ProtoError::FieldTooLong)
}
