//! BIND under `[access]` rules: the request is checked like a CONNECT, and
//! every inbound peer is checked too.

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::*;

const NO_BIND: &str = r#"
[[access.rules]]
name = "no-bind"
action = "deny"
commands = ["bind"]
"#;

const NOT_127_0_0_2: &str = r#"
[[access.rules]]
name = "not-127-0-0-2"
action = "deny"
destinations = ["127.0.0.2/32"]
"#;

fn denied(server: &TestServer, rule: &str) -> u64 {
    let stats = server.services.stats.snapshot();
    stats.access_denied.get(rule).copied().unwrap_or(0)
}

#[tokio::test]
async fn a_deny_rule_for_bind_refuses_socks5_and_socks4() {
    let server = TestServer::start_toml(NO_BIND).await;
    let (mut control, code, _) = socks5_bind(server.addr, &atyp_for(addr("0.0.0.0:0")), b"").await;
    assert_eq!(code, 0x02, "SOCKS5: not allowed by ruleset");
    assert!(closed_by_peer(&mut control).await);

    let mut control = server.connect().await;
    let request = socks4_bind_request(0, [0, 0, 0, 0], None);
    within(control.write_all(&request)).await.expect("request");
    let (status, _) = read_socks4_reply(&mut control).await;
    assert_eq!(status, 0x5B, "SOCKS4: rejected");

    eventually(|| denied(&server, "no-bind") == 2).await;
    let stats = server.services.stats.snapshot();
    assert_eq!(stats.bind_requests, 2);
    assert_eq!(stats.sessions_total, 0);
}

/// `ports` means DST.PORT for the request and for its peer alike, never
/// the peer's own (ephemeral) source port.
#[tokio::test]
async fn port_rules_apply_to_dst_port_for_request_and_peer() {
    let server = TestServer::start_toml(
        "[[access.rules]]\nname = \"high\"\naction = \"deny\"\nports = [\"1024-65535\"]\n",
    )
    .await;
    let (_, code, _) = socks5_bind(server.addr, &atyp_for(addr("0.0.0.0:2121")), b"").await;
    assert_eq!(code, 0x02, "refused before listening: no peer could pass");
    eventually(|| denied(&server, "high") == 1).await;

    let (mut control, code, bound) =
        socks5_bind(server.addr, &atyp_for(addr("0.0.0.0:21")), b"").await;
    assert_eq!(code, 0x00);
    let mut inbound = within(TcpStream::connect(bound))
        .await
        .expect("peer connects");
    assert!(inbound.local_addr().expect("addr").port() >= 1024);
    let (code, _) = read_reply(&mut control).await;
    assert_eq!(code, 0x00, "the peer's source port is not DST.PORT");
    exchange(&mut control, &mut inbound).await;
    assert_eq!(denied(&server, "high"), 1);
}

#[tokio::test]
async fn a_denied_dst_addr_is_refused_before_listening() {
    let server = TestServer::start_toml(NOT_127_0_0_2).await;
    let (_, code, _) = socks5_bind(server.addr, &atyp_for(addr("127.0.0.2:0")), b"").await;
    assert_eq!(code, 0x02);
    eventually(|| denied(&server, "not-127-0-0-2") == 1).await;
}

#[tokio::test]
async fn a_denied_peer_is_closed_and_an_allowed_one_still_accepted() {
    let server = TestServer::start_toml(NOT_127_0_0_2).await;
    let (mut control, code, bound) =
        socks5_bind(server.addr, &atyp_for(addr("0.0.0.0:0")), b"").await;
    assert_eq!(code, 0x00, "any peer: nothing to refuse yet");

    let mut refused = peer_from("127.0.0.2", bound).await;
    assert!(closed_by_peer(&mut refused).await);
    assert_eq!(denied(&server, "not-127-0-0-2"), 1);
    assert_eq!(server.services.stats.snapshot().bind_peers_rejected, 1);

    let mut inbound = within(TcpStream::connect(bound))
        .await
        .expect("peer connects");
    let (code, named) = read_reply(&mut control).await;
    assert_eq!(code, 0x00);
    assert_eq!(named, inbound.local_addr().expect("peer addr"));
    exchange(&mut control, &mut inbound).await;
}
