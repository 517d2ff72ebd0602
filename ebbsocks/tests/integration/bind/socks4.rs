//! SOCKS4 and SOCKS4a BIND: the same flow with 8-byte replies.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::*;

const GRANTED: u8 = 0x5A;

async fn socks4_bind(server: &TestServer, request: &[u8]) -> (TcpStream, u8, SocketAddr) {
    let mut control = server.connect().await;
    within(control.write_all(request)).await.expect("request");
    let (status, bound) = read_socks4_reply(&mut control).await;
    (control, status, bound)
}

#[tokio::test]
async fn socks4_bind_any_peer_names_it_and_relays() {
    let server = TestServer::start_toml("").await;
    let request = socks4_bind_request(0, [0, 0, 0, 0], None);
    let (mut control, status, bound) = socks4_bind(&server, &request).await;
    assert_eq!(status, GRANTED, "first reply");
    assert_eq!(bound.ip(), server.addr.ip());
    assert_ne!(bound.port(), 0);

    let mut inbound = within(TcpStream::connect(bound))
        .await
        .expect("peer connects");
    let (status, named) = read_socks4_reply(&mut control).await;
    assert_eq!(status, GRANTED, "second reply");
    assert_eq!(named, inbound.local_addr().expect("peer addr"));
    exchange(&mut control, &mut inbound).await;
    within(inbound.shutdown()).await.expect("peer half-closes");
    assert_eq!(read_to_end(&mut control).await, b"");
    within(control.shutdown())
        .await
        .expect("client half-closes");
    assert_eq!(read_to_end(&mut inbound).await, b"");
    eventually(|| server.services.stats.snapshot().sessions_active == 0).await;
    let stats = server.services.stats.snapshot();
    assert_eq!((stats.bind_requests, stats.sessions_total), (1, 1));
}

#[tokio::test]
async fn socks4_bind_rejects_a_peer_other_than_dstip() {
    let server = TestServer::start_toml("").await;
    let request = socks4_bind_request(21, [127, 0, 0, 2], None);
    let (mut control, status, bound) = socks4_bind(&server, &request).await;
    assert_eq!(status, GRANTED);
    let mut stray = peer_from("127.0.0.1", bound).await;
    assert!(closed_by_peer(&mut stray).await);
    let mut inbound = peer_from("127.0.0.2", bound).await;
    let (status, named) = read_socks4_reply(&mut control).await;
    assert_eq!(status, GRANTED);
    assert_eq!(named, inbound.local_addr().expect("peer addr"));
    exchange(&mut control, &mut inbound).await;
    assert_eq!(server.services.stats.snapshot().bind_peers_rejected, 1);
}

#[tokio::test]
async fn socks4a_bind_by_name_accepts_its_address() {
    let server = TestServer::start_toml("").await;
    let request = socks4_bind_request(0, [0, 0, 0, 1], Some("localhost"));
    let (mut control, status, bound) = socks4_bind(&server, &request).await;
    assert_eq!(status, GRANTED);
    assert!(bound.ip().is_loopback(), "{bound}");
    let mut stray = peer_from("127.0.0.2", bound).await;
    assert!(closed_by_peer(&mut stray).await);
    let mut inbound = peer_from("127.0.0.1", bound).await;
    let (status, named) = read_socks4_reply(&mut control).await;
    assert_eq!(status, GRANTED);
    assert_eq!(named, inbound.local_addr().expect("peer addr"));
    exchange(&mut control, &mut inbound).await;
}

#[tokio::test]
async fn socks4_external_address_is_advertised() {
    let server = TestServer::start_toml("[server]\nexternal_address = \"198.51.100.4\"\n").await;
    let request = socks4_bind_request(0, [0, 0, 0, 0], None);
    let (mut control, status, bound) = socks4_bind(&server, &request).await;
    assert_eq!(status, GRANTED);
    assert_eq!(bound.ip(), addr("198.51.100.4:0").ip());
    let local = SocketAddr::new(server.addr.ip(), bound.port());
    let mut inbound = within(TcpStream::connect(local))
        .await
        .expect("peer connects");
    let (status, _) = read_socks4_reply(&mut control).await;
    assert_eq!(status, GRANTED);
    exchange(&mut control, &mut inbound).await;
}
