//! An association's life: it ends with its control connection or after
//! the idle timeout, the server-wide limit refuses more, and the reply
//! advertises `external_address` when one is set.

use std::time::{Duration, Instant};

use super::*;

/// A client socket connected to the relay: once nothing listens there,
/// the kernel answers a datagram with ICMP port unreachable, which a
/// connected socket reports as "connection refused" (no waiting for
/// silence).
async fn relay_is_closed(socket: &UdpSocket, relay: SocketAddr) -> bool {
    within(socket.connect(relay)).await.expect("connect");
    let probe = [0, 0, 0, 1, 127, 0, 0, 1, 0, 9];
    let _ = within(socket.send(&probe)).await;
    let mut buf = [0u8; 64];
    matches!(
        within(socket.recv(&mut buf)).await,
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

#[tokio::test]
async fn the_association_ends_with_its_control_connection() {
    let server = TestServer::start_toml("").await;
    let (echo, _) = echo_server("127.0.0.1").await;
    let assoc = Association::open(server.addr, "127.0.0.1").await;
    assoc.echo(echo, b"before").await;
    assert_eq!(udp_stats(&server).associations_active, 1);

    let Association {
        control,
        socket,
        relay,
    } = assoc;
    drop(control);
    eventually(|| udp_stats(&server).associations_active == 0).await;
    assert!(relay_is_closed(&socket, relay).await, "relay still open");
    let stats = server.services.stats.snapshot();
    assert_eq!(stats.udp.associations_total, 1);
    eventually(|| server.services.stats.connections_open() == 0).await;
}

#[tokio::test]
async fn an_idle_association_times_out_and_closes_its_control_connection() {
    let server = TestServer::start_toml("[server]\nudp_idle_timeout_secs = 1\n").await;
    let (echo, _) = echo_server("127.0.0.1").await;
    let mut assoc = Association::open(server.addr, "127.0.0.1").await;
    assoc.echo(echo, b"one").await;
    let last = Instant::now();
    assert!(closed_by_peer(&mut assoc.control).await);
    let idle = last.elapsed();
    assert!(idle >= Duration::from_millis(900), "closed after {idle:?}");
    eventually(|| udp_stats(&server).associations_active == 0).await;
    assert!(relay_is_closed(&assoc.socket, assoc.relay).await);
}

#[tokio::test]
async fn traffic_keeps_an_association_alive_past_the_idle_timeout() {
    let server = TestServer::start_toml("[server]\nudp_idle_timeout_secs = 1\n").await;
    let (echo, _) = echo_server("127.0.0.1").await;
    let assoc = Association::open(server.addr, "127.0.0.1").await;
    let start = Instant::now();
    // Paced, not waiting for readiness: each round trip is the activity.
    while start.elapsed() < Duration::from_millis(2500) {
        assoc.echo(echo, b"tick").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(udp_stats(&server).associations_active, 1);
}

#[tokio::test]
async fn associations_over_the_limit_are_refused() {
    let server = TestServer::start_toml("[server]\nmax_udp_associations = 1\n").await;
    let (echo, _) = echo_server("127.0.0.1").await;
    let first = Association::open(server.addr, "127.0.0.1").await;
    let any: SocketAddr = "0.0.0.0:0".parse().expect("addr");
    let (mut refused, code, _) = request(server.addr, any).await;
    assert_eq!(code, 0x01, "general failure when full");
    assert!(closed_by_peer(&mut refused).await);
    let stats = server.services.stats.snapshot();
    assert_eq!(stats.udp.associations_refused, 1);
    assert_eq!(
        stats.connect_failures.get("udp_associations_full"),
        Some(&1)
    );
    first.echo(echo, b"the first still works").await;

    drop(first);
    eventually(|| udp_stats(&server).associations_active == 0).await;
    let again = Association::open(server.addr, "127.0.0.1").await;
    again.echo(echo, b"a slot was freed").await;
}

#[tokio::test]
async fn the_reply_advertises_the_external_address() {
    let server = TestServer::start_toml("[server]\nexternal_address = \"203.0.113.9\"\n").await;
    let (echo, _) = echo_server("127.0.0.1").await;
    let any: SocketAddr = "0.0.0.0:0".parse().expect("addr");
    let (control, code, advertised) = request(server.addr, any).await;
    assert_eq!(code, 0x00);
    assert_eq!(advertised.ip().to_string(), "203.0.113.9");
    // The port is the real relay's: reachable locally at the same port.
    let assoc = Association {
        control,
        socket: bind_udp("127.0.0.1").await,
        relay: SocketAddr::new(server.addr.ip(), advertised.port()),
    };
    assoc.echo(echo, b"behind NAT").await;
}

/// A forced shutdown drops the association's future mid-await: its slot,
/// sockets and control connection must go with it.
#[tokio::test]
async fn a_forced_shutdown_leaves_nothing_behind() {
    let mut server = TestServer::start_toml("[server]\nshutdown_grace_secs = 0\n").await;
    let (echo, _) = echo_server("127.0.0.1").await;
    let mut assoc = Association::open(server.addr, "127.0.0.1").await;
    assoc.echo(echo, b"before the shutdown").await;
    let stopped = server.begin_shutdown();
    within(stopped)
        .await
        .expect("server task")
        .expect("clean stop");
    assert_eq!(udp_stats(&server).associations_active, 0);
    assert!(closed_by_peer(&mut assoc.control).await);
    assert!(relay_is_closed(&assoc.socket, assoc.relay).await);
}
