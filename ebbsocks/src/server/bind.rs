//! BIND (SOCKS5 and SOCKS4): accept one inbound connection for the client.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::conn::{connect_failed, Established, SessionLog};
use super::handshake::Negotiated;
use super::Services;
use crate::error::SessionError;

/// Not implemented yet: refused as "command not supported".
pub(super) async fn serve(
    mut client: TcpStream,
    _peer: SocketAddr,
    negotiated: Negotiated,
    services: &Services,
    log: Option<Box<SessionLog>>,
) -> Option<Established> {
    let err = SessionError::UnsupportedCommand("BIND");
    connect_failed(services, &mut client, negotiated, err, log).await
}
