//! The access log, batched per thread. A finished session's line goes into
//! its thread's buffer; the buffers are written to stderr together a short
//! while later by [`flush_every`], at once by the thread whose buffer holds
//! [`BATCH_BYTES`], and by [`flush`] at shutdown. A busy server thus writes
//! a few times per interval instead of once per session.
//!
//! Lines from different threads may come out of time order by up to one
//! interval; each line carries its own timestamp. Only a process that dies
//! without a clean shutdown can lose lines: at most one interval's worth.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// A thread's buffer is written out as soon as it holds this much, so no
/// buffer grows past it (plus one line).
pub const BATCH_BYTES: usize = 32 * 1024;

type Buffer = Arc<Mutex<Vec<u8>>>;

/// The buffer of every thread that has written a line and not exited.
static BUFFERS: Mutex<Vec<Buffer>> = Mutex::new(Vec::new());
/// Set by the first line after a flush; the flusher then starts its wait.
static PENDING: AtomicBool = AtomicBool::new(false);
static LINES_WAITING: Notify = Notify::const_new();

/// This thread's buffer; leaves the registry, written out, when the thread exits.
struct ThreadBuffer(Buffer);

impl ThreadBuffer {
    fn register() -> Self {
        let buffer = Buffer::default();
        crate::stats::lock(&BUFFERS).push(buffer.clone());
        Self(buffer)
    }
}

impl Drop for ThreadBuffer {
    fn drop(&mut self) {
        write_out(&self.0);
        crate::stats::lock(&BUFFERS).retain(|other| !Arc::ptr_eq(other, &self.0));
    }
}

thread_local! {
    static MINE: ThreadBuffer = ThreadBuffer::register();
}

/// Appends one formatted line to this thread's buffer.
pub(super) fn push(line: &[u8]) {
    let full = MINE.try_with(|mine| {
        let mut buffer = crate::stats::lock(&mine.0);
        buffer.extend_from_slice(line);
        buffer.len() >= BATCH_BYTES
    });
    match full {
        Ok(true) => MINE.with(|mine| write_out(&mine.0)),
        Ok(false) => {
            if !PENDING.swap(true, SeqCst) {
                LINES_WAITING.notify_one();
            }
        }
        // The thread is exiting and its buffer is gone: write directly.
        Err(_) => {
            let _ = output().write_all(line);
        }
    }
}

/// Writes every thread's batched lines to stderr now.
pub fn flush() {
    PENDING.store(false, SeqCst);
    let buffers = crate::stats::lock(&BUFFERS).clone();
    for buffer in &buffers {
        write_out(buffer);
    }
}

/// Writes the batched lines `interval` after the first line of each batch;
/// waits without a timer while no line comes. Runs until dropped: spawn it
/// on the server's runtime, and call [`flush`] after the server has stopped.
pub async fn flush_every(interval: Duration) {
    loop {
        LINES_WAITING.notified().await;
        tokio::time::sleep(interval).await;
        flush();
    }
}

fn write_out(buffer: &Mutex<Vec<u8>>) {
    // Taken out first, so the owning thread never waits on stderr.
    let lines = std::mem::take(&mut *crate::stats::lock(buffer));
    if !lines.is_empty() {
        let _ = output().write_all(&lines);
    }
}

#[cfg(not(test))]
fn output() -> io::Stderr {
    io::stderr()
}

/// Unit tests fill buffers on purpose; their lines go nowhere.
#[cfg(test)]
fn output() -> io::Sink {
    io::sink()
}

/// The `tracing` writer for batched lines: each `write` is one whole line
/// (the formatter writes an event with a single `write_all`).
#[derive(Debug)]
pub(super) struct BatchWriter;

impl Write for BatchWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_buffer_is_written_at_once_and_the_thread_keeps_none() {
        // Runs on its own thread: its buffer is its own.
        std::thread::spawn(|| {
            let held = || MINE.with(|mine| crate::stats::lock(&mine.0).len());
            let line = [b'x'; 1024];
            let lines_below = BATCH_BYTES / line.len() - 1;
            for _ in 0..lines_below {
                push(&line);
            }
            assert_eq!(held(), lines_below * line.len());
            // Reaching BATCH_BYTES writes the buffer out.
            push(&line);
            assert_eq!(held(), 0, "the full buffer was not written out");
            push(&line);
            assert_eq!(held(), line.len());
        })
        .join()
        .expect("writer thread");
    }

    #[test]
    fn an_exiting_thread_leaves_the_registry() {
        let buffer = std::thread::spawn(|| {
            push(b"line\n");
            MINE.with(|mine| Arc::downgrade(&mine.0))
        })
        .join()
        .expect("writer thread");
        // Neither the thread nor the registry holds it any more.
        assert!(buffer.upgrade().is_none());
    }
}
