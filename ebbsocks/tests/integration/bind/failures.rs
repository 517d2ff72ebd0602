//! BIND that ends without a peer: timeout, the client leaving, too much
//! early data, server shutdown. Each closes the listener, answers in the
//! client's version where it still can, and counts a reason.

use tokio::io::AsyncWriteExt;

use super::*;

const ONE_SECOND: &str = "[server]\nbind_timeout_secs = 1\n";

#[tokio::test]
async fn socks5_timeout_replies_ttl_expired_and_closes_the_port() {
    let server = TestServer::start_toml(ONE_SECOND).await;
    let (mut control, code, bound) =
        socks5_bind(server.addr, &atyp_for(addr("0.0.0.0:0")), b"").await;
    assert_eq!(code, 0x00);
    let started = std::time::Instant::now();
    let (code, _) = read_reply(&mut control).await;
    assert_eq!(code, 0x06, "TTL expired");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert!(closed_by_peer(&mut control).await);
    assert_port_closed(bound).await;
    assert_eq!(connect_failures(&server, "bind_timeout"), 1);
    assert_eq!(server.services.stats.snapshot().sessions_total, 0);
}

#[tokio::test]
async fn socks4_timeout_is_rejected_and_closes_the_port() {
    let server = TestServer::start_toml(ONE_SECOND).await;
    let mut control = server.connect().await;
    let request = socks4_bind_request(0, [0, 0, 0, 0], None);
    within(control.write_all(&request)).await.expect("request");
    let (status, bound) = read_socks4_reply(&mut control).await;
    assert_eq!(status, 0x5A);
    let (status, _) = read_socks4_reply(&mut control).await;
    assert_eq!(status, 0x5B, "rejected");
    assert_port_closed(bound).await;
    assert_eq!(connect_failures(&server, "bind_timeout"), 1);
}

/// A stray peer does not end the wait: the timeout still decides.
#[tokio::test]
async fn a_wrong_peer_does_not_end_the_wait() {
    let server = TestServer::start_toml(ONE_SECOND).await;
    let (mut control, _, bound) =
        socks5_bind(server.addr, &atyp_for(addr("127.0.0.2:0")), b"").await;
    let mut stray = peer_from("127.0.0.1", bound).await;
    assert!(closed_by_peer(&mut stray).await);
    let (code, _) = read_reply(&mut control).await;
    assert_eq!(code, 0x06);
    let stats = server.services.stats.snapshot();
    assert_eq!(stats.bind_peers_rejected, 1);
    assert_eq!(stats.connect_failures.get("bind_timeout"), Some(&1));
}

#[tokio::test]
async fn the_client_closing_while_waiting_closes_the_listener() {
    let server = TestServer::start_toml("").await;
    let (control, code, bound) = socks5_bind(server.addr, &atyp_for(addr("0.0.0.0:0")), b"").await;
    assert_eq!(code, 0x00);
    drop(control);
    // Counted once the listener is gone (it is closed before the count).
    eventually(|| connect_failures(&server, "bind_client_closed") == 1).await;
    assert_port_closed(bound).await;
}

#[tokio::test]
async fn a_client_half_close_while_waiting_ends_the_bind_with_a_reply() {
    let server = TestServer::start_toml("").await;
    let request = socks4_bind_request(0, [0, 0, 0, 0], None);
    let mut control = server.connect().await;
    within(control.write_all(&request)).await.expect("request");
    let (_, bound) = read_socks4_reply(&mut control).await;
    within(control.shutdown()).await.expect("half-close");
    let (status, _) = read_socks4_reply(&mut control).await;
    assert_eq!(status, 0x5B);
    assert_port_closed(bound).await;
    assert_eq!(connect_failures(&server, "bind_client_closed"), 1);
}

#[tokio::test]
async fn too_much_early_data_ends_the_bind() {
    let server = TestServer::start_toml("").await;
    let (mut control, code, bound) =
        socks5_bind(server.addr, &atyp_for(addr("0.0.0.0:0")), b"").await;
    assert_eq!(code, 0x00);
    // Over the 8 KiB the server keeps for the peer.
    within(control.write_all(&[b'x'; 9 * 1024]))
        .await
        .expect("write");
    let (code, _) = read_reply(&mut control).await;
    assert_eq!(code, 0x01, "general failure");
    assert_port_closed(bound).await;
    assert_eq!(connect_failures(&server, "bind_early_data_too_large"), 1);
}

#[tokio::test]
async fn shutdown_closes_a_waiting_bind() {
    let mut server = TestServer::start_toml("[server]\nshutdown_grace_secs = 0\n").await;
    let (mut control, code, bound) =
        socks5_bind(server.addr, &atyp_for(addr("0.0.0.0:0")), b"").await;
    assert_eq!(code, 0x00);
    let task = server.begin_shutdown();
    within(task)
        .await
        .expect("server task")
        .expect("server ran");
    assert!(closed_by_peer(&mut control).await);
    assert_port_closed(bound).await;
}
