//! UDP ASSOCIATE: the control connection's side of an association. Admit it
//! under `max_udp_associations`, open the relay socket where the client can
//! reach it, reply with its address ([`open`], inside the connection's setup
//! future), then run the association (the datagram path is `crate::udp`)
//! until the control connection closes or it idles out ([`UdpSession`]).
//! Everything lives in that one future, polled by the connection's task:
//! conn.rs dropping it on a forced shutdown closes the sockets and frees
//! the slot.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use super::conn::{connect_failed, SessionLog};
use super::handshake::Negotiated;
use super::Services;
use crate::access::{Denial, Subject};
use crate::error::SessionError;
use crate::proto::{Command, TargetAddr};
use crate::stats::udp::AssociationSlot;
use crate::udp::{Association, ClientFilter, Context};

/// A granted association, run to its end: boxed on its own, after the
/// connection's setup future is freed, so an idle association holds only
/// what relaying needs.
pub(super) type UdpSession<'s> = Pin<Box<dyn Future<Output = ()> + Send + 's>>;

/// Admits the association, opens its relay socket and replies. Refusals
/// are answered, counted and logged here; `None` means the session is over.
pub(super) async fn open<'s>(
    mut client: TcpStream,
    peer: SocketAddr,
    mut negotiated: Negotiated,
    services: &'s Services,
    log: Option<Box<SessionLog>>,
) -> Option<UdpSession<'s>> {
    let max = services.config().server.max_udp_associations;
    let Some(slot) = services.stats.udp.admit(max) else {
        let err = SessionError::UdpAssociationsFull(max);
        return connect_failed(services, &mut client, negotiated, err, log).await;
    };
    let relay = match open_relay(&client).await {
        Ok(relay) => relay,
        Err(err) => {
            let err = SessionError::UdpRelaySocket(err);
            return connect_failed(services, &mut client, negotiated, err, log).await;
        }
    };
    let bound = relay.local_addr().ok()?;
    // Behind NAT (or in a container) the local address is not the one the
    // client can send to; the operator says which is.
    let advertised = match services.config().server.external_address {
        Some(ip) => SocketAddr::new(ip, bound.port()),
        None => bound,
    };
    let user = negotiated.user.take();
    let filter = ClientFilter::new(peer.ip(), &negotiated.target);
    negotiated.grant(&mut client, advertised).await.ok()?;
    tracing::debug!(%bound, %advertised, "UDP association open");
    let opened = Opened {
        client,
        peer,
        user,
        relay,
        filter,
        _slot: slot,
        log: log.is_some(),
    };
    Some(Box::pin(opened.run(services)))
}

/// What a granted association starts with.
struct Opened<'s> {
    client: TcpStream,
    peer: SocketAddr,
    user: Option<String>,
    relay: UdpSocket,
    filter: ClientFilter,
    /// Its place under `max_udp_associations`, freed when this drops.
    _slot: AssociationSlot<'s>,
    log: bool,
}

impl<'s> Opened<'s> {
    async fn run(self, services: &'s Services) {
        let peer = self.peer;
        // One snapshot of the rules for the association's whole life.
        let rules = services.access();
        let who = Subject {
            client: peer.ip(),
            user: self.user.as_deref(),
            command: Command::UdpAssociate,
        };
        let on_denial = |destination: &TargetAddr, denial: &Denial| {
            services.note_denial(peer, &who, destination, denial);
        };
        // The log line is written when this drops, so an association ended
        // by a forced shutdown (this future dropped mid-await) gets one too.
        let mut ending = Ending {
            association: Association::new(
                Context {
                    rules: &rules,
                    who,
                    resolver: &services.resolver,
                    stats: &services.stats,
                    idle_timeout: services.config().server.udp_idle_timeout(),
                    on_denial: &on_denial,
                },
                self.relay,
                self.filter,
            ),
            log: self.log.then(|| AssociationLog {
                peer,
                user: self.user.as_deref(),
                started: Instant::now(),
            }),
            outcome: "shutdown",
        };
        let end = ending.association.run(&self.client).await;
        tracing::debug!(outcome = end.label(), "UDP association closed");
        ending.outcome = end.label();
    }
}

/// The relay socket: on the IP the client reached us at (its control
/// connection's local address, as IPv4 when it is an IPv4-mapped one), port
/// chosen by the kernel.
async fn open_relay(control: &TcpStream) -> std::io::Result<UdpSocket> {
    let local: IpAddr = control.local_addr()?.ip().to_canonical();
    UdpSocket::bind(SocketAddr::new(local, 0)).await
}

/// What the association's access-log line needs besides its tally.
struct AssociationLog<'a> {
    peer: SocketAddr,
    user: Option<&'a str>,
    started: Instant,
}

/// Owns the association so its log line can be written on any end.
struct Ending<'a> {
    association: Association<'a>,
    log: Option<AssociationLog<'a>>,
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
            user = log.user.unwrap_or("-"),
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

    /// An idle association is mostly this future (boxed on its own once
    /// the connection's setup future is freed), so its size is pinned.
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
        let opening = open(client, peer, negotiated, &services, None);
        eprintln!("opening: {} bytes", std::mem::size_of_val(&opening));
        let opened = Opened {
            client: TcpStream::connect(listener.local_addr().expect("addr"))
                .await
                .expect("connect"),
            peer,
            user: None,
            relay: UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
            filter: ClientFilter::new(peer.ip(), &TargetAddr::Ip(peer)),
            _slot: services.stats.udp.admit(1).expect("a slot"),
            log: false,
        };
        let running = opened.run(&services);
        let size = std::mem::size_of_val(&running);
        eprintln!("association future: {size} bytes");
        assert!(size <= 1536, "association future is {size} bytes");
    }
}
