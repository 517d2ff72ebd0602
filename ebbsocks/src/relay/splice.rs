//! Linux `splice(2)`: socket -> pipe -> socket, so payload never crosses into
//! user space. A pipe is leased from a small per-thread pool for the length of
//! one read-and-write and goes back as soon as it is empty; only a direction
//! whose peer is slow keeps one, holding the unsent bytes in the kernel.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Idle pipes kept per thread; more are closed when returned.
const POOL_PER_THREAD: usize = 4;
/// Pipes alive at once in the process (two file descriptors each, so at most
/// 128 descriptors taken from the connection budget). Past it a direction
/// copies through the scratch buffer instead.
pub const MAX_PIPES: usize = 64;

/// Bytes moved per `splice` pair.
pub(super) const CHUNK: usize = super::PIPE_CAPACITY;

static PIPES: AtomicUsize = AtomicUsize::new(0);
/// Whether the splice path is used; see [`super::set_splice`].
static ENABLED: AtomicBool = AtomicBool::new(true);

thread_local! {
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

// Pipes leased by relays polled on this thread, for tests that check which
// sessions use a pipe at all (a test's relay runs on the test's thread).
#[cfg(test)]
thread_local! {
    static LEASED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Pipes leased so far by relays polled on this thread.
#[cfg(test)]
pub(super) fn leased_on_this_thread() -> u64 {
    LEASED.get()
}

pub(super) fn enabled() -> bool {
    ENABLED.load(Relaxed)
}

pub(super) fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Relaxed);
}

/// Pipes alive now, pooled or leased.
pub(super) fn pipes() -> usize {
    PIPES.load(Relaxed)
}

/// Both ends of a pipe, empty whenever it is in the pool.
#[derive(Debug)]
pub(super) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    /// A pipe from this thread's pool, or a new one while under the limit.
    pub(super) fn lease() -> Option<Pipe> {
        #[cfg(test)]
        LEASED.set(LEASED.get() + 1);
        if let Some(pipe) = POOL.with_borrow_mut(Vec::pop) {
            return Some(pipe);
        }
        if PIPES.fetch_add(1, Relaxed) >= MAX_PIPES {
            PIPES.fetch_sub(1, Relaxed);
            return None;
        }
        match Pipe::create() {
            Ok(pipe) => Some(pipe),
            Err(err) => {
                PIPES.fetch_sub(1, Relaxed);
                tracing::debug!(%err, "pipe for splice not created; copying instead");
                None
            }
        }
    }

    fn create() -> io::Result<Pipe> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 writes two descriptors into the array we pass.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // Refused past the user's pipe quota (fs.pipe-user-pages-soft): the
        // pipe then keeps its default size, and splice simply moves less.
        // SAFETY: F_SETPIPE_SZ takes an int and touches no memory of ours.
        let _ = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
        Ok(Pipe { read, write })
    }

    /// Returns an empty pipe to the pool (a pipe holding data must be dropped).
    pub(super) fn release(self) {
        POOL.with_borrow_mut(|pool| {
            if pool.len() < POOL_PER_THREAD {
                pool.push(self);
            }
        });
    }

    /// Moves up to `len` bytes from `src` into the pipe; `Ok(0)` is EOF.
    pub(super) fn fill(&self, src: &TcpStream, len: usize) -> io::Result<usize> {
        src.try_io(Interest::READABLE, || {
            splice(src.as_raw_fd(), self.write.as_raw_fd(), len)
        })
    }

    /// Moves up to `len` bytes from the pipe to `dst`.
    pub(super) fn drain(&self, dst: &TcpStream, len: usize) -> io::Result<usize> {
        dst.try_io(Interest::WRITABLE, || {
            splice(self.read.as_raw_fd(), dst.as_raw_fd(), len)
        })
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        PIPES.fetch_sub(1, Relaxed);
    }
}

fn splice(from: i32, to: i32, len: usize) -> io::Result<usize> {
    loop {
        // SAFETY: plain descriptors and null offsets (both ends are streams).
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
