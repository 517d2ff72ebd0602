//! The association's event loop: one task waits on the control connection,
//! the idle timer and every socket at once, and handles whatever is ready
//! in the same turn, so a flood on one socket cannot starve the others.

use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskCx, Poll};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::book::NameVerdict;
use super::datagrams::{Batch, Pending};
use super::Association;
use crate::access::Bound;
use crate::error::SessionError;
use crate::proto::TargetAddr;
use crate::upstream::connect::allowed_addresses;

/// A name lookup for a datagram gives up after this; the datagram is
/// dropped as `unresolved` (and the name remembered as such for a while).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an association ended.
#[derive(Debug)]
pub enum End {
    /// The TCP control connection closed (EOF or error).
    ControlClosed,
    /// No datagram relayed either way for `udp_idle_timeout`.
    IdleTimeout,
    /// A socket of the association failed.
    SocketFailed(io::Error),
}

impl End {
    /// The `outcome` of the association's access-log line.
    pub fn label(&self) -> &'static str {
        match self {
            End::ControlClosed => "control_closed",
            End::IdleTimeout => "idle_timeout",
            End::SocketFailed(_) => "socket_failed",
        }
    }
}

/// What is ready in one turn.
#[derive(Debug, Default)]
struct Ready {
    control: bool,
    idle: bool,
    client: bool,
    remote_v4: bool,
    remote_v6: bool,
}

/// `Ready` when the socket has something, `Err` when it failed, or `Pending`.
fn readiness(poll: Poll<io::Result<()>>) -> Result<bool, End> {
    match poll {
        Poll::Ready(Ok(())) => Ok(true),
        Poll::Ready(Err(err)) => Err(End::SocketFailed(err)),
        Poll::Pending => Ok(false),
    }
}

/// Discards what the client sends on the control connection (the protocol
/// gives it no meaning) and says whether it has closed.
fn control_closed(control: &TcpStream) -> bool {
    let mut sink = [0u8; 256];
    for _ in 0..16 {
        match control.try_read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
    false
}

impl Association<'_> {
    /// Relays until the control connection closes, the association has
    /// been idle too long, or a socket fails. Dropping this future at any
    /// await ends the association just as cleanly: nothing is spawned.
    pub async fn run(&mut self, control: &TcpStream) -> End {
        let idle = self.cx.idle_timeout;
        let timer = tokio::time::sleep(idle.unwrap_or(Duration::ZERO));
        tokio::pin!(timer);
        loop {
            let ready = poll_fn(|cx| {
                let timer = idle.is_some().then_some(timer.as_mut());
                self.poll_ready(control, timer, cx)
            })
            .await;
            let ready = match ready {
                Ok(ready) => ready,
                Err(end) => return end,
            };
            if ready.control && control_closed(control) {
                return End::ControlClosed;
            }
            if let (true, Some(idle)) = (ready.idle, idle) {
                let deadline = self.last_activity + idle;
                if Instant::now() >= deadline {
                    return End::IdleTimeout;
                }
                // Moved only when it fires, not on every datagram.
                timer.as_mut().reset(deadline);
            }
            let mut more = false;
            if ready.client {
                match self.relay_client_batch() {
                    Batch::Drained => {}
                    Batch::Budget => more = true,
                    Batch::Resolve(pending) => {
                        let mut next = Some(pending);
                        while let Some(pending) = next {
                            // Boxed: a lookup's state (and its timer) exists
                            // only while it runs, not in every idle association.
                            next = Box::pin(self.resolve(pending)).await;
                        }
                        more = true;
                    }
                }
            }
            for (is_ready, v6) in [(ready.remote_v4, false), (ready.remote_v6, true)] {
                if is_ready && matches!(self.relay_remote_batch(v6), Batch::Budget) {
                    more = true;
                }
            }
            if more {
                tokio::task::yield_now().await;
            }
        }
    }

    fn poll_ready(
        &self,
        control: &TcpStream,
        timer: Option<Pin<&mut Sleep>>,
        cx: &mut TaskCx<'_>,
    ) -> Poll<Result<Ready, End>> {
        let mut ready = Ready {
            // A failed control connection is a closed one.
            control: !matches!(control.poll_read_ready(cx), Poll::Pending),
            idle: timer.is_some_and(|timer| timer.poll(cx).is_ready()),
            ..Ready::default()
        };
        let check = |ready: &mut bool, poll| readiness(poll).map(|r| *ready = r);
        let polled = check(&mut ready.client, self.relay.poll_recv_ready(cx))
            .and_then(|()| match &self.remote.v4 {
                Some(s) => check(&mut ready.remote_v4, s.poll_recv_ready(cx)),
                None => Ok(()),
            })
            .and_then(|()| match &self.remote.v6 {
                Some(s) => check(&mut ready.remote_v6, s.poll_recv_ready(cx)),
                None => Ok(()),
            });
        if let Err(end) = polled {
            return Poll::Ready(Err(end));
        }
        if ready.control || ready.idle || ready.client || ready.remote_v4 || ready.remote_v6 {
            Poll::Ready(Ok(ready))
        } else {
            Poll::Pending
        }
    }

    /// Resolves a datagram's destination name once (access decision on the
    /// name, then on every address), remembers the verdict, and acts on it
    /// for the waiting payload; then handles the datagram received with it,
    /// which may need a lookup of its own.
    async fn resolve(&mut self, pending: Box<Pending>) -> Option<Box<Pending>> {
        let Pending {
            name,
            port,
            payload,
            then,
        } = *pending;
        let target = TargetAddr::Domain(name, port);
        let gate = Bound {
            rules: self.cx.rules,
            who: self.cx.who,
        };
        let lookup = allowed_addresses(&target, self.cx.resolver, &gate);
        let result = tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await;
        let TargetAddr::Domain(name, port) = target else {
            return None;
        };
        let verdict = match result {
            Ok(Ok(addrs)) => match addrs.first() {
                Some(&addr) => self.canonical_verdict(&name, addr),
                None => NameVerdict::Unresolved,
            },
            Ok(Err(SessionError::Denied(denial))) => NameVerdict::Denied(denial),
            Ok(Err(err)) => {
                tracing::debug!(%err, "UDP destination did not resolve");
                NameVerdict::Unresolved
            }
            Err(_) => NameVerdict::Unresolved,
        };
        self.book
            .names
            .insert(&name, port, verdict.clone(), Instant::now());
        self.apply(&name, port, verdict, &payload);
        let (datagram, source) = then?;
        self.client_datagram(&datagram, source)
    }

    /// The address to send to, as the socket will see it: an IPv4-mapped
    /// answer goes out as IPv4, so that form is what the rules must allow.
    fn canonical_verdict(&self, name: &str, addr: SocketAddr) -> NameVerdict {
        let canonical = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        if canonical == addr {
            return NameVerdict::Send(addr);
        }
        match self
            .cx
            .rules
            .check_addr(&self.cx.who, Some(name), canonical)
        {
            Ok(()) => NameVerdict::Send(canonical),
            Err(denial) => NameVerdict::Denied(denial),
        }
    }
}
