//! One direction of a relay: read from `src` when `dst` can take bytes, write
//! through, keep only an unsent remainder.

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{ready, Context, Poll};

use serde::Serialize;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bytes read per syscall into the worker thread's scratch buffer. 64 KiB
/// matches the loopback MTU-sized segments the kernel hands out and measured
/// fastest; see the relay benchmark.
pub const SCRATCH_SIZE: usize = 64 * 1024;

thread_local! {
    /// Allocated on a thread's first relay read and kept for the thread's
    /// life: one per runtime worker, never one per connection.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer.
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            if scratch.is_empty() {
                scratch.resize(SCRATCH_SIZE, 0);
            }
            f(&mut scratch)
        }
        // Only reachable if a relay were polled from inside another relay's
        // poll on the same thread; stay correct rather than panic.
        Err(_) => f(&mut vec![0; SCRATCH_SIZE]),
    })
}

static BUFFERED_BYTES: AtomicUsize = AtomicUsize::new(0);
static BUFFERS: AtomicUsize = AtomicUsize::new(0);

/// Payload held by all relays in this process: unsent remainders waiting for
/// a slow peer. Each is at most [`SCRATCH_SIZE`] and there is at most one per
/// direction, so this is bounded by `2 * SCRATCH_SIZE` per session.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Buffered {
    pub bytes: usize,
    pub buffers: usize,
}

/// Reads the process-wide [`Buffered`] counters.
pub fn buffered() -> Buffered {
    Buffered {
        bytes: BUFFERED_BYTES.load(Relaxed),
        buffers: BUFFERS.load(Relaxed),
    }
}

/// Bytes read from `src` that `dst` has not accepted yet.
#[derive(Debug)]
struct Backlog {
    data: Box<[u8]>,
    sent: usize,
}

impl Backlog {
    fn new(bytes: &[u8]) -> Box<Self> {
        BUFFERED_BYTES.fetch_add(bytes.len(), Relaxed);
        BUFFERS.fetch_add(1, Relaxed);
        Box::new(Self {
            data: bytes.into(),
            sent: 0,
        })
    }

    fn unsent(&self) -> &[u8] {
        &self.data[self.sent..]
    }
}

impl Drop for Backlog {
    fn drop(&mut self) {
        BUFFERED_BYTES.fetch_sub(self.data.len(), Relaxed);
        BUFFERS.fetch_sub(1, Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// Reading from `src`.
    Open,
    /// `src` hit EOF; `dst` gets `shutdown(Write)` once the backlog is sent.
    Eof,
    /// The half-close was forwarded; nothing more to do.
    Done,
}

/// State of one direction; three words.
#[derive(Debug)]
pub(super) struct Half {
    backlog: Option<Box<Backlog>>,
    bytes: u64,
    flow: Flow,
    activity: bool,
}

impl Half {
    pub(super) fn new() -> Self {
        Self {
            backlog: None,
            bytes: 0,
            flow: Flow::Open,
            activity: false,
        }
    }

    /// Bytes read from `src` so far.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(super) fn is_done(&self) -> bool {
        self.flow == Flow::Done
    }

    /// Whether bytes moved since the last call.
    pub(super) fn take_activity(&mut self) -> bool {
        std::mem::take(&mut self.activity)
    }

    /// Frees the backlog of a session that is ending.
    pub(super) fn discard(&mut self) {
        self.backlog = None;
    }

    /// Moves bytes until `src` or `dst` would block, `src` is finished, or an
    /// error occurs. Returns `Ok` both when waiting (wakers are registered)
    /// and when done; [`Half::is_done`] tells which.
    pub(super) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &TcpStream,
        scratch: &mut [u8],
    ) -> io::Result<()> {
        match self.pump(cx, src, dst, scratch) {
            Poll::Ready(result) => result,
            Poll::Pending => Ok(()),
        }
    }

    fn pump(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &TcpStream,
        scratch: &mut [u8],
    ) -> Poll<io::Result<()>> {
        loop {
            if let Some(backlog) = &mut self.backlog {
                ready!(dst.poll_write_ready(cx))?;
                match write_some(dst, backlog.unsent()) {
                    Ok(n) => {
                        self.activity = true;
                        backlog.sent += n;
                        if backlog.unsent().is_empty() {
                            self.backlog = None;
                        }
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) => return Poll::Ready(Err(err)),
                }
                continue;
            }
            match self.flow {
                Flow::Done => return Poll::Ready(Ok(())),
                Flow::Eof => {
                    shutdown_write(dst)?;
                    self.flow = Flow::Done;
                    return Poll::Ready(Ok(()));
                }
                Flow::Open => {}
            }
            // Leave the bytes in the kernel until the peer can take them.
            ready!(dst.poll_write_ready(cx))?;
            ready!(src.poll_read_ready(cx))?;
            let n = match read_some(src, scratch) {
                Ok(0) => {
                    self.flow = Flow::Eof;
                    continue;
                }
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Poll::Ready(Err(err)),
            };
            self.bytes += n as u64;
            self.activity = true;
            let written = match write_some(dst, &scratch[..n]) {
                Ok(written) => written,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => 0,
                Err(err) => return Poll::Ready(Err(err)),
            };
            if written < n {
                self.backlog = Some(Backlog::new(&scratch[written..n]));
            }
        }
    }
}

/// One `read` through tokio's readiness tracking. A short read means the
/// socket is drained, so readiness is cleared as tokio's own `poll_read` does,
/// saving the `read` that would only return `EAGAIN`.
fn read_some(src: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut short = 0;
    let result = src.try_io(Interest::READABLE, || {
        let n = (&*socket2::SockRef::from(src)).read(buf)?;
        if n > 0 && n < buf.len() {
            short = n;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match result {
        Err(err) if err.kind() == io::ErrorKind::WouldBlock && short > 0 => Ok(short),
        other => retry_interrupted(other, || read_some(src, buf)),
    }
}

/// One `write`; a short write means the send buffer is full, so readiness is
/// cleared for the same reason as in [`read_some`].
fn write_some(dst: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    let mut short = 0;
    let result = dst.try_io(Interest::WRITABLE, || {
        // MSG_NOSIGNAL: a peer that went away is an error, never a SIGPIPE.
        let n = socket2::SockRef::from(dst).send_with_flags(buf, libc::MSG_NOSIGNAL)?;
        if n > 0 && n < buf.len() {
            short = n;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        Ok(n)
    });
    match result {
        Err(err) if err.kind() == io::ErrorKind::WouldBlock && short > 0 => Ok(short),
        other => retry_interrupted(other, || write_some(dst, buf)),
    }
}

fn retry_interrupted(
    result: io::Result<usize>,
    again: impl FnOnce() -> io::Result<usize>,
) -> io::Result<usize> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::Interrupted => again(),
        other => other,
    }
}

/// Forwards a half-close. A peer that is already gone is not an error here:
/// the other direction will see it when it next touches the socket.
fn shutdown_write(dst: &TcpStream) -> io::Result<()> {
    match socket2::SockRef::from(dst).shutdown(Shutdown::Write) {
        Err(err) if err.kind() != io::ErrorKind::NotConnected => Err(err),
        _ => Ok(()),
    }
}
