//! BIND (SOCKS5 and SOCKS4): listen for one inbound connection on the
//! client's behalf, then relay it like a CONNECT.
//!
//! The way through: access decision on the request (name, then each
//! resolved address; an unspecified DST.ADDR waits for "any peer" and is
//! checked per peer) -> listen on an ephemeral port of the address the
//! proxy would use to reach the peer -> first reply (that address, or
//! `server.external_address`) -> wait for one peer that is the requested
//! host and passes the rules, until `server.bind_timeout_secs`, while
//! watching the control connection -> second reply (the peer's address) ->
//! relay. `peer.rs` holds the address decisions, `wait.rs` the wait.
//! docs/bind.md describes the behaviour for operators.

mod peer;
mod wait;

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;

use super::conn::{connect_failed, grant_and_relay, Established, SessionLog};
use super::handshake::{success_reply, Negotiated};
use super::Services;
use crate::access::{Bound, Subject};
use crate::error::SessionError;
use crate::proto::{Command, TargetAddr, Version};
use crate::upstream::connect::{resolve_within, Gate};
use crate::upstream::resolve::Resolver;
use peer::{canonical_ip, for_reply, route_source, ExpectedPeer};

/// Pending connections the BIND listener lets the kernel queue. One is
/// wanted; a little room keeps a burst of strays from delaying the real
/// peer's handshake.
const BIND_BACKLOG: u32 = 16;

/// Serves one BIND request; `Some` is a granted session ready to relay.
/// Failures are answered, counted and logged here. Nothing is spawned: the
/// listener lives in this future, so dropping it (forced shutdown) closes
/// the port.
pub(in crate::server) async fn serve(
    mut client: TcpStream,
    peer: SocketAddr,
    mut negotiated: Negotiated,
    services: &Services,
    log: Option<Box<SessionLog>>,
) -> Option<Established> {
    services.stats.bind_requested();
    let version = negotiated.version;
    let rules = services.access();
    let user = negotiated.user.clone();
    let who = Subject {
        client: peer.ip(),
        user: user.as_deref(),
        command: Command::Bind,
    };
    let gate = Bound { rules: &rules, who };
    // Resolving a name has the same deadline as a CONNECT's way upstream.
    let policy = services.connect_policy();
    let deadline = policy.deadline_from_now();
    let planned = plan(
        &negotiated.target,
        version,
        &gate,
        (&services.resolver, deadline),
        &client,
    )
    .await;
    let plan = match planned {
        Ok(plan) => plan,
        Err(SessionError::Denied(denial)) => {
            services.note_denial(peer, &who, &negotiated.target, &denial);
            let err = SessionError::Denied(denial);
            negotiated.refuse(&mut client, &err).await;
            return None;
        }
        Err(err) => return connect_failed(services, &mut client, negotiated, err, log).await,
    };
    let listen_ip = outbound_listen_address(&plan, policy.options.bind_address);
    let (listener, local) = match listen(listen_ip) {
        Ok(listening) => listening,
        Err(err) => {
            let err = SessionError::BindListen(err);
            return connect_failed(services, &mut client, negotiated, err, log).await;
        }
    };
    let advertised = SocketAddr::new(
        services
            .config()
            .server
            .external_address
            .unwrap_or(local.ip()),
        local.port(),
    );
    let first = success_reply(version, for_reply(version, advertised));
    if let Err(err) = client.write_all(&first).await {
        let err = SessionError::ClientIo(err);
        return connect_failed(services, &mut client, negotiated, err, log).await;
    }
    tracing::debug!(%local, %advertised, "BIND listening");

    let name = plan.name.as_deref();
    let dst_port = negotiated.target.port();
    let admit = |from: SocketAddr| {
        if !plan.expected.admits(from.ip()) {
            services.stats.bind_peer_rejected();
            return false;
        }
        match rules.check_bind_peer(&who, name, from, dst_port) {
            Ok(()) => true,
            Err(denial) => {
                services.note_denial(peer, &who, &from, &denial);
                services.stats.bind_peer_rejected();
                false
            }
        }
    };
    // Bytes the client sends while waiting join those that came with its
    // request; the peer receives them first.
    let mut early = std::mem::take(&mut negotiated.early_data);
    let timeout = services.config().server.bind_timeout();
    let accepted = wait::accept_peer(listener, &mut client, timeout, &mut early, admit).await;
    negotiated.early_data = early;
    let (inbound, from) = match accepted {
        Ok(accepted) => accepted,
        Err(err) => return connect_failed(services, &mut client, negotiated, err, log).await,
    };
    tracing::debug!(%from, "BIND peer accepted");
    if let Err(err) = services.connect_policy().options.apply(&inbound) {
        tracing::debug!(%err, "cannot set the BIND peer socket's options");
    }
    // From here on, exactly as a granted CONNECT; never pooled, so no lease.
    let reply_addr = for_reply(version, from);
    grant_and_relay(services, client, inbound, negotiated, reply_addr, None, log).await
}

