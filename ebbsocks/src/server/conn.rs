//! One client's way through the server: handshake under a deadline, connect
//! (pool or new), reply, relay, access log. Counters are kept at each step.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::handshake::Negotiated;
use super::limits;
use super::session::Session;
use super::Services;
use crate::access::{Bound, Subject};
use crate::error::SessionError;
use crate::proto::Command;
use crate::relay::{self, Relay, RelayOptions};
use crate::upstream::connect;
use crate::upstream::pool::Lease;

/// Counts the connection open for as long as it lives, and holds its slot
/// under `max_connections`.
struct OpenConnection {
    services: Arc<Services>,
    _permit: OwnedSemaphorePermit,
}

impl OpenConnection {
    fn new(services: Arc<Services>, permit: OwnedSemaphorePermit) -> Self {
        services.stats.connection_opened();
        services.memory.connection_opened();
        Self {
            services,
            _permit: permit,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.services.stats.connection_closed();
        self.services.memory.connection_closed();
    }
}

pub(super) async fn handle(
    client: TcpStream,
    peer: SocketAddr,
    services: Arc<Services>,
    force_close: CancellationToken,
    permit: OwnedSemaphorePermit,
) {
    let open = OpenConnection::new(services, permit);
    let services = &open.services;
    // Everything before the relay runs in a boxed future that is freed when
    // the session is established: the task itself keeps only what relaying
    // needs, which is most of what an idle connection costs.
    let setup = Box::pin(establish(client, peer, services));
    let session = tokio::select! {
        session = setup => session,
        () = force_close.cancelled() => return,
    };
    let mut session = match session {
        Some(Granted::Relay(session)) => session,
        // Its own small box: the setup future (sized for the handshake and
        // connect paths) is freed for the association's whole life.
        Some(Granted::Udp(association, _slot)) => {
            tokio::select! {
                () = association => {}
                () = force_close.cancelled() => {}
            }
            return;
        }
        None => return,
    };
    // Polled in place: moving the relay out would give it a second slot in
    // the task's state.
    let outcome = tokio::select! {
        outcome = LiveBytes(&mut session) => outcome,
        () = force_close.cancelled() => session.relay.interrupted(),
    };
    let up = outcome.client_to_upstream + session.early_bytes;
    let down = outcome.upstream_to_client;
    session.session.finish(up, down, outcome.end.label());
}

/// Polls a session's relay and adds what each poll moved to the server-wide
/// byte counters, so they grow while the session runs: a long download
/// shows in the stats as it happens, not when it ends. Bytes only move
/// inside the relay's poll, so the differences add up to its totals; the
/// wrapper keeps no state of its own (the task stays as small as it was).
struct LiveBytes<'a>(&'a mut Established);

impl std::future::Future for LiveBytes<'_> {
    type Output = relay::RelayOutcome;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let established = &mut *self.get_mut().0;
        // `interrupted` reads the bytes moved so far; it ends nothing.
        let before = established.relay.interrupted();
        let polled = std::pin::Pin::new(&mut established.relay).poll(cx);
        let after = established.relay.interrupted();
        let up = after
            .client_to_upstream
            .saturating_sub(before.client_to_upstream);
        let down = after
            .upstream_to_client
            .saturating_sub(before.upstream_to_client);
        if up > 0 || down > 0 {
            established.session.relayed(up, down);
        }
        polled
    }
}

/// What a granted request goes on with once its setup is freed.
// Only ever a return value: the relay is moved out into the task at once,
// so boxing it would add an allocation per session and save nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Granted<'s> {
    Relay(Established),
    /// A UDP association, run to its end (see `udp.rs`), with its share of
    /// the session limits.
    Udp(super::udp::UdpSession<'s>, Option<Box<limits::SessionSlot>>),
}

