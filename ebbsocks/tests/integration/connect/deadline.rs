//! One deadline, `server.pool.connect_timeout_ms`, from the start of
//! resolving to an established connection: with several unanswering
//! addresses, on the pooled and the unpooled path, while resolving, and for
//! a BIND's name.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ebbsocks::config::Config;
use ebbsocks::server::Services;
use ebbsocks::upstream::resolve::Resolver;
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;

use super::*;
use crate::common::upstreams::Unanswering;

/// Three loopback addresses on one port, none of which answers a SYN.
async fn three_silent_addresses() -> (u16, Vec<Unanswering>) {
    let (first, rest) = on_one_port(
        async |port| {
            let silent = Unanswering::at(SocketAddr::new(ip("127.0.0.1"), port)).await?;
            Ok((silent.addr.port(), silent))
        },
        async |port| {
            let mut rest = Vec::new();
            for other in ["127.0.0.2", "127.0.0.3"] {
                rest.push(Unanswering::at(SocketAddr::new(ip(other), port)).await?);
            }
            Ok(rest)
        },
    )
    .await;
    let port = first.addr.port();
    let mut all = vec![first];
    all.extend(rest);
    (port, all)
}

#[tokio::test]
async fn the_deadline_covers_all_attempts_pooled_or_not() {
    let (port, _silent) = three_silent_addresses().await;
    for pool in [false, true] {
        let toml = format!(
            "[server.pool]\nenabled = {pool}\nconnect_timeout_ms = 900\n\
             [upstream]\nattempt_delay_ms = 200\n"
        );
        let config = Config::from_toml(&toml, std::path::Path::new("test.toml")).expect("valid");
        let resolver = Resolver::from_system().with_fixed(
            "silent.test",
            vec![ip("127.0.0.1"), ip("127.0.0.2"), ip("127.0.0.3")],
        );
        let server = TestServer::start_with(Services::with_resolver(config, resolver)).await;
        let started = Instant::now();
        let (mut stream, code) = connect_by_name(server.addr, "silent.test", port).await;
        let waited = started.elapsed();
        assert_eq!(code, 0x06, "pool {pool}: TTL expired is the timeout code");
        // Three addresses at 900 ms each would be 2.7 s: one deadline
        // bounds them all.
        assert!(
            waited >= Duration::from_millis(850) && waited < Duration::from_millis(1800),
            "pool {pool}: answered after {waited:?}, the deadline is 900 ms"
        );
        assert!(closed_by_peer(&mut stream).await);
        eventually(|| connect_failures(&server, "connect_timeout") == 1).await;
        let pool_stats = server.services.pool.stats();
        assert_eq!(pool_stats.connections_in_use, 0, "pool {pool}");
    }
}

/// A name server on loopback that answers every query with `rcode` and no
/// records, or never answers (`None`).
async fn fake_name_server(rcode: Option<u8>) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            let Some(rcode) = rcode else { continue };
            // The query's ID and question; QR, RD, RA and the code set.
            let query = &buf[..len];
            let mut end = 12;
            while query[end] != 0 {
                end += 1 + usize::from(query[end]);
            }
            end += 1 + 4;
            let mut answer = query[..2].to_vec();
            answer.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1, 0, 0, 0, 0, 0, 0]);
            answer.extend_from_slice(&query[12..end]);
            let _ = socket.send_to(&answer, from).await;
        }
    });
    addr
}

async fn server_asking(name_server: SocketAddr, connect_timeout_ms: u64) -> TestServer {
    TestServer::start_toml(&format!(
        "[server.pool]\nconnect_timeout_ms = {connect_timeout_ms}\n\
         [upstream.dns]\nnameservers = [\"{name_server}\"]\ntimeout_ms = 5000\n"
    ))
    .await
}

#[tokio::test]
async fn resolving_counts_against_the_deadline() {
    let server = server_asking(fake_name_server(None).await, 700).await;
    let started = Instant::now();
    let (_stream, code) = connect_by_name(server.addr, "no-answer.test", 80).await;
    let waited = started.elapsed();
    assert_eq!(code, 0x06, "a resolve timeout is a timeout");
    assert!(
        waited >= Duration::from_millis(650) && waited < Duration::from_millis(4000),
        "answered after {waited:?}; the deadline is 700 ms, the DNS timeout 5 s"
    );
    eventually(|| connect_failures(&server, "resolve_timeout") == 1).await;
}

#[tokio::test]
async fn a_name_that_does_not_exist_is_host_unreachable_and_counted_as_such() {
    let server = server_asking(fake_name_server(Some(3)).await, 5000).await;
    let (_stream, code) = connect_by_name(server.addr, "missing.test", 80).await;
    assert_eq!(code, 0x04, "host unreachable");
    eventually(|| connect_failures(&server, "resolve_not_found") == 1).await;
}

#[tokio::test]
async fn a_bind_for_a_name_resolves_within_the_deadline() {
    let server = server_asking(fake_name_server(None).await, 700).await;
    let mut stream = server.connect().await;
    assert_eq!(greet(&mut stream, &[0x05, 0x01, 0x00]).await, [0x05, 0x00]);
    let mut request = vec![0x05, 0x02, 0x00];
    request.extend_from_slice(&atyp_domain("peer.test", 0));
    within(stream.write_all(&request)).await.expect("request");
    let started = Instant::now();
    let (code, _) = read_reply(&mut stream).await;
    let waited = started.elapsed();
    assert_eq!(code, 0x06, "BIND's lookup timed out");
    assert!(waited < Duration::from_millis(4000), "{waited:?}");
    eventually(|| connect_failures(&server, "resolve_timeout") == 1).await;
}
