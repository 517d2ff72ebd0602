//! SOCKS5 BIND that succeeds: addresses in both replies, relaying, the
//! DST.ADDR check on peers, early data.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

#[tokio::test]
async fn any_peer_is_accepted_named_and_relayed_both_ways_with_half_close() {
    let server = TestServer::start_toml("").await;
    let (mut control, code, bound) =
        socks5_bind(server.addr, &atyp_for(addr("0.0.0.0:0")), b"").await;
    assert_eq!(code, 0x00, "first reply");
    // "Any peer": the listener is on the address the client reached us at.
    assert_eq!(bound.ip(), server.addr.ip());
    assert_ne!(bound.port(), 0);
    assert_ne!(bound.port(), server.addr.port());

    let mut inbound = within(TcpStream::connect(bound))
        .await
        .expect("peer connects");
    let (code, named) = read_reply(&mut control).await;
    assert_eq!(code, 0x00, "second reply");
    assert_eq!(named, inbound.local_addr().expect("peer addr"));
    exchange(&mut control, &mut inbound).await;

    // The peer stops sending: the client sees EOF and may still send.
    within(inbound.shutdown()).await.expect("peer half-closes");
    assert_eq!(read_to_end(&mut control).await, b"");
    within(control.write_all(b"after eof"))
        .await
        .expect("write");
    let mut got = [0u8; 9];
    within(inbound.read_exact(&mut got))
        .await
        .expect("peer reads");
    assert_eq!(&got, b"after eof");
    within(control.shutdown())
        .await
        .expect("client half-closes");
    assert_eq!(read_to_end(&mut inbound).await, b"");

    // Accounted like a CONNECT session.
    eventually(|| server.services.stats.snapshot().sessions_active == 0).await;
    let stats = server.services.stats.snapshot();
    assert_eq!(stats.bind_requests, 1);
    assert_eq!(stats.bind_peers_rejected, 0);
    assert_eq!(stats.sessions_total, 1);
    assert_eq!(stats.bytes_client_to_upstream, 11 + 9);
    assert_eq!(stats.bytes_upstream_to_client, 13);
    assert!(stats.connect_failures.is_empty(), "{stats:?}");
}

#[tokio::test]
async fn a_peer_other_than_dst_addr_is_closed_and_the_right_one_still_accepted() {
    let server = TestServer::start_toml("").await;
    let (mut control, code, bound) =
        socks5_bind(server.addr, &atyp_for(addr("127.0.0.2:0")), b"").await;
    assert_eq!(code, 0x00);
    assert!(bound.ip().is_loopback(), "{bound}");

    let mut stray = peer_from("127.0.0.1", bound).await;
    assert!(closed_by_peer(&mut stray).await);
    assert_eq!(server.services.stats.snapshot().bind_peers_rejected, 1);

    let mut inbound = peer_from("127.0.0.2", bound).await;
    let (code, named) = read_reply(&mut control).await;
    assert_eq!(code, 0x00);
    assert_eq!(named, inbound.local_addr().expect("peer addr"));
    assert_eq!(named.ip(), addr("127.0.0.2:0").ip());
    exchange(&mut control, &mut inbound).await;
    // The listener took its one peer and is gone.
    assert_port_closed(bound).await;
}

#[tokio::test]
async fn an_ipv4_mapped_dst_addr_matches_the_ipv4_peer() {
    let server = TestServer::start_toml("").await;
    let (mut control, code, bound) =
        socks5_bind(server.addr, &atyp_for(addr("[::ffff:127.0.0.2]:0")), b"").await;
    assert_eq!(code, 0x00);
    // Listened (and replied) in IPv4, where the peer really is.
    assert!(bound.is_ipv4(), "{bound}");
    let mut stray = peer_from("127.0.0.3", bound).await;
    assert!(closed_by_peer(&mut stray).await);
    let mut inbound = peer_from("127.0.0.2", bound).await;
    let (code, named) = read_reply(&mut control).await;
    assert_eq!(code, 0x00);
    assert_eq!(named, inbound.local_addr().expect("peer addr"));
    exchange(&mut control, &mut inbound).await;
}

