//! Deadlines, the connection limit and graceful shutdown.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::upstreams::echo_server;
use crate::common::*;

#[tokio::test]
async fn silent_client_is_closed_at_the_handshake_deadline() {
    let server = TestServer::start_toml("[server]\nhandshake_timeout_secs = 1\n").await;
    let started = Instant::now();
    let mut silent = server.connect().await;
    // A slow client that sent half a greeting is treated the same.
    let mut slow = server.connect().await;
    within(slow.write_all(&[0x05, 0x02, 0x00]))
        .await
        .expect("partial greeting");
    assert!(closed_by_peer(&mut silent).await);
    assert!(closed_by_peer(&mut slow).await);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed too early: {waited:?}"
    );
    server
        .handshake_failures_reach("handshake_timeout", 2)
        .await;
}

#[tokio::test]
async fn connections_over_max_connections_are_closed_at_once() {
    let server = TestServer::start_toml("[server]\nmax_connections = 2\n").await;
    let echo = echo_server("127.0.0.1:0").await;
    let mut first = socks5_connect(server.addr, echo).await;
    let _second = socks5_connect(server.addr, echo).await;
    let mut third = server.connect().await;
    assert!(closed_by_peer(&mut third).await);
    assert_eq!(server.services.stats.snapshot().refused_max_connections, 1);
    // The admitted sessions keep working, and a slot frees when one ends.
    within(first.write_all(b"ok")).await.expect("write");
    let mut back = [0u8; 2];
    within(first.read_exact(&mut back)).await.expect("echo");
    drop(first);
    eventually(|| server.services.stats.connections_open() == 1).await;
    let _fourth = socks5_connect(server.addr, echo).await;
}

#[tokio::test]
async fn shutdown_lets_a_live_session_finish() {
    let mut server = TestServer::start_toml("[server]\nshutdown_grace_secs = 30\n").await;
    let echo = echo_server("127.0.0.1:0").await;
    let mut session = socks5_connect(server.addr, echo).await;
    let stopped = server.begin_shutdown();
    // New connections are no longer accepted...
    eventually(|| std::net::TcpStream::connect(server.addr).is_err()).await;
    // ...while the live session still relays.
    within(session.write_all(b"still here"))
        .await
        .expect("write");
    let mut back = [0u8; 10];
    within(session.read_exact(&mut back)).await.expect("echo");
    assert_eq!(&back, b"still here");
    assert!(!stopped.is_finished());
    drop(session);
    within(stopped)
        .await
        .expect("server task")
        .expect("clean exit");
}

#[tokio::test]
async fn sessions_are_closed_when_the_grace_period_ends() {
    let mut server = TestServer::start_toml("[server]\nshutdown_grace_secs = 1\n").await;
    let echo = echo_server("127.0.0.1:0").await;
    let mut session = socks5_connect(server.addr, echo).await;
    within(session.write_all(b"counted")).await.expect("write");
    let mut back = [0u8; 7];
    within(session.read_exact(&mut back)).await.expect("echo");
    let stopped = server.begin_shutdown();
    within(stopped)
        .await
        .expect("server task")
        .expect("clean exit");
    assert!(closed_by_peer(&mut session).await);
    // A session closed by shutdown still has its bytes counted.
    let stats = server.services.stats.snapshot();
    assert_eq!(stats.bytes_client_to_upstream, 7);
    assert_eq!(stats.bytes_upstream_to_client, 7);
}