/// A granted session, ready to relay.
pub(super) struct Established {
    pub(super) relay: Relay,
    /// Counts the upstream connection in use until the session ends (none
    /// for BIND, whose connection never comes from the pool).
    pub(super) _lease: Option<Lease>,
    /// Bytes the client sent with its request, already forwarded.
    pub(super) early_bytes: u64,
    /// Counted as started; finishes it (counters, access log) exactly once.
    pub(super) session: Session,
    /// This session's share of the per-client and per-user limits; only
    /// present when a limit is configured.
    pub(super) _slot: Option<Box<limits::SessionSlot>>,
}

/// Handshake under the deadline, connect, reply, forward early data. Failures
/// are answered, counted and logged here; `None` means the session is over.
async fn establish(
    mut client: TcpStream,
    peer: SocketAddr,
    services: &Services,
) -> Option<Granted<'_>> {
    let started = Instant::now();
    // Latency matters more than packet count for a proxy's small messages
    // (TCP_NODELAY); keepalive finds a client that vanished. On Linux the
    // socket inherited both from the listener (`set_inherited_options`).
    #[cfg(not(target_os = "linux"))]
    if let Err(err) = services.connect_policy().options.apply(&client) {
        tracing::debug!(%err, "cannot set the client socket's options");
    }

    // The settings in force when the client connected hold for its whole
    // handshake, whatever a reload does meanwhile.
    let config = services.config();
    let deadline = config.server.handshake_timeout();
    // Behind a trusted balancer, `peer` becomes the client its PROXY header names.
    let opening = super::proxy_header::negotiate(&mut client, peer, services);
    let (peer, negotiated) = match tokio::time::timeout(deadline, opening).await {
        Ok(Ok(Some(opened))) => {
            services.stats.handshake_completed(started.elapsed());
            opened
        }
        // A balancer's health check, counted as such.
        Ok(Ok(None)) => return None,
        Ok(Err(err)) => return handshake_failed(services, &err),
        Err(_) => return handshake_failed(services, &SessionError::HandshakeTimeout(deadline)),
    };

    let access_log = config.logging.access_log;
    let log = access_log.then(|| Box::new(SessionLog::new(peer, &negotiated, started)));
    let slot = match services.limits.admit(peer.ip(), negotiated.user.as_deref()) {
        Ok(slot) => slot,
        Err(hit) => {
            services.note_session_limit(peer, negotiated.user.as_deref(), hit);
            let err = SessionError::SessionLimit(hit);
            negotiated.refuse(&mut client, &err).await;
            if let Some(log) = log {
                log.write(0, 0, err.reason());
            }
            return None;
        }
    };
    match negotiated.command {
        Command::Connect => {}
        Command::Bind => {
            let bound = super::bind::serve(client, peer, negotiated, services, log).await;
            return bound.map(|mut established| {
                established._slot = slot;
                Granted::Relay(established)
            });
        }
        Command::UdpAssociate => {
            let association = super::udp::open(client, peer, negotiated, services, log).await;
            // The slot is held for as long as the association lives.
            return association.map(|association| Granted::Udp(association, slot));
        }
    }
    let rules = services.access();
    let gate = Bound {
        rules: &rules,
        who: Subject {
            client: peer.ip(),
            user: negotiated.user.as_deref(),
            command: negotiated.command,
        },
    };
    let policy = services.connect_policy();
    let connecting = connect::connect(
        &negotiated.target,
        &services.resolver,
        &services.pool,
        &gate,
        &policy,
    );
    let connect_started = Instant::now();
    let upstream = match connecting.await {
        Ok(upstream) => {
            let elapsed = connect_started.elapsed();
            services.stats.upstream_connected(elapsed, upstream.reused);
            upstream
        }
        Err(SessionError::Denied(denial)) => {
            services.note_denial(peer, &gate.who, &negotiated.target, &denial);
            let err = SessionError::Denied(denial);
            negotiated.refuse(&mut client, &err).await;
            return None;
        }
        Err(err) => return connect_failed(services, &mut client, negotiated, err, log).await,
    };
    let reused = upstream.reused;
    // TCP_NODELAY was set by the pool's connector.
    let (upstream, lease) = upstream.into_parts();
    let bound = match upstream.local_addr() {
        Ok(bound) => bound,
        Err(source) => {
            let target = negotiated.target.to_string();
            let err = SessionError::Connect { target, source };
            return connect_failed(services, &mut client, negotiated, err, log).await;
        }
    };
    tracing::debug!(reused, %bound, "connected");
    let mut established = grant_and_relay(
        services,
        client,
        upstream,
        negotiated,
        bound,
        Some(lease),
        log,
    )
    .await?;
    established._slot = slot;
    Some(Granted::Relay(established))
}

