//! One datagram buffer per worker thread, shared by every association the
//! thread runs. It is only ever borrowed synchronously, between a readiness
//! wake-up and the `try_recv_from`/`send_to` calls that follow it, never
//! across an `.await`; so an idle association owns no payload buffer, and
//! the process holds one per thread however many associations exist.

use std::cell::RefCell;

use crate::proto::MAX_UDP_IP_HEADER;

/// One datagram's room: the largest UDP payload (65,535 bytes less the IP
/// and UDP headers, so 64 KiB always holds it) and, in front of it, the
/// SOCKS header of a reply to the client.
pub(super) const SLOT_LEN: usize = MAX_UDP_IP_HEADER + 64 * 1024;

/// A slot for each datagram one receive call may return.
pub(super) const SCRATCH_LEN: usize = SLOT_LEN * super::recv::SLOTS;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with the thread's scratch buffer of [`SCRATCH_LEN`] bytes.
pub(super) fn with<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < SCRATCH_LEN {
                // Zeroed allocation: the pages are only touched (and only
                // count in RSS) once datagrams that large arrive.
                *buf = vec![0u8; SCRATCH_LEN];
            }
            f(&mut buf)
        }
        // Only reachable if `f` itself called `with`, which no caller does;
        // a temporary buffer is still correct, just slower.
        Err(_) => f(&mut vec![0u8; SCRATCH_LEN]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_reused_on_a_thread() {
        let first = with(|buf| {
            assert_eq!(buf.len(), SCRATCH_LEN);
            buf[0] = 7;
            buf.as_ptr() as usize
        });
        let again = with(|buf| (buf.as_ptr() as usize, buf[0]));
        assert_eq!(again, (first, 7));
        // Nested use cannot alias the outer borrow.
        with(|outer| with(|inner| assert_ne!(outer.as_ptr(), inner.as_ptr())));
    }
}
