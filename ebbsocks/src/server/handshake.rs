//! Reading a client's greeting, credentials and request, with a size cap on
//! every message. The handshake deadline wraps all of this from outside.
//!
//! The types carry the order: [`negotiate`] yields a [`Negotiated`] request
//! that owes the client exactly one reply, and that reply is sent by consuming
//! it ([`Negotiated::grant`] or [`Negotiated::refuse`]), so a session cannot
//! relay before replying or reply twice.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::auth::{Authenticator, Verdict};
use crate::error::SessionError;
use crate::proto::{
    detect_version, encode_method_selection, encode_socks4_reply, encode_userpass_status, method,
    Command, Greeting, ParseResult, Reply, ReplyCode, Request, Socks4Request, Socks4Status,
    TargetAddr, UserPass, Version, MAX_GREETING, MAX_SOCKS4_REQUEST, MAX_SOCKS5_REQUEST,
    MAX_USERPASS,
};

/// A complete, authenticated request (CONNECT, BIND or UDP ASSOCIATE).
#[derive(Debug)]
pub struct Negotiated {
    pub version: Version,
    pub command: Command,
    pub target: TargetAddr,
    pub user: Option<String>,
    /// Bytes the client sent after its request without waiting for the
    /// reply; they go to the upstream before anything else.
    pub early_data: Vec<u8>,
}

impl Negotiated {
    /// Tells the client its CONNECT succeeded; `bound` is the local address
    /// of the upstream socket actually used. Returns the early data to
    /// forward upstream.
    pub async fn grant(
        self,
        client: &mut TcpStream,
        bound: SocketAddr,
    ) -> std::io::Result<Vec<u8>> {
        client
            .write_all(&success_reply(self.version, bound))
            .await?;
        Ok(self.early_data)
    }

    /// Tells the client why its request failed.
    pub async fn refuse(self, client: &mut TcpStream, err: &SessionError) {
        send_refusal(client, self.version, err).await;
    }
}

/// A success reply carrying `bound`, in the client's protocol version.
pub fn success_reply(version: Version, bound: SocketAddr) -> Vec<u8> {
    match version {
        Version::Socks5 => {
            let mut out = Vec::with_capacity(22);
            Reply {
                code: ReplyCode::Succeeded,
                bound,
            }
            .encode(&mut out);
            out
        }
        // SOCKS4 can only say IPv4; clients ignore these fields anyway.
        Version::Socks4 => {
            let v4 = match bound {
                SocketAddr::V4(v4) => v4,
                SocketAddr::V6(_) => std::net::SocketAddrV4::new([0, 0, 0, 0].into(), 0),
            };
            encode_socks4_reply(Socks4Status::Granted, v4).to_vec()
        }
    }
}

/// Sends the failure reply for `err` in the client's protocol version, then
/// closes gracefully. A failed write changes nothing: the connection is
/// closed next either way.
pub async fn send_refusal(client: &mut TcpStream, version: Version, err: &SessionError) {
    let bytes = match version {
        Version::Socks5 => {
            let mut out = Vec::with_capacity(10);
            Reply::failure(err.reply_code()).encode(&mut out);
            out
        }
        Version::Socks4 => encode_socks4_reply(
            Socks4Status::Rejected,
            std::net::SocketAddrV4::new([0, 0, 0, 0].into(), 0),
        )
        .to_vec(),
    };
    if client.write_all(&bytes).await.is_ok() {
        linger_close(client).await;
    }
}

