//! The client side of SOCKS5 (RFC 1928) with optional username/password
//! authentication (RFC 1929).
//!
//! Messages are encoded by pure functions so tests can check them byte by
//! byte; [`handshake`] drives them over any async stream.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const VERSION: u8 = 0x05;
const AUTH_VERSION: u8 = 0x01;
pub const METHOD_NONE: u8 = 0x00;
pub const METHOD_USER_PASS: u8 = 0x02;
pub const METHOD_NO_ACCEPTABLE: u8 = 0xFF;
const CMD_CONNECT: u8 = 0x01;
const CMD_UDP_ASSOCIATE: u8 = 0x03;
const ATYP_V4: u8 = 0x01;
const ATYP_DOMAIN: u8 = 0x03;
const ATYP_V6: u8 = 0x04;

/// Where a stream should lead: an address, or a name the other side resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Addr(SocketAddr),
    Domain(String, u16),
}

impl Target {
    /// Parses `1.2.3.4:80`, `[::1]:80` or `host.name:80`.
    pub fn parse(s: &str) -> Result<Target, String> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Target::Addr(addr));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("`{s}` is not HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("`{port}` in `{s}` is not a port number"))?;
        if host.is_empty() || host.contains(':') || host.len() > 255 {
            return Err(format!("`{host}` in `{s}` is not a host name"));
        }
        Ok(Target::Domain(host.to_string(), port))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Domain(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

/// RFC 1929 username and password. Debug never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub pass: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("pass", &"***")
            .finish()
    }
}

/// Everything that can go wrong while talking SOCKS5 to a server.
#[derive(Debug)]
pub enum SocksError {
    Io(io::Error),
    /// The server chose 0xFF: none of our methods is acceptable.
    NoAcceptableMethod,
    /// The server chose a method we did not offer.
    UnexpectedMethod(u8),
    /// A reply did not start with the version byte we expect.
    BadVersion(u8),
    /// RFC 1929 status byte other than 0.
    AuthRejected(u8),
    /// CONNECT reply code other than 0 (succeeded).
    Reply(u8),
    /// The bound address in a reply had an unknown type.
    BadAddressType(u8),
    /// A user, password or domain longer than the one length byte allows.
    TooLong(&'static str),
}

impl From<io::Error> for SocksError {
    fn from(e: io::Error) -> Self {
        SocksError::Io(e)
    }
}

impl fmt::Display for SocksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocksError::Io(e) => write!(f, "i/o: {e}"),
            SocksError::NoAcceptableMethod => f.write_str("no acceptable authentication method"),
            SocksError::UnexpectedMethod(m) => {
                write!(f, "server chose method {m:#04x}, not offered")
            }
            SocksError::BadVersion(v) => write!(f, "reply version {v:#04x}, expected 0x05"),
            SocksError::AuthRejected(s) => {
                write!(f, "username/password rejected (status {s:#04x})")
            }
            SocksError::Reply(c) => write!(f, "reply {c:#04x} ({})", reply_text(*c)),
            SocksError::BadAddressType(t) => write!(f, "reply address type {t:#04x}"),
            SocksError::TooLong(what) => write!(f, "{what} longer than 255 bytes"),
        }
    }
}

impl std::error::Error for SocksError {}

/// The meaning of each RFC 1928 reply code.
pub fn reply_text(code: u8) -> &'static str {
    match code {
        0x00 => "succeeded",
        0x01 => "general failure",
        0x02 => "connection not allowed by ruleset",
        0x03 => "network unreachable",
        0x04 => "host unreachable",
        0x05 => "connection refused",
        0x06 => "TTL expired",
        0x07 => "command not supported",
        0x08 => "address type not supported",
        _ => "unassigned",
    }
}

/// `VER NMETHODS METHODS...`: offer user/pass only when we have credentials,
/// so a server requiring auth fails loudly instead of silently downgrading.
pub fn encode_greeting(with_credentials: bool) -> Vec<u8> {
    if with_credentials {
        vec![VERSION, 1, METHOD_USER_PASS]
    } else {
        vec![VERSION, 1, METHOD_NONE]
    }
}

/// RFC 1929: `VER ULEN UNAME PLEN PASSWD`.
pub fn encode_auth(c: &Credentials) -> Result<Vec<u8>, SocksError> {
    let user = u8::try_from(c.user.len()).map_err(|_| SocksError::TooLong("username"))?;
    let pass = u8::try_from(c.pass.len()).map_err(|_| SocksError::TooLong("password"))?;
    let mut out = Vec::with_capacity(3 + c.user.len() + c.pass.len());
    out.extend_from_slice(&[AUTH_VERSION, user]);
    out.extend_from_slice(c.user.as_bytes());
    out.push(pass);
    out.extend_from_slice(c.pass.as_bytes());
    Ok(out)
}

