//! Upstream faults: refused, unanswered, reset in the middle of a transfer,
//! a peer that stops reading. Each ends with the right reply code or a close
//! of both sides, is counted under its reason, and leaves nothing behind:
//! `connections_open` and `sessions_active` return to zero.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::upstreams::{closed_port, Unanswering};
use crate::common::*;

/// Waits until the server holds no connection and no session.
async fn nothing_left(server: &TestServer) {
    eventually(|| {
        let stats = server.services.stats.snapshot();
        stats.connections_open == 0 && stats.sessions_active == 0
    })
    .await;
}

fn connect_failures(server: &TestServer, reason: &str) -> u64 {
    let stats = server.services.stats.snapshot();
    stats.connect_failures.get(reason).copied().unwrap_or(0)
}

#[tokio::test]
async fn refused_upstream_gets_05_counted_and_nothing_leaks() {
    let server = TestServer::start_toml("").await;
    let dead = closed_port().await;
    let (mut stream, code, _) = socks5_connect_raw(server.addr, &atyp_for(dead)).await;
    assert_eq!(code, 0x05, "connection refused");
    assert!(closed_by_peer(&mut stream).await);
    drop(stream);
    eventually(|| connect_failures(&server, "connect_refused") == 1).await;
    nothing_left(&server).await;
    assert_eq!(server.services.stats.snapshot().sessions_total, 0);
}

#[tokio::test]
async fn unanswered_upstream_gets_06_at_the_connect_timeout() {
    let server = TestServer::start_toml("[server.pool]\nconnect_timeout_ms = 300\n").await;
    let silent = Unanswering::at("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("unanswering listener");
    let started = std::time::Instant::now();
    let (mut stream, code, _) = socks5_connect_raw(server.addr, &atyp_for(silent.addr)).await;
    let waited = started.elapsed();
    assert_eq!(code, 0x06, "TTL expired is the timeout code");
    assert!(
        waited >= Duration::from_millis(250),
        "answered before the connect timeout: {waited:?}"
    );
    assert!(closed_by_peer(&mut stream).await);
    drop(stream);
    eventually(|| connect_failures(&server, "connect_timeout") == 1).await;
    nothing_left(&server).await;
}

/// Accepts one connection, reads `expect` bytes, answers `answer`, then
/// closes with a zero linger: a reset in the middle of the session.
async fn resetting_upstream(expect: usize, answer: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut got = vec![0u8; expect];
        stream.read_exact(&mut got).await.expect("request");
        stream.write_all(answer).await.expect("answer");
        // Unsent or unread bytes do not matter: SO_LINGER 0 makes close an RST.
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(stream);
    });
    addr
}

#[tokio::test]
async fn upstream_reset_mid_transfer_closes_the_client_and_nothing_leaks() {
    let server = TestServer::start_toml("").await;
    let upstream = resetting_upstream(5, b"partial answer").await;
    let mut stream = socks5_connect(server.addr, upstream).await;
    within(stream.write_all(b"hello")).await.expect("write");
    let mut answer = [0u8; 14];
    within(stream.read_exact(&mut answer))
        .await
        .expect("answer");
    assert_eq!(&answer, b"partial answer");
    // The reset reaches the client as a close (the proxy aborts its side).
    assert!(closed_by_peer(&mut stream).await);
    nothing_left(&server).await;
    let stats = server.services.stats.snapshot();
    assert_eq!(stats.sessions_total, 1);
    assert_eq!(stats.bytes_client_to_upstream, 5);
    assert_eq!(stats.bytes_upstream_to_client, 14);
}

/// Accepts one connection and reads nothing until told to drain; then
/// reads to the end and reports whether the proxy closed its side (EOF or
/// reset). A peer that does not read cannot see a FIN queued behind the
/// bytes it has not taken, hence the drain.
async fn deaf_upstream() -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::sync::oneshot::Receiver<bool>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (drain_tx, drain) = tokio::sync::oneshot::channel::<()>();
    let (closed_tx, closed) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let _ = drain.await;
        let mut sink = vec![0u8; 64 * 1024];
        let ended = loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break true,
                Ok(_) => continue,
            }
        };
        let _ = closed_tx.send(ended);
    });
    (addr, drain_tx, closed)
}

#[tokio::test]
async fn upstream_that_stops_reading_is_closed_at_the_idle_timeout() {
    let server = TestServer::start_toml("[server]\nidle_timeout_secs = 1\n").await;
    let (upstream, drain, upstream_closed) = deaf_upstream().await;
    let mut stream = socks5_connect(server.addr, upstream).await;
    // Write until the proxy stops taking bytes: the deaf peer's receive
    // buffer, the proxy's backlog and our send buffer are all full.
    let chunk = vec![0x5a_u8; 64 * 1024];
    let mut sent = 0usize;
    let stalled = loop {
        match tokio::time::timeout(Duration::from_millis(300), stream.write_all(&chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            Ok(Err(_)) => break false,
            Err(_) => break true,
        }
        assert!(
            sent < 256 << 20,
            "256 MiB went into a peer that never reads"
        );
    };
    assert!(stalled, "the write failed before backpressure held it");
    // Nothing moves either way now; the idle timeout ends the session and
    // both sides see their connection close.
    let started = std::time::Instant::now();
    assert!(closed_by_peer(&mut stream).await);
    eprintln!("client closed {:?} after the stall", started.elapsed());
    drain.send(()).expect("upstream task alive");
    let ended = within(upstream_closed).await.expect("upstream task");
    assert!(ended, "the upstream connection was closed by the proxy");
    nothing_left(&server).await;
    eprintln!("stalled after {} KiB", sent >> 10);
}