/// Sends the success reply naming `bound`, forwards the client's early
/// data, and sets up the relay: the end of every granted CONNECT and BIND.
/// The session is counted from here and finishes with an outcome whatever
/// happens next.
pub(super) async fn grant_and_relay(
    services: &Services,
    mut client: TcpStream,
    mut upstream: TcpStream,
    negotiated: Negotiated,
    bound: SocketAddr,
    lease: Option<Lease>,
    log: Option<Box<SessionLog>>,
) -> Option<Established> {
    let session = Session::start(&services.stats, log);
    let Ok(early_data) = negotiated.grant(&mut client, bound).await else {
        session.finish(0, 0, REPLY_FAILED);
        return None;
    };
    if !early_data.is_empty() && upstream.write_all(&early_data).await.is_err() {
        session.finish(0, 0, UPSTREAM_WRITE_FAILED);
        return None;
    }
    session.relayed(early_data.len() as u64, 0);
    Some(Established {
        relay: relay::relay(client, upstream, &relay_options(services)),
        _lease: lease,
        // The caller adds its share of the session limits.
        _slot: None,
        early_bytes: early_data.len() as u64,
        session,
    })
}

/// The outcome of a granted session whose success reply could not be
/// written (the client went away first).
const REPLY_FAILED: &str = "reply_failed";
/// The outcome of a granted session whose early data the upstream refused.
const UPSTREAM_WRITE_FAILED: &str = "upstream_write_failed";

/// The relay's timeouts, from the server configuration.
fn relay_options(services: &Services) -> RelayOptions {
    let config = services.config();
    let server = &config.server;
    RelayOptions {
        idle_timeout: server.idle_timeout(),
        half_close_timeout: server.half_close_timeout(),
    }
}

pub(super) async fn connect_failed<T>(
    services: &Services,
    client: &mut TcpStream,
    negotiated: Negotiated,
    err: SessionError,
    log: Option<Box<SessionLog>>,
) -> Option<T> {
    services.stats.connect_failed(err.reason());
    tracing::debug!(%err, "upstream connect failed");
    negotiated.refuse(client, &err).await;
    if let Some(log) = log {
        log.write(0, 0, err.reason());
    }
    None
}

fn handshake_failed<T>(services: &Services, err: &SessionError) -> Option<T> {
    services.stats.handshake_failed(err.reason());
    tracing::debug!(%err, reason = err.reason(), "handshake failed");
    None
}

/// What the access log line needs, taken from the request before the reply
/// consumes it. Only built when the access log is on.
pub(super) struct SessionLog {
    peer: SocketAddr,
    user: Option<String>,
    command: Command,
    target: String,
    started: Instant,
}

impl SessionLog {
    fn new(peer: SocketAddr, negotiated: &Negotiated, started: Instant) -> Self {
        Self {
            peer,
            user: negotiated.user.clone(),
            command: negotiated.command,
            target: negotiated.target.to_string(),
            started,
        }
    }

    pub(super) fn write(self, up: u64, down: u64, outcome: &str) {
        tracing::info!(
            target: "ebbsocks::access",
            client = %self.peer,
            user = self.user.as_deref().unwrap_or("-"),
            command = self.command.name(),
            destination = %self.target,
            bytes_up = up,
            bytes_down = down,
            duration_ms = self.started.elapsed().as_millis() as u64,
            outcome,
            "session"
        );
    }
}
