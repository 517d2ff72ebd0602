//! Bidirectional relay between a client and its upstream, in one task and
//! without idle buffers.
//!
//! A relayed session is a single future ([`Relay`]) that drives both
//! directions. Nothing in it holds payload, idle or stalled: when a socket
//! becomes readable and the other side writable, the bytes are peeked into a
//! scratch buffer owned by the worker thread, written to the other side, and
//! only what was written is taken from the first socket. A peer that stops
//! reading therefore leaves the rest in the sender's socket, and TCP flow
//! control pushes back on the sender (this is the backpressure). On Linux the
//! bytes move by `splice(2)` through a pipe leased for one transfer; a pipe
//! whose bytes the peer would not take stays with its direction until it
//! drains, and past [`MAX_PIPES`] pipes directions copy instead. So the heap
//! a stalled session costs does not depend on how much it was sent.
//!
//! Half-close is honoured: EOF on one side becomes `shutdown(Write)` on the
//! other, and the opposite direction keeps flowing until it ends too (the
//! second EOF ends the session, and closing both sockets forwards it). Once
//! one side has finished, the optional half-close timeout ends a session
//! whose other direction moves nothing for that long, so a peer that never
//! finishes cannot hold its slot forever. An error on either side ends the
//! session and aborts both sockets with a reset, so a peer that reset its
//! connection is seen as a reset on the other side too.
//!
//! Sizes that matter for the idle footprint are asserted in the tests: the
//! future is a few machine words plus the two sockets; the idle timer lives
//! behind a box that only exists when an idle timeout is configured, the
//! half-close timer behind one that only exists once a side has finished.

mod half;
#[cfg(target_os = "linux")]
mod splice;
// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use half::Half;
pub use half::{buffered, Buffered, SCRATCH_SIZE, SMALL_READ};
#[cfg(target_os = "linux")]
pub use splice::MAX_PIPES;

/// Capacity asked for each splice pipe, and so the most a direction holds in
/// the kernel for a slow peer (the default pipe is 64 KiB). Four times the
/// default measured faster for one stream (median proxy/direct 0.82x against
/// 0.65x upload, 0.61x against 0.50x download, side by side) and no different
/// with eight; the pages are kernel memory and only exist while bytes sit in
/// a leased pipe.
pub const PIPE_CAPACITY: usize = 256 * 1024;

/// Splice pipes alive at once in the process, two descriptors each (none
/// where splice is not used); the open-files budget counts them.
#[cfg(target_os = "linux")]
pub const MAX_SPLICE_PIPES: usize = splice::MAX_PIPES;
#[cfg(not(target_os = "linux"))]
pub const MAX_SPLICE_PIPES: usize = 0;

/// Chooses between `splice(2)` through leased pipes (Linux) and copying
/// through the worker's scratch buffer, for relays started from now on.
/// Splice is the default where available.
pub fn set_splice(enabled: bool) {
    #[cfg(target_os = "linux")]
    splice::set_enabled(enabled);
    #[cfg(not(target_os = "linux"))]
    let _ = enabled;
}

/// How a relay behaves; built by the server from its configuration.
#[derive(Debug, Clone, Default)]
pub struct RelayOptions {
    /// End the session after this long without a byte in either direction.
    pub idle_timeout: Option<Duration>,
    /// Once one side has finished sending (its EOF was seen), end the
    /// session after this long without a byte in either direction.
    pub half_close_timeout: Option<Duration>,
}

/// What a finished relay moved and why it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayOutcome {
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
    pub end: RelayEnd,
}

/// Why a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both directions reached EOF and were forwarded as half-closes.
    Closed,
    /// No byte moved in either direction for the configured idle timeout.
    IdleTimeout,
    /// One side had finished and nothing moved for the half-close timeout.
    HalfCloseTimeout,
    /// A socket failed (reset, broken pipe, ...); both sides were aborted.
    Error(io::ErrorKind),
    /// The caller stopped the relay (server shutdown); see
    /// [`Relay::interrupted`]. Polling the relay never yields this.
    Shutdown,
}

impl RelayEnd {
    /// A short stable label for logs and counters.
    pub fn label(&self) -> &'static str {
        match self {
            RelayEnd::Closed => "closed",
            RelayEnd::IdleTimeout => "idle_timeout",
            RelayEnd::HalfCloseTimeout => "half_close_timeout",
            RelayEnd::Shutdown => "shutdown",
            RelayEnd::Error(kind) => match kind {
                io::ErrorKind::ConnectionReset => "reset",
                io::ErrorKind::BrokenPipe => "broken_pipe",
                io::ErrorKind::ConnectionAborted => "aborted",
                io::ErrorKind::TimedOut => "timed_out",
                io::ErrorKind::NotConnected => "not_connected",
                _ => "io_error",
            },
        }
    }
}

/// Relays between `client` and `upstream` until both directions have ended,
/// one of them fails, or the idle or half-close timeout passes. Dropping the
/// returned future closes both sockets; after [`RelayEnd::Closed`] that
/// close is what forwards the second half-close, so drop it promptly.
pub fn relay(client: TcpStream, upstream: TcpStream, options: &RelayOptions) -> Relay {
    relay_with(client, upstream, options, splice_default())
}

