//! One direction of a relay: read from `src` when `dst` can take bytes and
//! write through.
//!
//! A direction starts small: each read is a plain `recv` of at most
//! [`SMALL_READ`] bytes, written straight on, so a request/response session
//! moves its bytes with two system calls per read and never touches a pipe.
//! The first read that fills those bytes (a bulk flow), or the first write
//! the peer does not take whole, turns the direction bulk for good: from then
//! on it splices through a leased pipe, or copies taking from `src` only what
//! `dst` accepted. A small direction whose peer refused part of a write keeps
//! that remainder (less than [`SMALL_READ`] bytes) until it is sent; a bulk
//! one keeps an unsent remainder only in its pipe.

use std::cell::RefCell;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use serde::Serialize;
use tokio::io::Interest;
use tokio::net::TcpStream;

#[cfg(target_os = "linux")]
use super::splice::{self, Pipe};

/// Bytes read per syscall into the worker thread's scratch buffer. 64 KiB
/// matches the loopback MTU-sized segments the kernel hands out and measured
/// fastest; see the relay benchmark.
pub const SCRATCH_SIZE: usize = 64 * 1024;

/// The most a direction reads at once before it has shown itself bulk. A
/// read that fills it turns the direction bulk (splice, or copy without
/// owning bytes); smaller reads are request/response traffic, for which a
/// plain `recv` and `send` are the fewest system calls. Also the bound on
/// what a small direction holds for a peer that refused part of a write.
pub const SMALL_READ: usize = 4 * 1024;

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

static PIPED_BYTES: AtomicUsize = AtomicUsize::new(0);
static STALLED_PIPES: AtomicUsize = AtomicUsize::new(0);
static HELD_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Payload held by all relays in this process for slow peers. The copy path
/// holds none: it takes from `src` only what `dst` accepted, so unsent bytes
/// stay in the sender's socket. Only a spliced direction whose peer stopped
/// reading keeps bytes, in its leased pipe (kernel memory, at most
/// [`super::PIPE_CAPACITY`] each, and a fixed number of pipes in all).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Buffered {
    /// Bytes waiting in leased pipes (kernel memory, not RSS).
    pub piped_bytes: usize,
    /// Pipes kept by a direction whose peer would not take their bytes.
    pub stalled_pipes: usize,
    /// Pipes alive: leased or pooled per worker thread.
    pub pipes: usize,
    /// Bytes on the heap that small directions read and their peer has not
    /// taken yet (less than [`SMALL_READ`] per direction; the direction is
    /// bulk from then on).
    pub held_bytes: usize,
}