/// Closing a socket with unread input makes the kernel send a reset, which
/// can destroy the reply still in flight (a refused request may be followed
/// by bytes we never read). So: FIN first, then discard what the client still
/// sends, for a short bounded time, until it closes too.
async fn linger_close(client: &mut TcpStream) {
    const LINGER: Duration = Duration::from_millis(500);
    const MAX_DISCARD: usize = 64 * 1024;
    if client.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut scratch = [0u8; 1024];
        let mut discarded = 0;
        while discarded < MAX_DISCARD {
            match client.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => discarded += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Reads messages from the client into a small buffer that never grows past
/// the largest message of the protocol.
struct MessageReader<'a> {
    stream: &'a mut TcpStream,
    buf: Vec<u8>,
}

impl<'a> MessageReader<'a> {
    /// `read_ahead`: bytes of the handshake already read from `stream`.
    fn new(stream: &'a mut TcpStream, mut read_ahead: Vec<u8>) -> Self {
        read_ahead.reserve(256);
        Self {
            stream,
            buf: read_ahead,
        }
    }

    /// Parses the next message, reading more only while `parse` says the
    /// bytes so far are an incomplete prefix and the cap allows.
    async fn next<T>(
        &mut self,
        cap: usize,
        parse: impl Fn(&[u8]) -> ParseResult<T>,
    ) -> Result<T, SessionError> {
        loop {
            if let Some((message, used)) = parse(&self.buf)? {
                self.buf.drain(..used);
                return Ok(message);
            }
            if self.buf.len() >= cap {
                return Err(SessionError::Oversized(cap));
            }
            self.fill(cap).await?;
        }
    }

    async fn fill(&mut self, cap: usize) -> Result<(), SessionError> {
        let mut chunk = [0u8; 512];
        let room = (cap.saturating_sub(self.buf.len())).clamp(1, chunk.len());
        let n = self
            .stream
            .read(&mut chunk[..room])
            .await
            .map_err(SessionError::ClientIo)?;
        if n == 0 {
            return Err(SessionError::ClientClosed);
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(SessionError::ClientIo)
    }

    fn into_early_data(self) -> Vec<u8> {
        self.buf
    }
}

/// Runs the handshake up to a complete request. Failures that the protocol
/// can express are answered before the error is returned. `client` is whom
/// failed logins are charged to; `read_ahead` are bytes of the handshake
/// already read (after a PROXY header).
pub async fn negotiate(
    stream: &mut TcpStream,
    auth: &Authenticator,
    client: IpAddr,
    read_ahead: Vec<u8>,
) -> Result<Negotiated, SessionError> {
    let mut reader = MessageReader::new(stream, read_ahead);
    // The version byte is read together with as much of the first message
    // as has arrived (up to the size of a SOCKS5 greeting): one read, not two.
    let version = reader.next(MAX_GREETING, peek_version).await?;
    match version {
        Version::Socks5 => negotiate_v5(reader, auth, client).await,
        Version::Socks4 => negotiate_v4(reader, auth).await,
    }
}

fn peek_version(buf: &[u8]) -> ParseResult<Version> {
    Ok(detect_version(buf)?.map(|version| (version, 0)))
}

async fn negotiate_v5(
    mut reader: MessageReader<'_>,
    auth: &Authenticator,
    client: IpAddr,
) -> Result<Negotiated, SessionError> {
    let greeting = reader.next(MAX_GREETING, Greeting::parse).await?;
    let wanted = if auth.requires_password() {
        method::USERPASS
    } else {
        method::NO_AUTH
    };
    if !greeting.methods.contains(&wanted) {
        reader
            .write(&encode_method_selection(method::NO_ACCEPTABLE))
            .await?;
        return Err(SessionError::NoAcceptableMethod);
    }
    reader.write(&encode_method_selection(wanted)).await?;

    let mut user = None;
    if wanted == method::USERPASS {
        let credentials = match reader.next(MAX_USERPASS, UserPass::parse).await {
            Ok(credentials) => credentials,
            Err(err) => {
                let _ = reader.write(&encode_userpass_status(false)).await;
                return Err(err);
            }
        };
        // The failed-login budget is per client address.
        let verdict = auth
            .verify(
                client,
                credentials.username.as_bytes(),
                &credentials.password,
            )
            .await;
        let accepted = verdict == Verdict::Accepted;
        reader.write(&encode_userpass_status(accepted)).await?;
        match verdict {
            Verdict::Accepted => {}
            Verdict::Rejected => return Err(SessionError::AuthFailed(credentials.username)),
            Verdict::Throttled => return Err(SessionError::AuthThrottled),
        }
        user = Some(credentials.username);
    }

    let request = match reader.next(MAX_SOCKS5_REQUEST, Request::parse).await {
        Ok(request) => request,
        Err(err) => {
            send_refusal(reader.stream, Version::Socks5, &err).await;
            return Err(err);
        }
    };
    Ok(Negotiated {
        version: Version::Socks5,
        command: request.command,
        target: request.target,
        user,
        early_data: reader.into_early_data(),
    })
}

async fn negotiate_v4(
    mut reader: MessageReader<'_>,
    auth: &Authenticator,
) -> Result<Negotiated, SessionError> {
    let parsed = reader.next(MAX_SOCKS4_REQUEST, Socks4Request::parse).await;
    let refusal = match &parsed {
        _ if auth.requires_password() => Some(SessionError::Socks4NeedsAuth),
        Err(_) | Ok(_) => None,
    };
    let err = match (parsed, refusal) {
        (Ok(request), None) => {
            return Ok(Negotiated {
                version: Version::Socks4,
                command: request.command,
                target: request.target,
                user: None,
                early_data: reader.into_early_data(),
            })
        }
        (_, Some(err)) | (Err(err), None) => err,
    };
    send_refusal(reader.stream, Version::Socks4, &err).await;
    Err(err)
}
