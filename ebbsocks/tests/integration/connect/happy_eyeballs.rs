//! Happy Eyeballs against `localhost`, which the resolver answers with
//! both 127.0.0.1 and ::1 (tried IPv6 first by default).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

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