/// What the request asks for, once the access rules have allowed it.
#[derive(Debug)]
struct Plan {
    expected: ExpectedPeer,
    /// The local address to listen on.
    listen: IpAddr,
    /// The requested name, for the access check of each peer.
    name: Option<String>,
}

/// With `upstream.bind_address` set, a peer we wait for at known hosts is
/// expected where our outbound connections come from, so we listen there
/// (when its family suits the reply); "any peer" keeps the control
/// connection's address.
fn outbound_listen_address(plan: &Plan, bind_address: Option<IpAddr>) -> IpAddr {
    match (bind_address, &plan.expected) {
        (Some(local), ExpectedPeer::Hosts(_)) if local.is_ipv4() == plan.listen.is_ipv4() => local,
        _ => plan.listen,
    }
}

async fn plan(
    target: &TargetAddr,
    version: Version,
    gate: &Bound<'_>,
    resolving: (&Resolver, Instant),
    client: &TcpStream,
) -> Result<Plan, SessionError> {
    let port = target.port();
    let ip = match target {
        TargetAddr::Ip(addr) => addr.ip(),
        // A name that spells an address is that address (no lookup).
        TargetAddr::Domain(name, _) => match name.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => return plan_for_name(target, name, version, gate, resolving, client).await,
        },
    };
    let ip = canonical_ip(ip);
    if ip.is_unspecified() {
        // "Any peer": each peer is checked as it comes, but a BIND that
        // no peer could pass is refused now rather than at its timeout.
        gate.rules
            .check_any_addr(&gate.who, port)
            .map_err(SessionError::Denied)?;
        // No host to route to; the client evidently reaches us here.
        let listen = control_address(client)?;
        return Ok(Plan {
            expected: ExpectedPeer::Any,
            listen,
            name: None,
        });
    }
    gate.check_addr(None, SocketAddr::new(ip, port))
        .map_err(SessionError::Denied)?;
    let listen = route_source(ip).await.map_err(SessionError::BindListen)?;
    Ok(Plan {
        expected: ExpectedPeer::Hosts(vec![ip]),
        listen,
        name: None,
    })
}

/// A domain DST: resolved once; the peer must come from one of the
/// addresses the rules allowed, and we listen where we would reach the
/// first of them (for SOCKS4, whose replies say IPv4 only, the first IPv4
/// one when there is one).
async fn plan_for_name(
    target: &TargetAddr,
    name: &str,
    version: Version,
    gate: &impl Gate,
    (resolver, deadline): (&Resolver, Instant),
    client: &TcpStream,
) -> Result<Plan, SessionError> {
    let hosts: Vec<IpAddr> = resolve_within(deadline, target, resolver, gate)
        .await?
        .into_iter()
        .map(|addr| canonical_ip(addr.ip()))
        .collect();
    let toward = match version {
        Version::Socks4 => hosts.iter().find(|ip| ip.is_ipv4()).or(hosts.first()),
        Version::Socks5 => hosts.first(),
    };
    let listen = match toward {
        Some(ip) => route_source(*ip).await.map_err(SessionError::BindListen)?,
        None => control_address(client)?,
    };
    Ok(Plan {
        expected: ExpectedPeer::Hosts(hosts),
        listen,
        name: Some(name.to_owned()),
    })
}

/// The proxy's address on the client's control connection.
fn control_address(client: &TcpStream) -> Result<IpAddr, SessionError> {
    client
        .local_addr()
        .map(|addr| canonical_ip(addr.ip()))
        .map_err(SessionError::BindListen)
}

/// A listener on an ephemeral port of `ip`, and its address.
fn listen(ip: IpAddr) -> io::Result<(TcpListener, SocketAddr)> {
    let socket = match ip {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    let listener = socket.listen(BIND_BACKLOG)?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
