//! Datagrams relayed both ways: IPv4, IPv6 (an IPv6 control connection and
//! destination), a name, and the counters and access log that follow.

use std::sync::Arc;

use ebbsocks::server::Services;

use super::*;

#[tokio::test]
async fn echo_through_the_proxy_over_ipv4() {
    let server = TestServer::start_toml("").await;
    let (echo, _) = echo_server("127.0.0.1").await;
    let assoc = Association::open(server.addr, "127.0.0.1").await;
    assert_eq!(
        assoc.relay.ip(),
        server.addr.ip(),
        "relay on the control connection's local IP"
    );
    assert_ne!(assoc.relay.port(), 0);

    assoc.echo(echo, b"first").await;
    assoc.echo(echo, &[0xAB; 512]).await;
    // An empty payload is a valid datagram too.
    assoc.echo(echo, b"").await;

    let stats = udp_stats(&server);
    assert_eq!(stats.associations_active, 1);
    assert_eq!(stats.associations_total, 1);
    assert_eq!(stats.datagrams_client_to_remote, 3);
    assert_eq!(stats.datagrams_remote_to_client, 3);
    // Payload bytes, without the SOCKS header.
    assert_eq!(stats.bytes_client_to_remote, 5 + 512);
    assert_eq!(stats.bytes_remote_to_client, 5 + 512);
    assert_eq!(stats.drops.values().sum::<u64>(), 0, "{:?}", stats.drops);
}

#[tokio::test]
async fn echo_through_the_proxy_over_ipv6() {
    let services = Services::new(Default::default());
    let server = TestServer::start_at("[::1]:0", Arc::clone(&services)).await;
    let (echo, _) = echo_server("::1").await;
    let assoc = Association::open(server.addr, "::1").await;
    assert_eq!(assoc.relay.ip(), "::1".parse::<std::net::IpAddr>().unwrap());
    assoc.echo(echo, b"over six").await;
    assoc.echo(echo, &[7; 1200]).await;
    assert_eq!(udp_stats(&server).datagrams_remote_to_client, 2);
}

#[tokio::test]
async fn an_ipv4_client_reaches_an_ipv6_host_and_back() {
    let server = TestServer::start_toml("").await;
    let (echo6, _) = echo_server("::1").await;
    let (echo4, _) = echo_server("127.0.0.1").await;
    let assoc = Association::open(server.addr, "127.0.0.1").await;
    // One association, both families: one remote socket of each.
    assoc.echo(echo6, b"to six").await;
    assoc.echo(echo4, b"to four").await;
    assoc.echo(echo6, b"six again").await;
}

/// `localhost` may resolve to 127.0.0.1 or ::1 first; an echo server on the
/// same port of both makes the test hold either way, and the reply header
/// says which address the proxy chose.
#[tokio::test]
async fn a_name_is_resolved_by_the_proxy() {
    let server = TestServer::start_toml("").await;
    let port = loop {
        let (v4, _) = echo_server("127.0.0.1").await;
        let v6 = std::net::SocketAddr::new("::1".parse().unwrap(), v4.port());
        if let Ok(socket) = tokio::net::UdpSocket::bind(v6).await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                    let _ = socket.send_to(&buf[..len], from).await;
                }
            });
            break v4.port();
        }
    };
    let assoc = Association::open(server.addr, "127.0.0.1").await;
    for payload in [&b"by name"[..], b"cached name"] {
        assoc.send(&atyp_domain("localhost", port), payload).await;
        let (source, back) = assoc.recv().await;
        assert!(source.ip().is_loopback(), "{source}");
        assert_eq!(source.port(), port);
        assert_eq!(back, payload);
    }
}

#[tokio::test]
async fn a_declared_client_port_is_honoured() {
    let server = TestServer::start_toml("").await;
    let (echo, _) = echo_server("127.0.0.1").await;
    let socket = bind_udp("127.0.0.1").await;
    let assoc = Association::open_declared(server.addr, socket).await;
    assoc.echo(echo, b"declared").await;
}
