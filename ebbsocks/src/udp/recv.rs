//! Receiving datagrams without the empty read that usually ends a batch.
//!
//! A socket's readiness is edge-triggered: the usual loop reads until the
//! kernel says "would block", which costs one wasted system call per wake-up
//! (so per datagram, for a request/response flow). Here one `recvmmsg` asks
//! for up to [`SLOTS`] datagrams: getting fewer proves the queue was empty
//! at that moment, so the readiness can be cleared at once. That is safe: a
//! datagram arriving later raises a new readiness event, and tokio ignores a
//! clear that races with a newer event.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::SockAddr;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams asked for per call.
pub(super) const SLOTS: usize = 2;

/// What one call received: `count` datagrams, each `(length, source)`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Batch {
    pub(super) count: usize,
    pub(super) datagrams: [(usize, SocketAddr); SLOTS],
}

/// Receives up to [`SLOTS`] datagrams into `bufs` (one each). `Ok(None)`:
/// nothing was queued. Must only be called once the socket reported
/// readiness (it clears that readiness when the queue is drained).
pub(super) fn recv_batch(
    socket: &UdpSocket,
    bufs: [&mut [u8]; SLOTS],
) -> io::Result<Option<Batch>> {
    let mut received = None;
    let cleared = socket.try_io(Interest::READABLE, || {
        let batch = recvmmsg(socket, bufs)?;
        let drained = batch.count < SLOTS;
        received = Some(batch);
        if drained {
            // Tells tokio to clear the readiness; the datagrams are kept.
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    });
    match (received, cleared) {
        (Some(batch), _) => Ok(Some(batch)),
        (None, Err(err)) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
        (None, Err(err)) => Err(err),
        (None, Ok(())) => Ok(None),
    }
}

/// One non-blocking `recvmmsg(2)` into `bufs`.
fn recvmmsg(socket: &UdpSocket, bufs: [&mut [u8]; SLOTS]) -> io::Result<Batch> {
    // SAFETY: all-zero bytes are a valid value of these plain C structs.
    let mut names: [libc::sockaddr_storage; SLOTS] = unsafe { zeroed() };
    let mut msgs: [libc::mmsghdr; SLOTS] = unsafe { zeroed() };
    let mut iovs = bufs.map(|buf| libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    });
    for ((msg, name), iov) in msgs.iter_mut().zip(&mut names).zip(&mut iovs) {
        msg.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
        msg.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every message points at a live, writable buffer of the length
    // given and at a sockaddr_storage with its size; all of them outlive
    // the call, and the kernel writes no more than those lengths.
    let n = unsafe {
        libc::recvmmsg(
            socket.as_raw_fd(),
            msgs.as_mut_ptr(),
            SLOTS as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let unknown = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let mut batch = Batch {
        count: n as usize,
        datagrams: [(0, unknown); SLOTS],
    };
    for i in 0..batch.count.min(SLOTS) {
        // SAFETY: the kernel filled `names[i]` and set its length for this
        // received message.
        let source = unsafe { SockAddr::new(names[i], msgs[i].msg_hdr.msg_namelen) };
        let len = msgs[i].msg_len as usize;
        batch.datagrams[i] = (
            len.min(iovs[i].iov_len),
            source.as_socket().unwrap_or(unknown),
        );
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_drain_and_report_sources() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let tx = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let to = rx.local_addr().expect("addr");
        let (mut a, mut b) = (vec![0u8; 64], vec![0u8; 64]);

        for payload in [&b"one"[..], b"two", b"three"] {
            tx.send_to(payload, to).await.expect("send");
        }
        rx.readable().await.expect("readable");
        let first = recv_batch(&rx, [&mut a, &mut b])
            .expect("recv")
            .expect("some");
        assert_eq!(first.count, 2, "a full batch");
        assert_eq!(&a[..first.datagrams[0].0], b"one");
        assert_eq!(&b[..first.datagrams[1].0], b"two");
        assert_eq!(first.datagrams[0].1, tx.local_addr().expect("addr"));
        let second = recv_batch(&rx, [&mut a, &mut b])
            .expect("recv")
            .expect("some");
        assert_eq!(second.count, 1, "the rest, and the queue was drained");
        assert_eq!(&a[..second.datagrams[0].0], b"three");
        // Readiness was cleared: the next datagram wakes the socket again.
        tx.send_to(b"four", to).await.expect("send");
        rx.readable().await.expect("readable again");
        let third = recv_batch(&rx, [&mut a, &mut b])
            .expect("recv")
            .expect("some");
        assert_eq!((third.count, &a[..4]), (1, &b"four"[..]));
        assert!(recv_batch(&rx, [&mut a, &mut b]).expect("recv").is_none());
    }
}
