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

#[cfg(target_os = "linux")]
use super::splice::{self, Pipe};

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
static PIPED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Payload held by all relays in this process for slow peers. Each direction
/// holds at most one remainder of one read (at most [`SCRATCH_SIZE`] on the
/// heap, or one pipe's worth in the kernel), so this is bounded per session.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Buffered {
    /// Heap bytes in remainders (counted in RSS).
    pub bytes: usize,
    /// Heap remainders.
    pub buffers: usize,
    /// Bytes waiting in leased pipes (kernel memory, not RSS).
    pub piped_bytes: usize,
    /// Pipes alive: leased or pooled per worker thread.
    pub pipes: usize,
}

/// Reads the process-wide [`Buffered`] counters.
pub fn buffered() -> Buffered {
    Buffered {
        bytes: BUFFERED_BYTES.load(Relaxed),
        buffers: BUFFERS.load(Relaxed),
        piped_bytes: PIPED_BYTES.load(Relaxed),
        pipes: pipes(),
    }
}

#[cfg(target_os = "linux")]
fn pipes() -> usize {
    splice::pipes()
}

#[cfg(not(target_os = "linux"))]
fn pipes() -> usize {
    0
}

/// Bytes read from `src` that `dst` has not accepted yet.
#[derive(Debug)]
enum Backlog {
    Heap {
        data: Box<[u8]>,
        sent: usize,
    },
    #[cfg(target_os = "linux")]
    Pipe {
        /// `None` once handed back to the pool.
        pipe: Option<Pipe>,
        len: usize,
    },
}

impl Backlog {
    fn heap(bytes: &[u8]) -> Box<Self> {
        BUFFERED_BYTES.fetch_add(bytes.len(), Relaxed);
        BUFFERS.fetch_add(1, Relaxed);
        Box::new(Backlog::Heap {
            data: bytes.into(),
            sent: 0,
        })
    }

    #[cfg(target_os = "linux")]
    fn pipe(pipe: Pipe, len: usize) -> Box<Self> {
        PIPED_BYTES.fetch_add(len, Relaxed);
        Box::new(Backlog::Pipe {
            pipe: Some(pipe),
            len,
        })
    }

    /// Writes what `dst` takes. Returns `Ok(true)` once nothing is left; an
    /// emptied pipe is back in the pool by then.
    fn flush(&mut self, dst: &TcpStream) -> io::Result<bool> {
        match self {
            Backlog::Heap { data, sent } => {
                *sent += would_block_as_zero(write_some(dst, &data[*sent..]))?;
                Ok(*sent == data.len())
            }
            #[cfg(target_os = "linux")]
            Backlog::Pipe { pipe, len } => {
                let Some(leased) = pipe else {
                    return Ok(true);
                };
                let n = would_block_as_zero(leased.drain(dst, *len))?;
                PIPED_BYTES.fetch_sub(n, Relaxed);
                *len -= n;
                if *len == 0 {
                    if let Some(empty) = pipe.take() {
                        empty.release();
                    }
                }
                Ok(*len == 0)
            }
        }
    }
}

impl Drop for Backlog {
    fn drop(&mut self) {
        match self {
            Backlog::Heap { data, .. } => {
                BUFFERED_BYTES.fetch_sub(data.len(), Relaxed);
                BUFFERS.fetch_sub(1, Relaxed);
            }
            // A pipe still holding bytes is closed with them, never pooled.
            #[cfg(target_os = "linux")]
            Backlog::Pipe { len, .. } => {
                PIPED_BYTES.fetch_sub(*len, Relaxed);
            }
        }
    }
}

/// What one read-and-write step did.
enum Step {
    Moved,
    Eof,
    /// `src` had nothing after all; its readiness is cleared.
    Again,
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
    /// Move bytes with `splice(2)` instead of the scratch buffer.
    splice: bool,
}

impl Half {
    pub(super) fn new(splice: bool) -> Self {
        Self {
            backlog: None,
            bytes: 0,
            flow: Flow::Open,
            activity: false,
            splice,
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
                self.activity = true;
                if backlog.flush(dst)? {
                    self.backlog = None;
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
            match self.step(src, dst, scratch)? {
                Step::Moved => self.activity = true,
                Step::Eof => self.flow = Flow::Eof,
                Step::Again => {}
            }
        }
    }

    fn step(&mut self, src: &TcpStream, dst: &TcpStream, scratch: &mut [u8]) -> io::Result<Step> {
        #[cfg(target_os = "linux")]
        if self.splice {
            if let Some(pipe) = Pipe::lease() {
                return self.splice_step(src, dst, pipe);
            }
        }
        self.copy_step(src, dst, scratch)
    }

    /// Through the scratch buffer; a remainder is copied to the heap.
    fn copy_step(
        &mut self,
        src: &TcpStream,
        dst: &TcpStream,
        scratch: &mut [u8],
    ) -> io::Result<Step> {
        let n = match read_some(src, scratch) {
            Ok(0) => return Ok(Step::Eof),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Again),
            Err(err) => return Err(err),
        };
        self.bytes += n as u64;
        let written = would_block_as_zero(write_some(dst, &scratch[..n]))?;
        if written < n {
            self.backlog = Some(Backlog::heap(&scratch[written..n]));
        }
        Ok(Step::Moved)
    }

    /// Through a leased pipe; a remainder stays in the pipe, which stays
    /// leased until it drains.
    #[cfg(target_os = "linux")]
    fn splice_step(&mut self, src: &TcpStream, dst: &TcpStream, pipe: Pipe) -> io::Result<Step> {
        let n = match pipe.fill(src, splice::CHUNK) {
            Ok(0) => {
                pipe.release();
                return Ok(Step::Eof);
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                pipe.release();
                return Ok(Step::Again);
            }
            Err(err) => {
                pipe.release();
                return Err(err);
            }
        };
        self.bytes += n as u64;
        // On error the pipe still holds bytes: it is dropped, not pooled.
        let written = would_block_as_zero(pipe.drain(dst, n))?;
        if written < n {
            self.backlog = Some(Backlog::pipe(pipe, n - written));
        } else {
            pipe.release();
        }
        Ok(Step::Moved)
    }
}

fn would_block_as_zero(result: io::Result<usize>) -> io::Result<usize> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(0),
        other => other,
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
