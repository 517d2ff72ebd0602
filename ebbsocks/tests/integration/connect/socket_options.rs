//! TCP_NODELAY and keepalive on both legs of a session, read back from the
//! proxy's own sockets (the server runs in this process: its descriptors
//! are found in /proc/self/fd by their addresses), and the outbound address.

use std::time::Duration;

use super::*;

/// Connects through `server` to a reporting listener and returns the
/// options of the proxy's client-side and upstream-side sockets.
async fn both_legs(server: &TestServer) -> [(bool, Option<(Duration, Duration, u32)>); 2] {
    let (dest, mut peers) = reporting_listener("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("listener");
    let client = socks5_connect(server.addr, dest).await;
    let upstream_local = next_peer(&mut peers).await;
    let client_leg = socket_between(server.addr, client.local_addr().expect("addr"))
        .expect("the proxy's socket for this client");
    let upstream_leg =
        socket_between(upstream_local, dest).expect("the proxy's socket to the destination");
    [options_of(&client_leg), options_of(&upstream_leg)]
}

#[tokio::test]
async fn keepalive_and_nodelay_are_set_on_both_legs_as_configured() {
    let configured = Some((Duration::from_secs(37), Duration::from_secs(11), 5));
    for pool in [false, true] {
        let server = TestServer::start_toml(&format!(
            "[server.pool]\nenabled = {pool}\n\
             [server.keepalive]\nidle_secs = 37\ninterval_secs = 11\ncount = 5\n"
        ))
        .await;
        let [client, upstream] = both_legs(&server).await;
        assert_eq!(client, (true, configured), "client leg, pool {pool}");
        assert_eq!(upstream, (true, configured), "upstream leg, pool {pool}");
    }
    let server = TestServer::start_toml("[server.keepalive]\nenabled = false\n").await;
    let [client, upstream] = both_legs(&server).await;
    assert_eq!(client, (true, None), "client leg, keepalive off");
    assert_eq!(upstream, (true, None), "upstream leg, keepalive off");
}

#[tokio::test]
async fn the_default_keepalive_is_on_with_conservative_timings() {
    let server = TestServer::start_toml("").await;
    let defaults = Some((Duration::from_secs(60), Duration::from_secs(15), 4));
    assert_eq!(both_legs(&server).await, [(true, defaults); 2]);
}

#[tokio::test]
async fn upstream_connections_come_from_the_bind_address() {
    for pool in [false, true] {
        let server = TestServer::start_toml(&format!(
            "[server.pool]\nenabled = {pool}\n[upstream]\nbind_address = \"127.0.0.2\"\n"
        ))
        .await;
        let (dest, mut peers) = reporting_listener("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("listener");
        let _client = socks5_connect(server.addr, dest).await;
        let peer = next_peer(&mut peers).await;
        assert_eq!(peer.ip(), ip("127.0.0.2"), "pool {pool}: seen from {peer}");
        // An IPv6 destination cannot be reached from an IPv4 address.
        let (v6, _peers) = reporting_listener("[::1]:0".parse().expect("addr"))
            .await
            .expect("listener");
        let (_stream, code, _) = socks5_connect_raw(server.addr, &atyp_for(v6)).await;
        assert_eq!(code, 0x04, "pool {pool}: host unreachable");
        eventually(|| connect_failures(&server, "host_unreachable") == 1).await;
    }
}

#[tokio::test]
async fn a_bind_listens_on_the_bind_address_and_its_peer_gets_the_options() {
    let server = TestServer::start_toml(
        "[upstream]\nbind_address = \"127.0.0.2\"\n\
         [server.keepalive]\nidle_secs = 37\ninterval_secs = 11\ncount = 5\n",
    )
    .await;
    let expected = "127.0.0.1:0".parse().expect("addr");
    let (mut control, code, listening) =
        crate::bind::socks5_bind(server.addr, &atyp_for(expected), b"").await;
    assert_eq!(code, 0x00, "first reply");
    assert_eq!(
        listening.ip(),
        ip("127.0.0.2"),
        "BIND listens on the outbound address"
    );
    // The awaited peer, from 127.0.0.1 as the request said.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(expected).expect("bind the peer");
    let peer = within(socket.connect(listening))
        .await
        .expect("peer connects");
    let (code, _) = read_reply(&mut control).await;
    assert_eq!(code, 0x00, "second reply");
    let proxy_side = socket_between(listening, peer.local_addr().expect("addr"))
        .expect("the proxy's socket for the BIND peer");
    let configured = Some((Duration::from_secs(37), Duration::from_secs(11), 5));
    assert_eq!(options_of(&proxy_side), (true, configured));
}
