//! Username/password authentication for SOCKS5 (RFC 1929).

use std::fmt;

use super::{encode_atomically, len_byte, ParseResult, ProtoError};

/// The sub-negotiation version byte (not the SOCKS version).
const VERSION: u8 = 0x01;

/// Largest request: VER, ULEN, 255 bytes of name, PLEN, 255 bytes of password.
pub const MAX_USERPASS: usize = 1 + 1 + 255 + 1 + 255;

/// The client's credentials, sent after the server selects
/// [`method::USERPASS`](super::method::USERPASS).
///
/// ```text
/// +----+------+----------+------+----------+
/// |VER | ULEN |  UNAME   | PLEN |  PASSWD  |
/// +----+------+----------+------+----------+
/// | 1  |  1   | 1 to 255 |  1   | 1 to 255 |
/// +----+------+----------+------+----------+
/// ```
///
/// The username must be UTF-8 without control characters, so it can be
/// compared with configured names and logged safely. The password is raw
/// bytes; an empty password (PLEN = 0) is accepted here and left to the
/// verifier. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct UserPass {
    /// UNAME; never empty.
    pub username: String,
    /// PASSWD.
    pub password: Vec<u8>,
}

impl UserPass {
    /// Parses credentials from the front of `buf`.
    pub fn parse(buf: &[u8]) -> ParseResult<Self> {
        let Some(&version) = buf.first() else {
            return Ok(None);
        };
        if version != VERSION {
            return Err(ProtoError::BadAuthVersion(version));
        }
        let Some(&name_len) = buf.get(1) else {
            return Ok(None);
        };
        if name_len == 0 {
            return Err(ProtoError::EmptyUsername);
        }
        let name_end = 2 + usize::from(name_len);
        let Some(username) = buf.get(2..name_end) else {
            return Ok(None);
        };
        let username = check_username(username)?;
        let Some(&pass_len) = buf.get(name_end) else {
            return Ok(None);
        };
        let end = name_end + 1 + usize::from(pass_len);
        let Some(password) = buf.get(name_end + 1..end) else {
            return Ok(None);
        };
        let creds = UserPass {
            username: username.to_owned(),
            password: password.to_vec(),
        };
        Ok(Some((creds, end)))
    }

    /// Appends the credentials. Fails (appending nothing) for an empty or
    /// invalid username, or a field longer than 255 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        encode_atomically(out, |out| {
            let name = check_username(self.username.as_bytes())?.as_bytes();
            out.extend_from_slice(&[VERSION, len_byte(name)?]);
            out.extend_from_slice(name);
            out.push(len_byte(&self.password)?);
            out.extend_from_slice(&self.password);
            Ok(())
        })
    }
}

impl fmt::Debug for UserPass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserPass")
            .field("username", &self.username)
            .field("password", &format_args!("<redacted>"))
            .finish()
    }
}

fn check_username(name: &[u8]) -> Result<&str, ProtoError> {
    if name.is_empty() {
        return Err(ProtoError::EmptyUsername);
    }
    let name = std::str::from_utf8(name).map_err(|_| ProtoError::InvalidUsername)?;
    if name.chars().any(char::is_control) {
        return Err(ProtoError::InvalidUsername);
    }
    Ok(name)
}

/// The server's verdict on the credentials. On failure the server closes.
///
/// ```text
/// +----+--------+
/// |VER | STATUS |
/// +----+--------+
/// | 1  |   1    |
/// +----+--------+
/// ```
///
/// `0x01 0x00` for success, `0x01 0x01` for failure.
pub const fn encode_userpass_status(ok: bool) -> [u8; 2] {
    [VERSION, if ok { 0x00 } else { 0x01 }]
}

/// Parses the status (client side): `true` for success. Any nonzero
/// STATUS is a failure, as RFC 1929 says.
pub fn parse_userpass_status(buf: &[u8]) -> ParseResult<bool> {
    match buf {
        [] => Ok(None),
        [version, ..] if *version != VERSION => Err(ProtoError::BadAuthVersion(*version)),
        [_] => Ok(None),
        [_, status, ..] => Ok(Some((*status == 0x00, 2))),
    }
}
