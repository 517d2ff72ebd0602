//! One client's way through the server: handshake under a deadline, connect
//! (pool or new), reply, relay, access log. Counters are kept at each step.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::handshake::{self, Negotiated};
use super::Services;
use crate::error::SessionError;
use crate::relay::{self, RelayEnd, RelayOptions, RelayOutcome};
use crate::upstream::connect;

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
    mut client: TcpStream,
    peer: SocketAddr,
    services: Arc<Services>,
    force_close: CancellationToken,
    permit: OwnedSemaphorePermit,
) {
    let open = OpenConnection::new(services, permit);
    let services = &open.services;
    let started = Instant::now();
    // Latency matters more than packet count for a proxy's small messages.
    let _ = client.set_nodelay(true);

    let deadline = services.config.server.handshake_timeout();
    // Boxed so the handshake's state is freed before the long relay phase
    // instead of sizing the whole connection task.
    let negotiated = tokio::select! {
        result = tokio::time::timeout(
            deadline,
            Box::pin(handshake::negotiate(&mut client, &services.auth)),
        ) => match result {
            Ok(Ok(negotiated)) => negotiated,
            Ok(Err(err)) => return handshake_failed(services, &err),
            Err(_) => return handshake_failed(services, &SessionError::HandshakeTimeout(deadline)),
        },
        () = force_close.cancelled() => return,
    };

    let upstream = tokio::select! {
        result = Box::pin(connect::connect(&negotiated.target, &services.resolver, &services.pool)) => result,
        () = force_close.cancelled() => return,
    };
    let access_log = services.config.logging.access_log;
    let log = access_log.then(|| SessionLog::new(peer, &negotiated, started));
    let upstream = match upstream {
        Ok(upstream) => upstream,
        Err(err) => return connect_failed(services, &mut client, negotiated, err, log).await,
    };
    let reused = upstream.reused;
    let (mut upstream, _lease) = upstream.into_parts();
    let _ = upstream.set_nodelay(true);
    let bound = match upstream.local_addr() {
        Ok(bound) => bound,
        Err(source) => {
            let target = negotiated.target.to_string();
            let err = SessionError::Connect { target, source };
            return connect_failed(services, &mut client, negotiated, err, log).await;
        }
    };
    let Ok(early_data) = negotiated.grant(&mut client, bound).await else {
        return;
    };
    tracing::debug!(reused, %bound, "connected");

    services.stats.session_started();
    let early = early_data.len() as u64;
    let outcome = if !early_data.is_empty() && upstream.write_all(&early_data).await.is_err() {
        RelayOutcome {
            client_to_upstream: 0,
            upstream_to_client: 0,
            end: RelayEnd::Error(std::io::ErrorKind::BrokenPipe),
        }
    } else {
        drop(early_data);
        let options = RelayOptions {
            idle_timeout: services.config.server.idle_timeout(),
        };
        let mut relay = std::pin::pin!(relay::relay(client, upstream, &options));
        tokio::select! {
            outcome = &mut relay => outcome,
            () = force_close.cancelled() => relay.interrupted(),
        }
    };
    let up = outcome.client_to_upstream + early;
    let down = outcome.upstream_to_client;
    services.stats.session_finished(up, down);
    if let Some(log) = log {
        log.write(up, down, outcome.end.label());
    }
}

async fn connect_failed(
    services: &Services,
    client: &mut TcpStream,
    negotiated: Negotiated,
    err: SessionError,
    log: Option<SessionLog>,
) {
    services.stats.connect_failed(err.reason());
    tracing::debug!(%err, "upstream connect failed");
    negotiated.refuse(client, &err).await;
    if let Some(log) = log {
        log.write(0, 0, err.reason());
    }
}

fn handshake_failed(services: &Services, err: &SessionError) {
    services.stats.handshake_failed(err.reason());
    tracing::debug!(%err, reason = err.reason(), "handshake failed");
}

/// What the access log line needs, taken from the request before the reply
/// consumes it. Only built when the access log is on.
struct SessionLog {
    peer: SocketAddr,
    user: Option<String>,
    target: String,
    started: Instant,
}

impl SessionLog {
    fn new(peer: SocketAddr, negotiated: &Negotiated, started: Instant) -> Self {
        Self {
            peer,
            user: negotiated.user.clone(),
            target: negotiated.target.to_string(),
            started,
        }
    }

    fn write(self, up: u64, down: u64, outcome: &str) {
        tracing::info!(
            target: "ebbsocks::access",
            client = %self.peer,
            user = self.user.as_deref().unwrap_or("-"),
            destination = %self.target,
            bytes_up = up,
            bytes_down = down,
            duration_ms = self.started.elapsed().as_millis() as u64,
            outcome,
            "session"
        );
    }
}
