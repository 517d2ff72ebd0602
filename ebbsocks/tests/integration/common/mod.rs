//! Shared helpers: the real server on 127.0.0.1:0, small upstream servers and
//! a hand-written SOCKS client for byte-level checks.

#![allow(dead_code)]

pub mod http;
pub mod logged;
pub mod pattern;
pub mod process;
pub mod upstreams;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ebbsocks::config::Config;
use ebbsocks::server::{self, Services};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Every network wait in the tests is bounded by this.
pub const STEP: Duration = Duration::from_secs(10);

/// Awaits `fut` or fails the test after [`STEP`].
pub async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .expect("step did not finish in time")
}

/// A running server, stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub services: Arc<Services>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        Self::start_with(Services::new(config)).await
    }

    pub async fn start_toml(toml: &str) -> Self {
        let config = Config::from_toml(toml, Path::new("test.toml")).expect("valid test config");
        Self::start(config).await
    }

    pub async fn start_with(services: Arc<Services>) -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("addr"), services).await
    }

    /// Listening on `bind` (such as `[::1]:0` for an IPv6 control connection).
    pub async fn start_at(bind: &str, services: Arc<Services>) -> Self {
        Self::start_on(bind.parse().expect("addr"), services).await
    }

    /// Listens on `bind` (such as `0.0.0.0:0`); `addr` is then the
    /// loopback address of the same port, for clients to connect to.
    pub async fn start_on(bind: SocketAddr, services: Arc<Services>) -> Self {
        // Bound with the client sockets' options before listening, as
        // `main` does, so the first connection already inherits them.
        let inherited = services.connect_policy().options;
        let listener = server::bind_with(bind, false, &inherited).expect("bind");
        let mut addr = listener.local_addr().expect("local addr");
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone().cancelled_owned();
        let task = tokio::spawn(server::serve(listener, services.clone(), stop));
        Self {
            addr,
            services,
            shutdown,
            task: Some(task),
        }
    }

    /// Signals shutdown and returns the server task, to await the drain.
    pub fn begin_shutdown(&mut self) -> JoinHandle<std::io::Result<()>> {
        self.shutdown.cancel();
        self.task.take().expect("server still running")
    }

    /// Waits until the server has counted `count` handshake failures for
    /// `reason` (counting happens after the reply, so it may lag the client).
    pub async fn handshake_failures_reach(&self, reason: &str, count: u64) {
        eventually(|| {
            let failures = self.services.stats.snapshot().handshake_failures;
            failures.get(reason) == Some(&count)
        })
        .await;
    }

    pub async fn connect(&self) -> TcpStream {
        within(TcpStream::connect(self.addr))
            .await
            .expect("connect to proxy")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// SOCKS5 target encodings (ATYP + address + port).
pub fn atyp_for(target: SocketAddr) -> Vec<u8> {
    let mut out = Vec::new();
    match target {
        SocketAddr::V4(v4) => {
            out.push(0x01);
            out.extend_from_slice(&v4.ip().octets());
        }
        SocketAddr::V6(v6) => {
            out.push(0x04);
            out.extend_from_slice(&v6.ip().octets());
        }
    }
    out.extend_from_slice(&target.port().to_be_bytes());
    out
}

pub fn atyp_domain(host: &str, port: u16) -> Vec<u8> {
    let mut out = vec![0x03, host.len() as u8];
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(&port.to_be_bytes());
    out
}

/// Reads a SOCKS5 reply; returns (code, bound address).
pub async fn read_reply(stream: &mut TcpStream) -> (u8, SocketAddr) {
    let mut head = [0u8; 4];
    within(stream.read_exact(&mut head))
        .await
        .expect("reply head");
    assert_eq!(head[0], 0x05, "reply version");
    let bound = match head[3] {
        0x01 => {
            let mut rest = [0u8; 6];
            within(stream.read_exact(&mut rest))
                .await
                .expect("v4 reply");
            let ip = std::net::Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3]);
            SocketAddr::from((ip, u16::from_be_bytes([rest[4], rest[5]])))
        }
        0x04 => {
            let mut rest = [0u8; 18];
            within(stream.read_exact(&mut rest))
                .await
                .expect("v6 reply");
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&rest[..16]);
            SocketAddr::from((
                std::net::Ipv6Addr::from(ip),
                u16::from_be_bytes([rest[16], rest[17]]),
            ))
        }
        other => panic!("unexpected reply address type {other}"),
    };
    (head[1], bound)
}