/// Reads the process-wide [`Buffered`] counters.
pub fn buffered() -> Buffered {
    Buffered {
        piped_bytes: PIPED_BYTES.load(Relaxed),
        stalled_pipes: STALLED_PIPES.load(Relaxed),
        pipes: pipes(),
        held_bytes: HELD_BYTES.load(Relaxed),
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

/// Bytes taken from `src` that `dst` has not accepted yet. Boxed in
/// [`Half`], so a direction without one costs a null pointer.
#[derive(Debug)]
enum Backlog {
    /// Spliced into a pipe, which stays leased until it drains.
    #[cfg(target_os = "linux")]
    Piped(Piped),
    /// Read by a small direction; on the heap, less than [`SMALL_READ`].
    Held(Held),
}

impl Backlog {
    /// Writes what `dst` takes. Returns `Ok(true)` once nothing is left.
    fn flush(&mut self, dst: &TcpStream) -> io::Result<bool> {
        match self {
            #[cfg(target_os = "linux")]
            Backlog::Piped(piped) => piped.flush(dst),
            Backlog::Held(held) => held.flush(dst),
        }
    }
}

/// The unsent part of a small read.
#[derive(Debug)]
struct Held {
    bytes: Box<[u8]>,
    sent: usize,
}

impl Held {
    fn backlog(unsent: &[u8]) -> Box<Backlog> {
        HELD_BYTES.fetch_add(unsent.len(), Relaxed);
        Box::new(Backlog::Held(Held {
            bytes: unsent.into(),
            sent: 0,
        }))
    }

    fn flush(&mut self, dst: &TcpStream) -> io::Result<bool> {
        let n = would_block_as_zero(write_some(dst, &self.bytes[self.sent..]))?;
        HELD_BYTES.fetch_sub(n, Relaxed);
        self.sent += n;
        Ok(self.sent == self.bytes.len())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD_BYTES.fetch_sub(self.bytes.len() - self.sent, Relaxed);
    }
}

/// Bytes spliced from `src` that `dst` has not accepted yet; they stay in
/// the pipe, which stays leased until it drains.
#[cfg(target_os = "linux")]
#[derive(Debug)]
struct Piped {
    /// `None` once handed back to the pool.
    pipe: Option<Pipe>,
    len: usize,
}

#[cfg(target_os = "linux")]
impl Piped {
    fn backlog(pipe: Pipe, len: usize) -> Box<Backlog> {
        PIPED_BYTES.fetch_add(len, Relaxed);
        STALLED_PIPES.fetch_add(1, Relaxed);
        Box::new(Backlog::Piped(Piped {
            pipe: Some(pipe),
            len,
        }))
    }

    /// Writes what `dst` takes. Returns `Ok(true)` once nothing is left; the
    /// emptied pipe is back in the pool by then.
    fn flush(&mut self, dst: &TcpStream) -> io::Result<bool> {
        let Some(leased) = &self.pipe else {
            return Ok(true);
        };
        let n = would_block_as_zero(leased.drain(dst, self.len))?;
        PIPED_BYTES.fetch_sub(n, Relaxed);
        self.len -= n;
        if self.len == 0 {
            if let Some(empty) = self.pipe.take() {
                STALLED_PIPES.fetch_sub(1, Relaxed);
                empty.release();
            }
        }
        Ok(self.len == 0)
    }
}

#[cfg(target_os = "linux")]
impl Drop for Piped {
    fn drop(&mut self) {
        PIPED_BYTES.fetch_sub(self.len, Relaxed);
        // A pipe still holding bytes is closed with them, never pooled.
        if self.pipe.is_some() {
            STALLED_PIPES.fetch_sub(1, Relaxed);
        }
    }
}

/// What one read-and-write step did.
enum Step {
    /// This many bytes were taken from `src` (sent on, or held for `dst`).
    Moved(usize),
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
    /// Bulk: move bytes with `splice(2)` (when `splice`) or the owning-nothing
    /// copy; until then, plain reads of at most [`SMALL_READ`] bytes.
    bulk: bool,
    /// Move bulk bytes with `splice(2)` instead of the scratch buffer.
    splice: bool,
    /// The half-close timeout in milliseconds (0 = none). Kept here, where
    /// it fills padding, rather than in the relay, where it would add a word.
    half_close_ms: u32,
}

impl Half {
    pub(super) fn new(splice: bool, half_close_ms: u32) -> Self {
        Self {
            backlog: None,
            bytes: 0,
            flow: Flow::Open,
            activity: false,
            bulk: false,
            splice,
            half_close_ms,
        }
    }

    /// Bytes taken from `src` so far and sent on or held for `dst` (a read
    /// whose write fails ends the session and is not counted).
    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(super) fn is_done(&self) -> bool {
        self.flow == Flow::Done
    }

    /// Once `src` has finished sending (its EOF was seen, whether or not the
    /// half-close has reached `dst` yet): the half-close timeout, if any.
    pub(super) fn half_close_timeout(&self) -> Option<Duration> {
        (self.flow != Flow::Open && self.half_close_ms > 0)
            .then(|| Duration::from_millis(self.half_close_ms.into()))
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
    /// and when done; [`Half::is_done`] tells which. `last` says the other
    /// direction is done: this one's half-close then ends the session, and
    /// closing the sockets sends the FIN, so no `shutdown` call is made.
    pub(super) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        src: &TcpStream,
        dst: &TcpStream,
        scratch: &mut [u8],
        last: bool,
    ) -> io::Result<()> {
        match self.pump(cx, src, dst, scratch, last) {
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
        last: bool,
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
                    if !last {
                        shutdown_write(dst)?;
                    }
                    self.flow = Flow::Done;
                    return Poll::Ready(Ok(()));
                }
                Flow::Open => {}
            }
            // Leave the bytes in the kernel until the peer can take them.
            ready!(dst.poll_write_ready(cx))?;
            ready!(src.poll_read_ready(cx))?;
            match self.step(src, dst, scratch)? {
                Step::Moved(n) => {
                    // Every byte a direction moves is counted here, whatever
                    // the path (small, copy or splice).
                    self.bytes += n as u64;
                    self.activity = true;
                }
                Step::Eof => self.flow = Flow::Eof,
                Step::Again => {}
            }
        }
    }

    fn step(&mut self, src: &TcpStream, dst: &TcpStream, scratch: &mut [u8]) -> io::Result<Step> {
        if !self.bulk {
            return self.small_step(src, dst, &mut scratch[..SMALL_READ]);
        }
        #[cfg(target_os = "linux")]
        if self.splice {
            if let Some(pipe) = Pipe::lease() {
                return self.splice_step(src, dst, pipe);
            }
        }
        self.copy_step(src, dst, scratch)
    }

    /// One plain read of at most `buf.len()` bytes, written straight on. A
    /// read that fills `buf`, or a write `dst` does not take whole (the
    /// remainder is held until sent), turns the direction bulk.
    fn small_step(&mut self, src: &TcpStream, dst: &TcpStream, buf: &mut [u8]) -> io::Result<Step> {
        let n = match read_some(src, buf) {
            Ok(0) => return Ok(Step::Eof),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(Step::Again),
            Err(err) => return Err(err),
        };
        if n == buf.len() {
            self.bulk = true;
        }
        let written = would_block_as_zero(write_some(dst, &buf[..n]))?;
        if written < n {
            self.backlog = Some(Held::backlog(&buf[written..n]));
            self.bulk = true;
        }
        Ok(Step::Moved(n))
    }

    /// Through the scratch buffer, keeping nothing: see [`pass_through`].
    fn copy_step(
        &mut self,
        src: &TcpStream,
        dst: &TcpStream,
        scratch: &mut [u8],
    ) -> io::Result<Step> {
        match pass_through(src, dst, scratch) {
            Ok(Passed::Moved(n)) => Ok(Step::Moved(n)),
            Ok(Passed::Eof) => Ok(Step::Eof),
            // `dst`'s write readiness is cleared: the loop waits for it.
            Ok(Passed::Full) => Ok(Step::Again),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(Step::Again),
            Err(err) => Err(err),
        }
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
        // On error the pipe still holds bytes: it is dropped, not pooled.
        let written = would_block_as_zero(pipe.drain(dst, n))?;
        if written < n {
            self.backlog = Some(Piped::backlog(pipe, n - written));
        } else {
            pipe.release();
        }
        Ok(Step::Moved(n))
    }
}

