//! SOCKS5 CONNECT: address types, reply codes, bound address, early data,
//! malformed requests.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::upstreams::{closed_port, echo_server, peer_reporting_server};
use crate::common::*;

async fn assert_echoes(stream: &mut TcpStream) {
    within(stream.write_all(b"ping through the proxy"))
        .await
        .expect("write");
    let mut back = [0u8; 22];
    within(stream.read_exact(&mut back))
        .await
        .expect("read echo");
    assert_eq!(&back, b"ping through the proxy");
}

#[tokio::test]
async fn connect_to_ipv4_target() {
    let server = TestServer::start_toml("").await;
    let echo = echo_server("127.0.0.1:0").await;
    let mut stream = socks5_connect(server.addr, echo).await;
    assert_echoes(&mut stream).await;
}

#[tokio::test]
async fn connect_to_ipv6_target() {
    let server = TestServer::start_toml("").await;
    let echo = echo_server("[::1]:0").await;
    let (mut stream, code, bound) = socks5_connect_raw(server.addr, &atyp_for(echo)).await;
    assert_eq!(code, 0x00);
    assert!(bound.is_ipv6() && bound.ip().is_loopback(), "{bound}");
    assert_echoes(&mut stream).await;
}

#[tokio::test]
async fn connect_to_domain_target() {
    let server = TestServer::start_toml("").await;
    let echo = echo_server("127.0.0.1:0").await;
    let (mut stream, code, _) =
        socks5_connect_raw(server.addr, &atyp_domain("localhost", echo.port())).await;
    assert_eq!(code, 0x00);
    assert_echoes(&mut stream).await;
}

#[tokio::test]
async fn reply_carries_the_upstream_sockets_local_address() {
    let server = TestServer::start_toml("").await;
    let (dest, mut peers) = peer_reporting_server().await;
    let (_stream, code, bound) = socks5_connect_raw(server.addr, &atyp_for(dest)).await;
    assert_eq!(code, 0x00);
    let seen = within(peers.recv())
        .await
        .expect("destination saw a connection");
    assert_eq!(
        bound, seen,
        "BND.ADDR must be the upstream socket's local address"
    );
}

#[tokio::test]
async fn refused_port_gets_reply_05_and_is_counted() {
    let server = TestServer::start_toml("").await;
    let dead = closed_port().await;
    let (mut stream, code, _) = socks5_connect_raw(server.addr, &atyp_for(dead)).await;
    assert_eq!(code, 0x05);
    assert!(closed_by_peer(&mut stream).await);
    let stats = server.services.stats.snapshot();
    assert_eq!(stats.connect_failures.get("connect_refused"), Some(&1));
}

#[tokio::test]
async fn unresolvable_domain_gets_host_unreachable() {
    let server = TestServer::start_toml("").await;
    let (_stream, code, _) =
        socks5_connect_raw(server.addr, &atyp_domain("no-such-host.invalid", 80)).await;
    assert_eq!(code, 0x04);
}

#[tokio::test]
async fn bytes_sent_with_the_request_reach_the_destination() {
    let server = TestServer::start_toml("").await;
    let echo = echo_server("127.0.0.1:0").await;
    let mut stream = server.connect().await;
    // Greeting, request and payload in one write, before any reply.
    let mut all = vec![0x05, 0x01, 0x00, 0x05, 0x01, 0x00];
    all.extend_from_slice(&atyp_for(echo));
    all.extend_from_slice(b"early bytes");
    within(stream.write_all(&all)).await.expect("write");
    let mut choice = [0u8; 2];
    within(stream.read_exact(&mut choice))
        .await
        .expect("choice");
    let (code, _) = read_reply(&mut stream).await;
    assert_eq!(code, 0x00);
    let mut back = [0u8; 11];
    within(stream.read_exact(&mut back)).await.expect("echo");
    assert_eq!(&back, b"early bytes");
}

/// Sends a greeting and a raw request; returns the reply code.
async fn request_reply(server: &TestServer, request: &[u8]) -> u8 {
    let mut stream = server.connect().await;
    assert_eq!(greet(&mut stream, &[0x05, 0x01, 0x00]).await, [0x05, 0x00]);
    within(stream.write_all(request)).await.expect("request");
    let mut head = [0u8; 2];
    within(stream.read_exact(&mut head)).await.expect("reply");
    assert!(
        closed_by_peer(&mut stream).await,
        "connection must close after a refusal"
    );
    head[1]
}

#[tokio::test]
async fn unknown_commands_are_not_supported() {
    // BIND and UDP ASSOCIATE are served: tests/integration/{bind,udp}/.
    let server = TestServer::start_toml("").await;
    assert_eq!(
        request_reply(&server, &[0x05, 0x09, 0x00, 0x01, 127, 0, 0, 1, 0, 80]).await,
        0x07
    );
}

#[tokio::test]
async fn unknown_address_type_gets_08_and_is_counted() {
    let server = TestServer::start_toml("").await;
    assert_eq!(
        request_reply(&server, &[0x05, 0x01, 0x00, 0x09, 1, 2, 3]).await,
        0x08
    );
    server
        .handshake_failures_reach("unsupported_address_type", 1)
        .await;
}

#[tokio::test]
async fn unknown_first_byte_closes_and_is_counted() {
    let server = TestServer::start_toml("").await;
    let mut stream = server.connect().await;
    within(stream.write_all(b"GET / HTTP/1.1\r\n\r\n"))
        .await
        .expect("write");
    assert!(closed_by_peer(&mut stream).await);
    server.handshake_failures_reach("unknown_version", 1).await;
}

#[tokio::test]
async fn greeting_without_methods_closes_the_connection() {
    let server = TestServer::start_toml("").await;
    let mut stream = server.connect().await;
    within(stream.write_all(&[0x05, 0x00]))
        .await
        .expect("write");
    assert!(closed_by_peer(&mut stream).await);
    eventually(|| server.services.stats.snapshot().handshake_failures.len() == 1).await;
}
