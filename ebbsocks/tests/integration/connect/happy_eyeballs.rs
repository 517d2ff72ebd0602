//! Happy Eyeballs against `localhost`, which the resolver answers with
//! both 127.0.0.1 and ::1 (tried IPv6 first by default).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ebbsocks::config::Config;
use ebbsocks::server::Services;
use ebbsocks::upstream::resolve::Resolver;
use tokio::net::TcpSocket;

use super::*;
use crate::common::upstreams::Unanswering;

/// A listener on `listening` and, on the same port of `refusing`, a
/// socket that is bound but not listening, so connects to it are refused.
/// Returns the port, the listener's peer reports and the refusing socket.
async fn one_family_listening(
    listening: IpAddr,
    refusing: IpAddr,
) -> (u16, mpsc::Receiver<SocketAddr>, TcpSocket) {
    let ((port, peers), refuser) = on_one_port(
        async |port| {
            let (addr, peers) = reporting_listener(SocketAddr::new(listening, port)).await?;
            Ok((addr.port(), (addr.port(), peers)))
        },
        async |port| {
            let socket = if refusing.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.bind(SocketAddr::new(refusing, port))?;
            Ok(socket)
        },
    )
    .await;
    (port, peers, refuser)
}

#[tokio::test]
async fn localhost_is_reached_on_whichever_family_listens() {
    // A long attempt delay: the fallback must come from the refusal of
    // the other family's address, at once, not from the delay.
    let server = TestServer::start_toml(
        "[server.pool]\nconnect_timeout_ms = 20000\n[upstream]\nattempt_delay_ms = 10000\n",
    )
    .await;
    for (listening, refusing) in [(ip("127.0.0.1"), ip("::1")), (ip("::1"), ip("127.0.0.1"))] {
        let (port, mut peers, _refuser) = one_family_listening(listening, refusing).await;
        let started = Instant::now();
        let (_stream, code) = connect_by_name(server.addr, "localhost", port).await;
        let waited = started.elapsed();
        assert_eq!(
            code, 0x00,
            "CONNECT to localhost:{port} (listening on {listening})"
        );
        let peer = next_peer(&mut peers).await;
        assert_eq!(peer.ip(), listening, "the proxy connected from {peer}");
        assert!(
            waited < Duration::from_secs(5),
            "a refused address held the next attempt back: {waited:?}"
        );
        if listening.is_ipv4() {
            // IPv6 is preferred: ::1 was tried first, and its refusal is
            // the pool's telemetry event (the session itself succeeded).
            let refused = format!("[::1]:{port}");
            let events = server.services.telemetry.query(&Default::default());
            assert!(
                events.iter().any(|e| e.details["destination"] == refused),
                "no attempt to {refused}: {events:?}"
            );
        }
    }
    assert_eq!(connect_failures(&server, "connect_refused"), 0);
}

#[tokio::test]
async fn an_unanswering_preferred_family_costs_one_attempt_delay() {
    let server = TestServer::start_toml(
        "[server.pool]\nconnect_timeout_ms = 20000\n[upstream]\nattempt_delay_ms = 300\n",
    )
    .await;
    // ::1 never answers a SYN (full accept queue); 127.0.0.1 accepts.
    let (_silent, (v4, mut peers)) = on_one_port(
        async |port| {
            let silent = Unanswering::at(SocketAddr::new(ip("::1"), port)).await?;
            Ok((silent.addr.port(), silent))
        },
        async |port| reporting_listener(SocketAddr::new(ip("127.0.0.1"), port)).await,
    )
    .await;
    let started = Instant::now();
    let (_stream, code) = connect_by_name(server.addr, "localhost", v4.port()).await;
    let waited = started.elapsed();
    assert_eq!(code, 0x00, "CONNECT to localhost:{}", v4.port());
    assert_eq!(next_peer(&mut peers).await.ip(), ip("127.0.0.1"));
    assert!(
        waited >= Duration::from_millis(280),
        "IPv4 was tried before the ::1 attempt had its delay: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(10),
        "the fallback waited for the connect deadline: {waited:?}"
    );
}

#[tokio::test]
async fn a_warm_pooled_address_goes_before_a_silent_preferred_one() {
    // ::1 never answers; 127.0.0.1 accepts (its peer reports are dropped).
    let (_silent, (v4, _)) = on_one_port(
        async |port| {
            let silent = Unanswering::at(SocketAddr::new(ip("::1"), port)).await?;
            Ok((silent.addr.port(), silent))
        },
        async |port| reporting_listener(SocketAddr::new(ip("127.0.0.1"), port)).await,
    )
    .await;
    let config = Config::from_toml(
        "[server.pool]\nenabled = true\nconnect_timeout_ms = 20000\n\
         [upstream]\nattempt_delay_ms = 700\n",
        std::path::Path::new("test.toml"),
    )
    .expect("valid");
    let resolver =
        Resolver::from_system().with_fixed("dual.test", vec![ip("::1"), ip("127.0.0.1")]);
    let server = TestServer::start_with(Services::with_resolver(config, resolver)).await;
    let pool = server.services.pool.clone();
    // A few CONNECTs make 127.0.0.1 in demand, whatever the warm-up rule;
    // each waits behind the silent ::1 for the attempt delay.
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let (stream, code) = connect_by_name(server.addr, "dual.test", v4.port()).await;
        assert_eq!(code, 0x00);
        sessions.push(stream);
        let warmed = async {
            while !pool.has_idle(v4) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), warmed)
            .await
            .is_ok()
        {
            break;
        }
    }
    assert!(pool.has_idle(v4), "the pool never warmed {v4}");
    let hits = pool.stats().pool_hits;
    let started = Instant::now();
    let (_stream, code) = connect_by_name(server.addr, "dual.test", v4.port()).await;
    let waited = started.elapsed();
    assert_eq!(code, 0x00);
    assert_eq!(
        pool.stats().pool_hits,
        hits + 1,
        "served by the warm connection"
    );
    assert!(
        waited < Duration::from_millis(600),
        "the hit waited behind the silent ::1 ({waited:?}; attempt delay 700 ms)"
    );
}

#[tokio::test]
async fn no_more_addresses_are_tried_than_max_addresses() {
    // 127.0.0.1 refuses (bound, not listening); 127.0.0.2 accepts.
    let (_refuser, (open, _)) = on_one_port(
        async |port| {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(ip("127.0.0.1"), port))?;
            Ok((socket.local_addr()?.port(), socket))
        },
        async |port| reporting_listener(SocketAddr::new(ip("127.0.0.2"), port)).await,
    )
    .await;
    for (max, expected) in [(1, 0x05), (2, 0x00)] {
        let config = Config::from_toml(
            &format!("[upstream]\nmax_addresses = {max}\n"),
            std::path::Path::new("test.toml"),
        )
        .expect("valid");
        let resolver =
            Resolver::from_system().with_fixed("two.test", vec![ip("127.0.0.1"), ip("127.0.0.2")]);
        let server = TestServer::start_with(Services::with_resolver(config, resolver)).await;
        let (_stream, code) = connect_by_name(server.addr, "two.test", open.port()).await;
        assert_eq!(code, expected, "max_addresses = {max}");
    }
}