fn would_block_as_zero(result: io::Result<usize>) -> io::Result<usize> {
    match result {
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(0),
        other => other,
    }
}

/// What [`pass_through`] did.
enum Passed {
    Moved(usize),
    Eof,
    /// `dst` took nothing; `src` still holds everything.
    Full,
}

/// Copies from `src` to `dst` through `buf` without ever owning a byte that
/// `dst` refused: peek, write, then take from `src` exactly what was
/// written. A peer that stops reading thus leaves the rest in `src`'s
/// receive buffer, where TCP flow control pushes back on the sender, instead
/// of in a heap buffer per stalled direction (64 KiB each, 1.25 GiB at
/// 10,000 stalled sessions). The cost is one more `recv` per read, which
/// copies nothing (`MSG_TRUNC`).
///
/// All of it runs in one `try_io`, so readiness is cleared (when `src` was
/// drained, as tokio's own `poll_read` does) against the readiness seen
/// before the peek, never losing a wake-up that came in between.
fn pass_through(src: &TcpStream, dst: &TcpStream, buf: &mut [u8]) -> io::Result<Passed> {
    let mut passed = Passed::Full;
    let result = src.try_io(Interest::READABLE, || {
        let n = recv(src, buf, libc::MSG_PEEK)?;
        if n == 0 {
            passed = Passed::Eof;
            return Ok(());
        }
        let written = would_block_as_zero(write_some(dst, &buf[..n]))?;
        if written == 0 {
            return Ok(());
        }
        discard(src, &mut buf[..written])?;
        passed = Passed::Moved(written);
        if written == n && n < buf.len() {
            // Drained: clear the readiness, saving a peek that would only
            // return `EAGAIN`.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    });
    match result {
        Err(err)
            if err.kind() == io::ErrorKind::WouldBlock && matches!(passed, Passed::Moved(_)) =>
        {
            Ok(passed)
        }
        Err(err) => Err(err),
        Ok(()) => Ok(passed),
    }
}

/// One `recv` into `buf`. A read that does not fill `buf` drained the
/// socket, so its readiness is cleared (as tokio's own `poll_read` does),
/// sparing a `recv` that would only return `EAGAIN`.
fn read_some(src: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut short = 0;
    let result = src.try_io(Interest::READABLE, || {
        let n = recv(src, buf, 0)?;
        if n > 0 && n < buf.len() {
            short = n;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match result {
        Err(err) if err.kind() == io::ErrorKind::WouldBlock && short > 0 => Ok(short),
        other => other,
    }
}

/// Takes `buf.len()` bytes that a peek has shown are queued in `src`.
/// `MSG_TRUNC` makes TCP drop them without copying into `buf`.
fn discard(src: &TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // The peeked bytes cannot vanish while we own the socket; if they
        // did, `WouldBlock` must not escape: it would read as "nothing
        // moved" and the written bytes would be sent again.
        match recv(src, &mut buf[done..], libc::MSG_TRUNC) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::other("peeked bytes were not there to take"));
            }
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// `recv(2)` with `flags`, retried when interrupted.
fn recv(src: &TcpStream, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the
        // duration of the call, and the descriptor is owned by `src`.
        let n = unsafe { libc::recv(src.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// One `write`; a short write means the send buffer is full, so readiness is
/// cleared, sparing a `write` that would only return `EAGAIN`.
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