/// No-auth greeting + CONNECT with the given ATYP bytes; returns the stream
/// and the reply.
pub async fn socks5_connect_raw(proxy: SocketAddr, atyp: &[u8]) -> (TcpStream, u8, SocketAddr) {
    let mut stream = within(TcpStream::connect(proxy)).await.expect("connect");
    let choice = greet(&mut stream, &[0x05, 0x01, 0x00]).await;
    assert_eq!(choice, [0x05, 0x00]);
    let mut request = vec![0x05, 0x01, 0x00];
    request.extend_from_slice(atyp);
    within(stream.write_all(&request)).await.expect("request");
    let (code, bound) = read_reply(&mut stream).await;
    (stream, code, bound)
}

/// A granted SOCKS5 CONNECT to `target`.
pub async fn socks5_connect(proxy: SocketAddr, target: SocketAddr) -> TcpStream {
    let (stream, code, _) = socks5_connect_raw(proxy, &atyp_for(target)).await;
    assert_eq!(code, 0x00, "CONNECT to {target} refused");
    stream
}

/// Sends a SOCKS5 greeting and returns the server's method choice.
pub async fn greet(stream: &mut TcpStream, greeting: &[u8]) -> [u8; 2] {
    within(stream.write_all(greeting)).await.expect("greeting");
    let mut choice = [0u8; 2];
    within(stream.read_exact(&mut choice))
        .await
        .expect("method choice");
    choice
}

/// An RFC 1929 username/password request.
pub fn userpass(user: &str, pass: &str) -> Vec<u8> {
    let mut out = vec![0x01, user.len() as u8];
    out.extend_from_slice(user.as_bytes());
    out.push(pass.len() as u8);
    out.extend_from_slice(pass.as_bytes());
    out
}

/// Sends `user`/`pass` on a stream whose greeting chose user/password;
/// returns the status byte (0 = accepted).
pub async fn send_login(stream: &mut TcpStream, user: &str, pass: &str) -> u8 {
    within(stream.write_all(&userpass(user, pass)))
        .await
        .expect("credentials");
    let mut status = [0u8; 2];
    within(stream.read_exact(&mut status))
        .await
        .expect("login status");
    assert_eq!(status[0], 0x01, "RFC 1929 reply version");
    status[1]
}

/// Reads until EOF or `STEP`.
pub async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    within(stream.read_to_end(&mut out))
        .await
        .expect("read to end");
    out
}

/// True when the peer closed the connection (end of stream, or a reset)
/// within `STEP`, skipping any bytes before the close; false when it is
/// still open after `STEP`. Any other read error fails the test: a check
/// for "closed" must not pass on a connection that merely went quiet.
pub async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    closed_within(stream, STEP).await
}

/// [`closed_by_peer`] with a limit of `limit`.
pub async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_elapsed) => {
                eprintln!("closed_by_peer: still open after {limit:?}");
                return false;
            }
            Ok(Ok(0)) => return true,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) if is_reset(&e) => return true,
            Ok(Err(e)) => panic!("reading until the peer closes failed: {e}"),
        }
    }
}

/// The errors a read gets when the peer closed with a reset.
fn is_reset(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset};
    matches!(e.kind(), ConnectionReset | ConnectionAborted)
}

/// Polls `check` (a condition on server state) until it holds or `STEP` passes.
pub async fn eventually(mut check: impl FnMut() -> bool) {
    within(async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let near = TcpStream::connect(listener.local_addr().unwrap());
        let (near, far) = tokio::join!(near, listener.accept());
        (near.unwrap(), far.unwrap().0)
    }

    #[tokio::test]
    async fn a_connection_left_open_is_not_closed() {
        let (mut near, _far) = pair().await;
        assert!(!closed_within(&mut near, Duration::from_millis(200)).await);
    }

    #[tokio::test]
    async fn end_of_stream_after_data_is_closed() {
        let (mut near, mut far) = pair().await;
        far.write_all(b"last words").await.unwrap();
        drop(far);
        assert!(closed_by_peer(&mut near).await);
    }

    #[tokio::test]
    async fn a_reset_is_closed() {
        let (mut near, far) = pair().await;
        // Linger 0: close sends RST instead of FIN.
        socket2::SockRef::from(&far)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(far);
        assert!(closed_by_peer(&mut near).await);
    }
}
