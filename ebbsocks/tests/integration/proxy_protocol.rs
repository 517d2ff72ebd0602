//! `server.proxy_protocol`: the client address a trusted balancer's PROXY
//! header carries is the client for access rules, session limits and the
//! login budget; a missing, malformed, oversized or untrusted header closes
//! the connection and is counted; a LOCAL health check is no failure.

use std::net::SocketAddr;
use std::sync::OnceLock;

use ebbsocks::proto::ProxyHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::upstreams::echo_server;
use crate::common::*;

const TRUST_LOOPBACK: &str = "[server.proxy_protocol]\ntrusted = [\"127.0.0.1/32\"]\n";

fn from(source: &str) -> ProxyHeader {
    ProxyHeader::Proxied {
        source: source.parse().expect("addr"),
        destination: "127.0.0.1:1080".parse().expect("addr"),
    }
}

fn v1(header: ProxyHeader) -> Vec<u8> {
    let mut out = Vec::new();
    header.encode_v1(&mut out).expect("encodes");
    out
}

fn v2(header: ProxyHeader) -> Vec<u8> {
    let mut out = Vec::new();
    header.encode_v2(&mut out).expect("encodes");
    out
}

/// A connection that sent `header` and a greeting offering `method`, which
/// the server chose.
async fn greeted_behind(server: &TestServer, header: &[u8], method: u8) -> TcpStream {
    let mut stream = server.connect().await;
    let choice = greet(&mut stream, &header_and_greeting(header, method)).await;
    assert_eq!(choice, [0x05, method]);
    stream
}

/// Sends `header`, then a no-auth SOCKS5 CONNECT to `target` in the same
/// write (as a balancer forwards a fast client); returns the reply code.
async fn connect_behind(server: &TestServer, header: &[u8], target: SocketAddr) -> (TcpStream, u8) {
    let mut stream = greeted_behind(server, header, 0x00).await;
    let mut request = vec![0x05, 0x01, 0x00];
    request.extend_from_slice(&atyp_for(target));
    within(stream.write_all(&request)).await.expect("request");
    let (code, _) = read_reply(&mut stream).await;
    (stream, code)
}

async fn echo_once(stream: &mut TcpStream) {
    within(stream.write_all(b"ping")).await.expect("write");
    let mut back = [0u8; 4];
    within(stream.read_exact(&mut back)).await.expect("echo");
    assert_eq!(&back, b"ping");
}

/// `header` followed by a SOCKS5 greeting offering `method` alone, as one
/// write: what a balancer forwards from a fast client.
fn header_and_greeting(header: &[u8], method: u8) -> Vec<u8> {
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&[0x05, 0x01, method]);
    bytes
}

/// Sends `bytes` on a new connection: the server must close it and count
/// one handshake failure `reason`.
async fn closed_and_counted(server: &TestServer, bytes: &[u8], reason: &str) {
    let mut stream = server.connect().await;
    within(stream.write_all(bytes)).await.expect("write");
    assert!(closed_by_peer(&mut stream).await, "not closed: {reason}");
    server.handshake_failures_reach(reason, 1).await;
}

