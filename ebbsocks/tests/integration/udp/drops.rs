//! What the relay refuses to pass on, and that each refusal is counted:
//! datagrams from another port, fragments, malformed headers (a flood of
//! them, while the association keeps working) and replies from strangers.
//!
//! Absence is checked through ordering, never by waiting: the relay handles
//! one socket's datagrams in order, so once a good datagram sent after a bad
//! one is echoed, the bad one has been handled; the counters say how.

use super::*;

#[tokio::test]
async fn datagrams_from_another_port_are_dropped() {
    let server = TestServer::start_toml("").await;
    let (echo, mut seen) = echo_server("127.0.0.1").await;
    let assoc = Association::open(server.addr, "127.0.0.1").await;
    // The first datagram fixes the client's port.
    assoc.echo(echo, b"mine").await;

    let intruder = bind_udp("127.0.0.1").await;
    let datagram = [&[0, 0, 0][..], &atyp_for(echo), b"not yours"].concat();
    within(intruder.send_to(&datagram, assoc.relay))
        .await
        .expect("send");
    drops_reach(&server, "foreign_source", 1).await;
    assoc.echo(echo, b"still mine").await;

    assert!(seen.recv().await.is_some());
    assert!(seen.recv().await.is_some());
    assert!(
        seen.try_recv().is_err(),
        "the intruder's datagram went nowhere"
    );
    assert_eq!(udp_stats(&server).datagrams_client_to_remote, 2);
}

#[tokio::test]
async fn a_declared_port_excludes_the_others_from_the_start() {
    let server = TestServer::start_toml("").await;
    let (echo, _) = echo_server("127.0.0.1").await;
    let socket = bind_udp("127.0.0.1").await;
    let assoc = Association::open_declared(server.addr, socket).await;
    // Another socket of the same host speaks first: not the declared port.
    let other = bind_udp("127.0.0.1").await;
    let datagram = [&[0, 0, 0][..], &atyp_for(echo), b"early"].concat();
    within(other.send_to(&datagram, assoc.relay))
        .await
        .expect("send");
    drops_reach(&server, "foreign_source", 1).await;
    assoc.echo(echo, b"declared").await;
}

#[tokio::test]
async fn fragments_are_dropped_and_counted() {
    let server = TestServer::start_toml("").await;
    let (echo, _) = echo_server("127.0.0.1").await;
    let assoc = Association::open(server.addr, "127.0.0.1").await;
    let fragment = [&[0, 0, 1][..], &atyp_for(echo), b"part one"].concat();
    assoc.send_raw(&fragment).await;
    // Echoed first means the fragment was not relayed.
    assoc.echo(echo, b"whole").await;
    let stats = udp_stats(&server);
    assert_eq!(stats.drops["fragmented"], 1);
    assert_eq!(stats.datagrams_client_to_remote, 1);
}

#[tokio::test]
async fn a_flood_of_malformed_datagrams_is_counted_and_harmless() {
    let server = TestServer::start_toml("").await;
    let (echo, _) = echo_server("127.0.0.1").await;
    let assoc = Association::open(server.addr, "127.0.0.1").await;
    let bad: [&[u8]; 5] = [
        &[0x00, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0, 7], // RSV not zero
        &[0x00, 0x00, 0x00, 0x09, 1, 2, 3, 4],         // unknown ATYP
        &[0x00, 0x00, 0x00, 0x01, 127, 0],             // address cut short
        &[0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x35],   // empty name
        &[0x00],                                       // almost nothing
    ];
    // In bursts (so the kernel's receive buffer never overflows and every
    // datagram reaches the server), each followed by a good round trip.
    let (bursts, per_burst) = (50, 100);
    for burst in 0..bursts {
        for i in 0..per_burst {
            assoc.send_raw(bad[(burst + i) % bad.len()]).await;
        }
        assoc.echo(echo, format!("alive {burst}").as_bytes()).await;
    }
    let stats = udp_stats(&server);
    assert_eq!(stats.drops["malformed"], (bursts * per_burst) as u64);
    assert_eq!(stats.datagrams_client_to_remote, bursts as u64);
    assert_eq!(stats.associations_active, 1);
}

#[tokio::test]
async fn replies_from_a_stranger_are_dropped() {
    let server = TestServer::start_toml("").await;
    let (echo, mut seen) = echo_server("127.0.0.1").await;
    let assoc = Association::open(server.addr, "127.0.0.1").await;
    assoc.echo(echo, b"hello").await;
    // The proxy's remote socket, as the echo server saw it.
    let remote_socket = within(seen.recv()).await.expect("a source");

    let stranger = bind_udp("127.0.0.1").await;
    within(stranger.send_to(b"unsolicited", remote_socket))
        .await
        .expect("send");
    drops_reach(&server, "unsolicited", 1).await;
    // The next datagram the client gets is the echo, not the stranger's.
    assoc.echo(echo, b"after the stranger").await;
    assert_eq!(udp_stats(&server).datagrams_remote_to_client, 2);
}