#[tokio::test]
async fn a_domain_dst_accepts_only_its_resolved_addresses() {
    let server = TestServer::start_toml("").await;
    let (mut control, code, bound) =
        socks5_bind(server.addr, &atyp_domain("localhost", 0), b"").await;
    assert_eq!(code, 0x00);
    let mut stray = peer_from("127.0.0.2", bound).await;
    assert!(closed_by_peer(&mut stray).await);
    let mut inbound = peer_from("127.0.0.1", bound).await;
    let (code, named) = read_reply(&mut control).await;
    assert_eq!(code, 0x00);
    assert_eq!(named, inbound.local_addr().expect("peer addr"));
    exchange(&mut control, &mut inbound).await;
    assert_eq!(server.services.stats.snapshot().bind_peers_rejected, 1);
}

#[tokio::test]
async fn bytes_sent_before_the_peer_arrives_reach_it_first() {
    let server = TestServer::start_toml("").await;
    // Some bytes in the request's own segment, more after the first reply.
    let (mut control, code, bound) =
        socks5_bind(server.addr, &atyp_for(addr("0.0.0.0:0")), b"early ").await;
    assert_eq!(code, 0x00);
    within(control.write_all(b"and waiting "))
        .await
        .expect("write");
    // Whether the server reads these while waiting (and keeps them) or the
    // relay carries them later, the peer must get them first and in order.
    let mut inbound = within(TcpStream::connect(bound))
        .await
        .expect("peer connects");
    let (code, _) = read_reply(&mut control).await;
    assert_eq!(code, 0x00);
    within(control.write_all(b"then relayed"))
        .await
        .expect("write");
    within(control.shutdown()).await.expect("half-close");
    assert_eq!(
        read_to_end(&mut inbound).await,
        b"early and waiting then relayed"
    );
    drop(inbound);
    eventually(|| server.services.stats.snapshot().sessions_active == 0).await;
    assert_eq!(
        server.services.stats.snapshot().bytes_client_to_upstream,
        "early and waiting then relayed".len() as u64
    );
}

#[tokio::test]
async fn external_address_is_advertised_with_the_real_port() {
    let server = TestServer::start_toml("[server]\nexternal_address = \"203.0.113.7\"\n").await;
    let (mut control, code, bound) =
        socks5_bind(server.addr, &atyp_for(addr("0.0.0.0:0")), b"").await;
    assert_eq!(code, 0x00);
    assert_eq!(bound.ip(), addr("203.0.113.7:0").ip());
    // The listener itself is local, on the advertised port.
    let local = std::net::SocketAddr::new(server.addr.ip(), bound.port());
    let mut inbound = within(TcpStream::connect(local))
        .await
        .expect("peer connects");
    let (code, named) = read_reply(&mut control).await;
    assert_eq!(code, 0x00);
    assert_eq!(named, inbound.local_addr().expect("peer addr"));
    exchange(&mut control, &mut inbound).await;
}

#[tokio::test]
async fn an_ipv6_dst_listens_and_replies_in_ipv6() {
    let server = TestServer::start_toml("").await;
    let (mut control, code, bound) =
        socks5_bind(server.addr, &atyp_for(addr("[::1]:0")), b"").await;
    assert_eq!(code, 0x00);
    // The route to ::1 starts at ::1, although the client came over IPv4.
    assert_eq!(bound.ip(), addr("[::1]:0").ip());
    let mut inbound = within(TcpStream::connect(bound))
        .await
        .expect("peer connects");
    let (code, named) = read_reply(&mut control).await;
    assert_eq!(code, 0x00);
    assert_eq!(named, inbound.local_addr().expect("peer addr"));
    exchange(&mut control, &mut inbound).await;
}