fn failures(server: &TestServer, reason: &str) -> u64 {
    let snapshot = server.services.stats.snapshot();
    snapshot
        .handshake_failures
        .get(reason)
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn access_rules_judge_the_address_the_header_carries() {
    let server = TestServer::start_toml(&format!(
        "{TRUST_LOOPBACK}[[access.rules]]\nname = \"no-doc-net\"\naction = \"deny\"\n\
         clients = [\"192.0.2.0/24\"]\n"
    ))
    .await;
    let echo = echo_server("127.0.0.1:0").await;
    // The same loopback peer, two different clients behind it.
    let (_denied, code) = connect_behind(&server, &v2(from("192.0.2.7:40000")), echo).await;
    assert_eq!(code, 0x02, "a client in the denied range");
    let (mut allowed, code) = connect_behind(&server, &v2(from("198.51.100.7:40000")), echo).await;
    assert_eq!(code, 0x00, "a client outside it");
    echo_once(&mut allowed).await;
    let snapshot = server.services.stats.snapshot();
    assert_eq!(snapshot.access_denied.get("no-doc-net"), Some(&1));
    assert_eq!(snapshot.proxy_protocol.proxied, 2);
}

#[tokio::test]
async fn version_1_headers_carry_the_client_too() {
    let server = TestServer::start_toml(&format!(
        "{TRUST_LOOPBACK}[[access.rules]]\naction = \"deny\"\nclients = [\"2001:db8::/32\"]\n"
    ))
    .await;
    let echo = echo_server("127.0.0.1:0").await;
    let v6_client = ProxyHeader::Proxied {
        source: "[2001:db8::7]:40000".parse().expect("addr"),
        destination: "[2001:db8::1]:1080".parse().expect("addr"),
    };
    let (_denied, code) = connect_behind(&server, &v1(v6_client), echo).await;
    assert_eq!(code, 0x02);
    let (mut allowed, code) = connect_behind(&server, &v1(from("198.51.100.7:40000")), echo).await;
    assert_eq!(code, 0x00);
    echo_once(&mut allowed).await;
}

#[tokio::test]
async fn per_client_limits_count_each_carried_client_apart() {
    let server = TestServer::start_toml(&format!(
        "{TRUST_LOOPBACK}[access]\nmax_sessions_per_client = 1\n"
    ))
    .await;
    let echo = echo_server("127.0.0.1:0").await;
    let (_a, code) = connect_behind(&server, &v2(from("192.0.2.1:1")), echo).await;
    assert_eq!(code, 0x00);
    let (_b, code) = connect_behind(&server, &v2(from("192.0.2.2:1")), echo).await;
    assert_eq!(code, 0x00, "another client behind the same balancer");
    let (_a_again, code) = connect_behind(&server, &v2(from("192.0.2.1:2")), echo).await;
    assert_eq!(code, 0x02, "the first client's second session");
    let refusals = server.services.stats.snapshot().session_limit_refusals;
    assert_eq!(refusals.get("max_sessions_per_client"), Some(&1));
}

/// `[auth]` with alice (password "wonderland"), one failed login per client.
fn strict_auth() -> &'static str {
    static CONFIG: OnceLock<String> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let hash = ebbsocks::auth::hash_password("wonderland").expect("hash");
        format!(
            "{TRUST_LOOPBACK}[auth]\nmethod = \"userpass\"\nmax_failures_per_client = 1\n\
             [[auth.users]]\nusername = \"alice\"\npassword_hash = \"{hash}\"\n"
        )
    })
}

/// A wrong login from `client`; returns the status byte.
async fn bad_login_behind(server: &TestServer, client: &str) -> u8 {
    let mut stream = greeted_behind(server, &v2(from(client)), 0x02).await;
    send_login(&mut stream, "alice", "wrong").await
}

#[tokio::test]
async fn the_failed_login_budget_belongs_to_the_carried_client() {
    let server = TestServer::start_toml(strict_auth()).await;
    assert_ne!(bad_login_behind(&server, "192.0.2.1:1").await, 0);
    assert_ne!(bad_login_behind(&server, "192.0.2.1:2").await, 0);
    assert_ne!(bad_login_behind(&server, "192.0.2.2:1").await, 0);
    eventually(|| {
        failures(&server, "auth_failed") == 2 && failures(&server, "auth_throttled") == 1
    })
    .await;
}

#[tokio::test]
async fn a_trusted_source_without_a_header_is_closed_and_counted() {
    let server = TestServer::start_toml(TRUST_LOOPBACK).await;
    closed_and_counted(&server, &[0x05, 0x01, 0x00], "proxy_header_missing").await;
}

#[tokio::test]
async fn a_header_from_an_untrusted_source_is_refused_and_plain_socks_still_works() {
    // Only a balancer elsewhere is trusted: loopback clients are direct.
    let server =
        TestServer::start_toml("[server.proxy_protocol]\ntrusted = [\"192.0.2.1\"]\n").await;
    let forged = header_and_greeting(&v2(from("198.51.100.9:1")), 0x00);
    closed_and_counted(&server, &forged, "proxy_header_untrusted").await;

    let echo = echo_server("127.0.0.1:0").await;
    let mut direct = socks5_connect(server.addr, echo).await;
    echo_once(&mut direct).await;
    assert_eq!(server.services.stats.snapshot().proxy_protocol.proxied, 0);
}