/// `VER CMD RSV ATYP DST.ADDR DST.PORT` for CONNECT.
pub fn encode_connect(target: &Target) -> Result<Vec<u8>, SocksError> {
    encode_request(CMD_CONNECT, target)
}

/// The same request for UDP ASSOCIATE; `declared` is where the client's
/// datagrams will come from (`0.0.0.0:0` when it does not know).
pub fn encode_udp_associate(declared: &Target) -> Result<Vec<u8>, SocksError> {
    encode_request(CMD_UDP_ASSOCIATE, declared)
}

fn encode_request(command: u8, target: &Target) -> Result<Vec<u8>, SocksError> {
    let mut out = vec![VERSION, command, 0x00];
    let port = match target {
        Target::Addr(SocketAddr::V4(a)) => {
            out.push(ATYP_V4);
            out.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Target::Addr(SocketAddr::V6(a)) => {
            out.push(ATYP_V6);
            out.extend_from_slice(&a.ip().octets());
            a.port()
        }
        Target::Domain(host, port) => {
            let len = u8::try_from(host.len()).map_err(|_| SocksError::TooLong("domain"))?;
            out.extend_from_slice(&[ATYP_DOMAIN, len]);
            out.extend_from_slice(host.as_bytes());
            *port
        }
    };
    out.extend_from_slice(&port.to_be_bytes());
    Ok(out)
}

/// Runs greeting, optional authentication and CONNECT on `stream`. Returns
/// the bound address the server reported.
pub async fn handshake<S>(
    stream: &mut S,
    target: &Target,
    credentials: Option<&Credentials>,
) -> Result<Target, SocksError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    negotiate(stream, credentials).await?;
    stream.write_all(&encode_connect(target)?).await?;
    read_reply(stream).await
}

/// Greeting, optional authentication and UDP ASSOCIATE on the control
/// connection `stream`. Returns the relay address the server reported.
pub async fn udp_associate<S>(
    stream: &mut S,
    declared: &Target,
    credentials: Option<&Credentials>,
) -> Result<Target, SocksError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    negotiate(stream, credentials).await?;
    stream.write_all(&encode_udp_associate(declared)?).await?;
    read_reply(stream).await
}

/// Greeting and, when the server asks for it, RFC 1929 authentication.
async fn negotiate<S>(stream: &mut S, credentials: Option<&Credentials>) -> Result<(), SocksError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream
        .write_all(&encode_greeting(credentials.is_some()))
        .await?;
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await?;
    if choice[0] != VERSION {
        return Err(SocksError::BadVersion(choice[0]));
    }
    match (choice[1], credentials) {
        (METHOD_NO_ACCEPTABLE, _) => return Err(SocksError::NoAcceptableMethod),
        (METHOD_NONE, None) => {}
        (METHOD_USER_PASS, Some(c)) => {
            stream.write_all(&encode_auth(c)?).await?;
            let mut status = [0u8; 2];
            stream.read_exact(&mut status).await?;
            if status[0] != AUTH_VERSION {
                return Err(SocksError::BadVersion(status[0]));
            }
            if status[1] != 0 {
                return Err(SocksError::AuthRejected(status[1]));
            }
        }
        (other, _) => return Err(SocksError::UnexpectedMethod(other)),
    }
    Ok(())
}

/// Reads `VER REP RSV ATYP BND.ADDR BND.PORT`. On a failure code the rest
/// of the reply is not read: the connection is useless either way.
async fn read_reply<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Target, SocksError> {
    let mut head = [0u8; 4];
    stream.read_exact(&mut head).await?;
    if head[0] != VERSION {
        return Err(SocksError::BadVersion(head[0]));
    }
    if head[1] != 0x00 {
        return Err(SocksError::Reply(head[1]));
    }
    let ip_or_host = match head[3] {
        ATYP_V4 => {
            let mut b = [0u8; 4];
            stream.read_exact(&mut b).await?;
            Ok(IpAddr::V4(Ipv4Addr::from(b)))
        }
        ATYP_V6 => {
            let mut b = [0u8; 16];
            stream.read_exact(&mut b).await?;
            Ok(IpAddr::V6(Ipv6Addr::from(b)))
        }
        ATYP_DOMAIN => {
            let len = stream.read_u8().await?;
            let mut b = vec![0u8; usize::from(len)];
            stream.read_exact(&mut b).await?;
            Err(String::from_utf8_lossy(&b).into_owned())
        }
        other => return Err(SocksError::BadAddressType(other)),
    };
    let port = stream.read_u16().await?;
    Ok(match ip_or_host {
        Ok(ip) => Target::Addr(SocketAddr::new(ip, port)),
        Err(host) => Target::Domain(host, port),
    })
}

#[cfg(test)]
#[path = "socks_tests.rs"]
mod tests;
