//! The connect path: Happy Eyeballs against `localhost`, one deadline from
//! resolving to an established connection, socket options on both legs of
//! a session, and the outbound address.

mod deadline;
mod happy_eyeballs;
mod socket_options;

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::common::upstreams::reporting_listener;
use crate::common::*;

/// The next peer a reporting listener accepted, within [`STEP`].
async fn next_peer(peers: &mut mpsc::Receiver<SocketAddr>) -> SocketAddr {
    within(peers.recv()).await.expect("listener still running")
}

/// `first` on some free port (it is given 0 and returns what it bound),
/// then `second` on the same port (of other addresses); when that port is
/// taken there, both are tried again.
async fn on_one_port<A, B>(
    mut first: impl AsyncFnMut(u16) -> std::io::Result<(u16, A)>,
    mut second: impl AsyncFnMut(u16) -> std::io::Result<B>,
) -> (A, B) {
    for _ in 0..20 {
        let (port, a) = first(0).await.expect("bind the first test socket");
        match second(port).await {
            Ok(b) => return (a, b),
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(err) => panic!("cannot bind a test socket on port {port}: {err}"),
        }
    }
    panic!("no port free on every address after 20 tries");
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("valid address")
}

/// The socket of this process (the in-process proxy's, or the test's)
/// connected from `local` to `peer`: a duplicate of its descriptor, found
/// in /proc/self/fd, so its options can be read back with getsockopt.
fn socket_between(local: SocketAddr, peer: SocketAddr) -> Option<socket2::Socket> {
    let entries = std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd is readable");
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        // SAFETY: fcntl only duplicates the descriptor number; if another
        // thread closed (or reused) it meanwhile, this fails with EBADF or
        // yields a socket whose addresses do not match, checked below.
        let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if copy < 0 {
            continue;
        }
        // SAFETY: `copy` is a new descriptor that nothing else owns.
        let socket = socket2::Socket::from(unsafe { OwnedFd::from_raw_fd(copy) });
        let addr = |a: std::io::Result<socket2::SockAddr>| a.ok().and_then(|a| a.as_socket());
        if addr(socket.local_addr()) == Some(local) && addr(socket.peer_addr()) == Some(peer) {
            return Some(socket);
        }
    }
    None
}

/// TCP_NODELAY and the keepalive settings (None: off) the kernel reports.
fn options_of(socket: &socket2::Socket) -> (bool, Option<(Duration, Duration, u32)>) {
    let keepalive = socket.keepalive().expect("SO_KEEPALIVE").then(|| {
        (
            socket.keepalive_time().expect("TCP_KEEPIDLE"),
            socket.keepalive_interval().expect("TCP_KEEPINTVL"),
            socket.keepalive_retries().expect("TCP_KEEPCNT"),
        )
    });
    (socket.nodelay().expect("TCP_NODELAY"), keepalive)
}

/// A SOCKS5 CONNECT to `host:port` by name; the stream and the reply code.
async fn connect_by_name(proxy: SocketAddr, host: &str, port: u16) -> (TcpStream, u8) {
    let (stream, code, _) = socks5_connect_raw(proxy, &atyp_domain(host, port)).await;
    (stream, code)
}

fn connect_failures(server: &TestServer, reason: &str) -> u64 {
    let stats = server.services.stats.snapshot();
    stats.connect_failures.get(reason).copied().unwrap_or(0)
}
