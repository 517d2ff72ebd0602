//! SOCKS4 and SOCKS4a on the same port.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::upstreams::{closed_port, echo_server};
use crate::common::*;

fn socks4_request(port: u16, ip: [u8; 4], user: &[u8], domain: Option<&str>) -> Vec<u8> {
    let mut out = vec![0x04, 0x01];
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&ip);
    out.extend_from_slice(user);
    out.push(0);
    if let Some(domain) = domain {
        out.extend_from_slice(domain.as_bytes());
        out.push(0);
    }
    out
}

async fn socks4_exchange(server: &TestServer, request: &[u8]) -> (tokio::net::TcpStream, [u8; 8]) {
    let mut stream = server.connect().await;
    within(stream.write_all(request)).await.expect("request");
    let mut reply = [0u8; 8];
    within(stream.read_exact(&mut reply)).await.expect("reply");
    (stream, reply)
}

#[tokio::test]
async fn socks4_connect_by_address() {
    let server = TestServer::start_toml("").await;
    let echo = echo_server("127.0.0.1:0").await;
    let (mut stream, reply) = socks4_exchange(
        &server,
        &socks4_request(echo.port(), [127, 0, 0, 1], b"me", None),
    )
    .await;
    assert_eq!(&reply[..2], &[0x00, 0x5A]);
    within(stream.write_all(b"v4")).await.expect("write");
    let mut back = [0u8; 2];
    within(stream.read_exact(&mut back)).await.expect("echo");
    assert_eq!(&back, b"v4");
}

#[tokio::test]
async fn socks4a_connect_by_name() {
    let server = TestServer::start_toml("").await;
    let echo = echo_server("127.0.0.1:0").await;
    let request = socks4_request(echo.port(), [0, 0, 0, 1], b"", Some("localhost"));
    let (mut stream, reply) = socks4_exchange(&server, &request).await;
    assert_eq!(reply[1], 0x5A);
    within(stream.write_all(b"4a")).await.expect("write");
    let mut back = [0u8; 2];
    within(stream.read_exact(&mut back)).await.expect("echo");
    assert_eq!(&back, b"4a");
}

#[tokio::test]
async fn socks4_refused_destination_is_rejected() {
    let server = TestServer::start_toml("").await;
    let dead = closed_port().await;
    let (mut stream, reply) = socks4_exchange(
        &server,
        &socks4_request(dead.port(), [127, 0, 0, 1], b"", None),
    )
    .await;
    assert_eq!(reply[1], 0x5B);
    assert!(closed_by_peer(&mut stream).await);
}
