//! UDP ASSOCIATE: the control connection's side of an association.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::conn::{connect_failed, SessionLog};
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
) {
    let err = SessionError::UnsupportedCommand("UDP ASSOCIATE");
    connect_failed(services, &mut client, negotiated, err, log).await;
}
