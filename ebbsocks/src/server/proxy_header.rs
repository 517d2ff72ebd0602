//! The step between accept and the SOCKS handshake when
//! `server.proxy_protocol.trusted` is set: a connection from a trusted
//! balancer must start with a PROXY header, whose client address then
//! stands for the peer everywhere (access rules, session limits, the login
//! budget, the access log); a connection from anywhere else must not start
//! with one. Both run under the handshake deadline, which the caller sets.

use std::io;
use std::net::SocketAddr;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::handshake::{self, Negotiated};
use super::Services;
use crate::error::SessionError;
use crate::proto::{starts_like_proxy_header, ProxyHeader, MAX_PROXY_HEADER};

/// Who a connection is from, and what was read past the PROXY header.
struct Arrival {
    /// The client: the address its header carried, or the connection's peer.
    client: SocketAddr,
    /// Bytes after the header: the start of the SOCKS handshake.
    read_ahead: Vec<u8>,
}

/// Reads the PROXY header where one is due, then the SOCKS handshake.
/// Returns the client's address with its request, or `None` for a
/// balancer's health check (a LOCAL header, then the end of the
/// connection), which is counted as such and not as a failure.
pub(super) async fn negotiate(
    stream: &mut TcpStream,
    peer: SocketAddr,
    services: &Services,
) -> Result<Option<(SocketAddr, Negotiated)>, SessionError> {
    let arrival = match &services.proxy_trust {
        None => Arrival {
            client: peer,
            read_ahead: Vec::new(),
        },
        Some(trusted) if trusted.contains(peer.ip()) => {
            match receive(stream, peer, services).await? {
                Some(arrival) => arrival,
                None => return Ok(None),
            }
        }
        Some(_) => refuse_header(stream, peer).await?,
    };
    let client = arrival.client;
    if client != peer {
        // The connection's log lines name the client the header carried,
        // next to the balancer's address.
        tracing::Span::current().record("client", tracing::field::display(client));
    }
    let negotiated =
        handshake::negotiate(stream, &services.auth, client.ip(), arrival.read_ahead).await?;
    Ok(Some((client, negotiated)))
}

/// A trusted balancer's connection: the header, and what follows it.
async fn receive(
    stream: &mut TcpStream,
    peer: SocketAddr,
    services: &Services,
) -> Result<Option<Arrival>, SessionError> {
    let mut buf = Vec::with_capacity(256);
    let (header, used) = loop {
        if let Some(parsed) = ProxyHeader::parse(&buf)? {
            break parsed;
        }
        // The parser answers at MAX_PROXY_HEADER bytes, so this read is
        // always below the cap.
        if read_some(stream, &mut buf, MAX_PROXY_HEADER).await? == 0 {
            return Err(SessionError::ClientClosed);
        }
    };
    let mut read_ahead = buf.split_off(used);
    let stats = &services.stats.proxy_protocol;
    let client = match header {
        ProxyHeader::Proxied { source, .. } => {
            stats.proxied();
            tracing::debug!(client = %source, "PROXY header");
            source
        }
        ProxyHeader::Unknown => {
            stats.unknown();
            peer
        }
        ProxyHeader::Local => {
            stats.local();
            // A health check connects, sends its header and goes: the end
            // of the connection here is the check passing, not a failure.
            if read_ahead.is_empty() && ends_before_a_byte(stream, &mut read_ahead).await? {
                return Ok(None);
            }
            peer
        }
    };
    Ok(Some(Arrival { client, read_ahead }))
}

/// Waits for the first byte after a LOCAL header: true when the balancer
/// closes (or resets) the connection instead.
async fn ends_before_a_byte(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<bool, SessionError> {
    match read_some(stream, buf, MAX_PROXY_HEADER).await {
        Ok(0) => Ok(true),
        Ok(_) => Ok(false),
        Err(SessionError::ClientIo(err)) if is_reset(&err) => Ok(true),
        Err(err) => Err(err),
    }
}

fn is_reset(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
    )
}

/// A connection from an untrusted source: its first bytes must not be a
/// PROXY header (anyone could claim any address with one). The bytes read
/// go on to the handshake.
async fn refuse_header(stream: &mut TcpStream, peer: SocketAddr) -> Result<Arrival, SessionError> {
    let mut buf = Vec::with_capacity(256);
    if read_some(stream, &mut buf, 512).await? == 0 {
        return Err(SessionError::ClientClosed);
    }
    if starts_like_proxy_header(&buf) {
        return Err(SessionError::UntrustedProxyHeader);
    }
    Ok(Arrival {
        client: peer,
        read_ahead: buf,
    })
}

/// One read appended to `buf`, which never grows past `cap`.
async fn read_some(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    cap: usize,
) -> Result<usize, SessionError> {
    let mut chunk = [0u8; 512];
    let room = cap.saturating_sub(buf.len()).clamp(1, chunk.len());
    let n = stream
        .read(&mut chunk[..room])
        .await
        .map_err(SessionError::ClientIo)?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}