#[tokio::test]
async fn malformed_and_oversized_headers_are_counted_apart() {
    let server = TestServer::start_toml(TRUST_LOOPBACK).await;
    let bad_port = b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n";
    closed_and_counted(&server, bad_port, "proxy_header_invalid").await;
    let mut huge = ebbsocks::proto::PROXY_V2_SIGNATURE.to_vec();
    huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
    closed_and_counted(&server, &huge, "proxy_header_too_long").await;
}

#[tokio::test]
async fn a_header_cut_short_ends_at_the_handshake_deadline() {
    let server = TestServer::start_toml(&format!(
        "[server]\nhandshake_timeout_secs = 1\n{TRUST_LOOPBACK}"
    ))
    .await;
    closed_and_counted(&server, b"PROXY TCP4 192.0.2.", "handshake_timeout").await;
}

#[tokio::test]
async fn a_local_health_check_is_counted_and_is_no_failure() {
    let server = TestServer::start_toml(TRUST_LOOPBACK).await;
    // Closed with FIN.
    let mut check = server.connect().await;
    within(check.write_all(&v2(ProxyHeader::Local)))
        .await
        .expect("header");
    drop(check);
    // Closed with a reset, as HAProxy closes its checks.
    let check = server.connect().await;
    socket2::SockRef::from(&check)
        .set_linger(Some(std::time::Duration::ZERO))
        .expect("linger");
    let mut check = check;
    within(check.write_all(&v2(ProxyHeader::Local)))
        .await
        .expect("header");
    drop(check);
    eventually(|| {
        let snapshot = server.services.stats.snapshot();
        snapshot.proxy_protocol.local == 2 && snapshot.connections_open == 0
    })
    .await;
    let snapshot = server.services.stats.snapshot();
    assert!(
        snapshot.handshake_failures.is_empty(),
        "{:?}",
        snapshot.handshake_failures
    );

    // LOCAL followed by SOCKS: the balancer's own session, from its address.
    let echo = echo_server("127.0.0.1:0").await;
    let (mut own, code) = connect_behind(&server, &v2(ProxyHeader::Local), echo).await;
    assert_eq!(code, 0x00);
    echo_once(&mut own).await;
    assert_eq!(server.services.stats.snapshot().proxy_protocol.local, 3);
}

#[tokio::test]
async fn unknown_headers_leave_the_balancer_as_the_client() {
    let server = TestServer::start_toml(&format!(
        "{TRUST_LOOPBACK}[[access.rules]]\naction = \"deny\"\nclients = [\"127.0.0.1\"]\n"
    ))
    .await;
    let echo = echo_server("127.0.0.1:0").await;
    let (_unknown, code) = connect_behind(&server, &v1(ProxyHeader::Unknown), echo).await;
    assert_eq!(code, 0x02, "judged as the balancer 127.0.0.1");
    let (_carried, code) = connect_behind(&server, &v2(from("192.0.2.1:1")), echo).await;
    assert_eq!(code, 0x00);
    assert_eq!(server.services.stats.snapshot().proxy_protocol.unknown, 1);
}

/// The connection's log lines name the client the header carried, next to
/// the balancer's address (the span's `client` field), so a debug log
/// behind a balancer is not a list of the balancer's connections.
#[test]
fn the_connection_log_names_the_carried_client() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let server = crate::common::process::ServerProcess::start_with(TRUST_LOOPBACK, |command| {
        // Debug lines carry the connection's span; the config's level is info.
        command.env("RUST_LOG", "ebbsocks=debug");
    });
    let mut stream = std::net::TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
        .write_all(&v1(from("192.0.2.9:5555")))
        .expect("header");
    stream.write_all(&[0x05, 0x01, 0x00]).expect("greeting");
    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).expect("method choice");
    assert_eq!(choice, [0x05, 0x00]);
    drop(stream);

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = server.log.recv_timeout(left) else {
            panic!("no line of the connection's span named the carried client; saw {seen:#?}");
        };
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        let span = &parsed["span"];
        if span["client"] == "192.0.2.9:5555" {
            let peer = span["peer"].as_str().expect("the span's peer");
            assert!(
                peer.starts_with("127.0.0.1:"),
                "the peer is the balancer: {line}"
            );
            break;
        }
        seen.push(line);
    }
}
