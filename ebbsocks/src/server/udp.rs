//! UDP ASSOCIATE: the control connection's side of an association. Admit it
//! under `max_udp_associations`, open the relay socket where the client can
//! reach it, reply with its address, then run the association (the datagram
//! path is `crate::udp`) until the control connection closes or it idles
//! out. Everything lives in this one future: conn.rs dropping it on a
//! forced shutdown closes the sockets and frees the slot.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::conn::{connect_failed, SessionLog};
use super::handshake::Negotiated;
use super::Services;
use crate::access::{Denial, Subject};
use crate::error::SessionError;
use crate::proto::{Command, TargetAddr};
use crate::udp::{Association, ClientFilter, Context};

pub(super) async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    mut negotiated: Negotiated,
    services: &Services,
    log: Option<Box<SessionLog>>,
) {
    let max = services.config.server.max_udp_associations;
    let Some(_slot) = services.stats.udp.admit(max) else {
        let err = SessionError::UdpAssociationsFull(max);
        connect_failed(services, &mut client, negotiated, err, log).await;
        return;
    };
    let relay = match open_relay(&client).await {
        Ok(relay) => relay,
        Err(err) => {
            let err = SessionError::UdpRelaySocket(err);
            connect_failed(services, &mut client, negotiated, err, log).await;
            return;
        }
    };
    let Ok(bound) = relay.local_addr() else {
        return;
    };
    // Behind NAT (or in a container) the local address is not the one the
    // client can send to; the operator says which is.
    let advertised = match services.config.server.external_address {
        Some(ip) => SocketAddr::new(ip, bound.port()),
        None => bound,
    };
    let user = negotiated.user.take();
    let client_filter = ClientFilter::new(peer.ip(), &negotiated.target);
    if negotiated.grant(&mut client, advertised).await.is_err() {
        return;
    }
    tracing::debug!(%bound, %advertised, "UDP association open");

    // One snapshot of the rules for the association's whole life.
    let rules = services.access();
    let who = Subject {
        client: peer.ip(),
        user: user.as_deref(),
        command: Command::UdpAssociate,
    };
    let on_denial = |destination: &TargetAddr, denial: &Denial| {
        services.note_denial(peer, &who, destination, denial);
    };
    let cx = Context {
        rules: &rules,
        who,
        resolver: &services.resolver,
        stats: &services.stats,
        idle_timeout: services.config.server.udp_idle_timeout(),
        on_denial: &on_denial,
    };
    // The log line is written when this drops, so an association ended by
    // a forced shutdown (this future dropped mid-await) still gets one.
    let mut ending = Ending {
        association: Association::new(cx, relay, client_filter),
        log: log.is_some().then(|| AssociationLog {
            peer,
            user: user.clone(),
            started: Instant::now(),
        }),
        outcome: "shutdown",
    };
    let end = ending.association.run(&client).await;
    tracing::debug!(outcome = end.label(), "UDP association closed");
    ending.outcome = end.label();
}

/// The relay socket: on the IP the client reached us at (its control
/// connection's local address, as IPv4 when it is an IPv4-mapped one), port
/// chosen by the kernel.
async fn open_relay(control: &TcpStream) -> std::io::Result<UdpSocket> {
    let local: IpAddr = control.local_addr()?.ip().to_canonical();
    UdpSocket::bind(SocketAddr::new(local, 0)).await
}

/// What the association's access-log line needs besides its tally.
struct AssociationLog {
    peer: SocketAddr,
    user: Option<String>,
    started: Instant,
}

/// Owns the association so its log line can be written on any end.
struct Ending<'a> {
    association: Association<'a>,
    log: Option<AssociationLog>,
    outcome: &'static str,
}

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        let Some(log) = self.log.take() else {
            return;
        };
        let tally = &self.association.tally;
        tracing::info!(
            target: "ebbsocks::access",
            client = %log.peer,
            user = log.user.as_deref().unwrap_or("-"),
            command = "udp_associate",
            datagrams_up = tally.datagrams_up,
            bytes_up = tally.bytes_up,
            datagrams_down = tally.datagrams_down,
            bytes_down = tally.bytes_down,
            dropped = tally.drops.total(),
            drops = %tally.drops.summary(),
            duration_ms = log.started.elapsed().as_millis() as u64,
            outcome = self.outcome,
            "udp association"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::proto::Version;

    /// An idle association is mostly this future (inside the connection's
    /// boxed setup future), so its size is pinned.
    #[tokio::test]
    async fn an_association_future_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let peer = client.local_addr().expect("addr");
        let services = Services::new(Config::default());
        let negotiated = Negotiated {
            version: Version::Socks5,
            command: Command::UdpAssociate,
            target: TargetAddr::Ip(peer),
            user: None,
            early_data: Vec::new(),
        };
        let future = serve(client, peer, negotiated, &services, None);
        let size = std::mem::size_of_val(&future);
        eprintln!("association future: {size} bytes");
        assert!(size <= 3072, "association future is {size} bytes");
    }
}
