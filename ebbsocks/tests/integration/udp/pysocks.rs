//! PySocks, a real SOCKS5 client library, relaying UDP through the real
//! server to a local echo server, run with `python3` as in
//! `real_clients.rs`. A missing PySocks fails the test, never skips it.
//!
//! PySocks reaches the proxy over IPv4 only: its UDP control connection is
//! always an `AF_INET` socket (`self._proxyconn = _orig_socket()` in
//! `socksocket.bind`), so an IPv6 *proxy* address cannot work (the last
//! test pins that). IPv6 *destinations* do work, through an IPv4 control
//! connection; the Rust client covers an IPv6 control connection.

use std::process::Stdio;

use tokio::process::Command;

use super::*;

/// Sends three datagrams to (host, port) through the proxy, checks each
/// echo and its source, prints "ok".
const ECHO_SCRIPT: &str = r#"
import socket, sys, socks
proxy_host, proxy_port, host, port = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.set_proxy(socks.SOCKS5, proxy_host, proxy_port)
for i in range(3):
    payload = b"pysocks datagram %d" % i
    s.sendto(payload, (host, port))
    data, source = s.recvfrom(2048)
    assert data == payload, (data, payload)
    assert socket.inet_pton(family, source[0]) == socket.inet_pton(family, host), source
    assert source[1] == port, source
s.close()
print("ok")
"#;

/// Tries a UDP association with the proxy on an IPv6 address.
const IPV6_PROXY_SCRIPT: &str = r#"
import socket, sys, socks
s = socks.socksocket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(10)
s.set_proxy(socks.SOCKS5, "::1", int(sys.argv[1]))
try:
    s.sendto(b"x", ("::1", int(sys.argv[2])))
    s.recvfrom(2048)
    print("worked")
except Exception as e:
    print("failed:", type(e).__name__, e)
"#;

async fn python(args: &[&str]) -> (bool, String, String) {
    let child = Command::new("python3")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run python3 (installed by .ci/run): {err}"));
    let out = within(child.wait_with_output()).await.expect("python3");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

async fn pysocks_echo(echo_ip: &str) {
    let server = TestServer::start_toml("").await;
    let (echo, _) = echo_server(echo_ip).await;
    let (proxy_port, port) = (server.addr.port().to_string(), echo.port().to_string());
    let args = ["-c", ECHO_SCRIPT, "127.0.0.1", &proxy_port, echo_ip, &port];
    let (ok, out, err) = python(&args).await;
    assert!(ok && out.trim() == "ok", "stdout: {out}\nstderr: {err}");
    let stats = udp_stats(&server);
    assert_eq!(stats.datagrams_client_to_remote, 3);
    assert_eq!(stats.datagrams_remote_to_client, 3);
    // PySocks closes the control connection with the socket.
    eventually(|| udp_stats(&server).associations_active == 0).await;
}

#[tokio::test]
async fn pysocks_udp_to_an_ipv4_host() {
    pysocks_echo("127.0.0.1").await;
}

#[tokio::test]
async fn pysocks_udp_to_an_ipv6_host() {
    pysocks_echo("::1").await;
}

#[tokio::test]
async fn pysocks_cannot_reach_a_proxy_over_ipv6() {
    let services = ebbsocks::server::Services::new(Default::default());
    let server = TestServer::start_at("[::1]:0", services).await;
    let (echo, _) = echo_server("::1").await;
    let (proxy_port, port) = (server.addr.port().to_string(), echo.port().to_string());
    let (ok, out, err) = python(&["-c", IPV6_PROXY_SCRIPT, &proxy_port, &port]).await;
    assert!(ok, "stderr: {err}");
    // If a PySocks release fixes this, the doc comment above must change.
    assert!(out.starts_with("failed:"), "PySocks now does IPv6: {out}");
    assert_eq!(udp_stats(&server).associations_total, 0);
}