fn relay_with(
    client: TcpStream,
    upstream: TcpStream,
    options: &RelayOptions,
    splice: bool,
) -> Relay {
    let half_close_ms = options.half_close_timeout.map_or(0, millis);
    Relay {
        client,
        upstream,
        up: Half::new(splice, half_close_ms),
        down: Half::new(splice, half_close_ms),
        idle: options.idle_timeout.map(IdleTimer::new),
        half_closed: None,
    }
}

/// A timeout in whole milliseconds, at least 1 (0 means none), saturating:
/// four bytes that fit in a [`Half`]'s padding, instead of a sixteen-byte
/// `Option<Duration>` in the relay.
fn millis(timeout: Duration) -> u32 {
    u32::try_from(timeout.as_millis())
        .unwrap_or(u32::MAX)
        .max(1)
}

#[cfg(target_os = "linux")]
fn splice_default() -> bool {
    splice::enabled()
}

#[cfg(not(target_os = "linux"))]
fn splice_default() -> bool {
    false
}

/// The future returned by [`relay`]; see the module documentation.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Relay {
    client: TcpStream,
    upstream: TcpStream,
    /// Client to upstream.
    up: Half,
    /// Upstream to client.
    down: Half,
    /// Only allocated when an idle timeout is configured.
    idle: Option<Box<IdleTimer>>,
    /// Started when the first side finishes, if a half-close timeout is set.
    half_closed: Option<Box<IdleTimer>>,
}

impl Relay {
    /// What has moved so far, for a caller that stops the relay before it
    /// ends (server shutdown): the bytes are real, the end is `Shutdown`.
    pub fn interrupted(&self) -> RelayOutcome {
        self.outcome(RelayEnd::Shutdown)
    }

    fn outcome(&self, end: RelayEnd) -> RelayOutcome {
        RelayOutcome {
            client_to_upstream: self.up.bytes(),
            upstream_to_client: self.down.bytes(),
            end,
        }
    }

    fn fail(&mut self, err: &io::Error) -> RelayOutcome {
        // Whichever side failed, the other must not mistake the end of the
        // session for a clean close: a zero linger turns our close into RST.
        for socket in [&self.client, &self.upstream] {
            let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
        }
        self.up.discard();
        self.down.discard();
        self.outcome(RelayEnd::Error(err.kind()))
    }
}

impl Future for Relay {
    type Output = RelayOutcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<RelayOutcome> {
        let this = self.get_mut();
        let step = half::with_scratch(|scratch| {
            let last = this.down.is_done();
            this.up
                .poll(cx, &this.client, &this.upstream, scratch, last)?;
            let last = this.up.is_done();
            this.down
                .poll(cx, &this.upstream, &this.client, scratch, last)
        });
        if let Err(err) = step {
            return Poll::Ready(this.fail(&err));
        }
        if this.up.is_done() && this.down.is_done() {
            return Poll::Ready(this.outcome(RelayEnd::Closed));
        }
        if this.half_closed.is_none() {
            if let Some(timeout) = this
                .up
                .half_close_timeout()
                .or(this.down.half_close_timeout())
            {
                this.half_closed = Some(IdleTimer::new(timeout));
            }
        }
        if this.idle.is_some() || this.half_closed.is_some() {
            // Both calls run: each clears its own flag.
            let active = this.up.take_activity() | this.down.take_activity();
            if let Some(end) = this.timed_out(cx, active) {
                this.up.discard();
                this.down.discard();
                return Poll::Ready(this.outcome(end));
            }
        }
        Poll::Pending
    }
}

impl Relay {
    /// Touches the timers after activity and says which one expired, if any.
    /// Both are polled, so each has its waker registered.
    fn timed_out(&mut self, cx: &mut Context<'_>, active: bool) -> Option<RelayEnd> {
        let mut end = None;
        if let Some(idle) = &mut self.idle {
            if active {
                idle.touch();
            }
            if idle.poll_expired(cx).is_ready() {
                end = Some(RelayEnd::IdleTimeout);
            }
        }
        if let Some(half_closed) = &mut self.half_closed {
            if active {
                half_closed.touch();
            }
            if half_closed.poll_expired(cx).is_ready() {
                end = end.or(Some(RelayEnd::HalfCloseTimeout));
            }
        }
        end
    }
}

/// An inactivity deadline (idle, or after a half-close). Activity only records the time; the timer is re-armed
/// lazily when it fires early, so a busy session never touches the timer
/// wheel.
#[derive(Debug)]
struct IdleTimer {
    sleep: Pin<Box<Sleep>>,
    timeout: Duration,
    last_activity: Instant,
}

impl IdleTimer {
    fn new(timeout: Duration) -> Box<Self> {
        let now = Instant::now();
        Box::new(Self {
            sleep: Box::pin(tokio::time::sleep_until(now + timeout)),
            timeout,
            last_activity: now,
        })
    }

    fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last_activity + self.timeout;
            if due <= Instant::now() {
                return Poll::Ready(());
            }
            self.sleep.as_mut().reset(due);
        }
    }
}
