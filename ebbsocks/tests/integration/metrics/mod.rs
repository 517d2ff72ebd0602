//! `GET /metrics` against a live server: the token rule, the two formats,
//! bytes counted while a session runs, and the real `promtool` on the
//! output. `prometheus.rs` has a real Prometheus scrape it.

mod prometheus;

use std::net::SocketAddr;
use std::process::Stdio;

use ebbsocks::api::ServeOptions;
use ebbsocks::config::Secret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::api::{get_json, start_api_with};
use crate::common::http::request;
use crate::common::upstreams::echo_server;
use crate::common::*;

const TOKEN: &str = "metrics-test-token";

pub(crate) async fn start_api(server: &TestServer, token: Option<&str>) -> SocketAddr {
    let options = ServeOptions {
        token: token.map(Secret::new),
        ..ServeOptions::default()
    };
    start_api_with(server, options).await
}

pub(crate) use crate::common::http::Response;

/// A plain HTTP/1.1 GET with extra header lines (`Name: value`).
pub(crate) async fn get(addr: SocketAddr, path: &str, headers: &[&str]) -> Response {
    request(addr, "GET", path, headers).await
}

fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}")
}

/// The value of the sample line `key` (`name{labels}`), if present.
fn sample(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.rsplit_once(' ').filter(|(k, _)| *k == key))
        .map(|(_, value)| value.parse().expect("numeric sample"))
}

#[tokio::test]
async fn metrics_follow_the_token_rule() {
    let server = TestServer::start_toml("").await;
    let api = start_api(&server, Some(TOKEN)).await;

    let refused = get(api, "/metrics", &[]).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    let error: serde_json::Value = serde_json::from_str(&refused.body).expect("JSON error");
    assert!(error["error"].is_string());
    let wrong = get(api, "/metrics", &["Authorization: Bearer nope"]).await;
    assert_eq!(wrong.status, 401);

    let plain = get(api, "/metrics", &[&bearer()]).await;
    assert_eq!(plain.status, 200);
    assert!(
        plain
            .head
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{}",
        plain.head
    );
    assert!(plain
        .body
        .contains("# TYPE ebbsocks_sessions_started_total counter"));
    assert!(!plain.body.contains("# EOF"));

    let accept = "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5";
    let open = get(api, "/metrics", &[&bearer(), accept]).await;
    assert_eq!(open.status, 200);
    assert!(
        open.head
            .contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{}",
        open.head
    );
    assert!(open.body.ends_with("# EOF\n"));
    assert!(open
        .body
        .contains("# TYPE ebbsocks_sessions_started counter"));
}

#[tokio::test]
async fn relayed_bytes_show_while_the_session_runs() {
    let server = TestServer::start_toml("").await;
    let api = start_api(&server, None).await;
    let echo = echo_server("127.0.0.1:0").await;
    let mut stream = socks5_connect(server.addr, echo).await;
    let payload = vec![7u8; 100_000];
    within(stream.write_all(&payload)).await.expect("write");
    let mut back = vec![0u8; payload.len()];
    within(stream.read_exact(&mut back)).await.expect("echo");

    // The session is still open: the bytes must already be counted.
    let (_, stats) = get_json(api, "/api/stats", None).await;
    assert_eq!(stats["sessions_active"], 1);
    assert_eq!(stats["bytes_client_to_upstream"], 100_000, "{stats}");
    // The echo's bytes were read by the client, so the relay moved them all.
    assert_eq!(stats["bytes_upstream_to_client"], 100_000, "{stats}");
    let metrics = get(api, "/metrics", &[]).await.body;
    let up = "ebbsocks_relayed_bytes_total{direction=\"client_to_upstream\"}";
    let down = "ebbsocks_relayed_bytes_total{direction=\"upstream_to_client\"}";
    assert_eq!(sample(&metrics, up), Some(100_000.0));
    assert_eq!(sample(&metrics, down), Some(100_000.0));

    // Ending the session adds nothing twice.
    within(stream.write_all(b"tail")).await.expect("write");
    let mut tail = [0u8; 4];
    within(stream.read_exact(&mut tail)).await.expect("echo");
    drop(stream);
    eventually(|| server.services.stats.snapshot().sessions_active == 0).await;
    let (_, stats) = get_json(api, "/api/stats", None).await;
    assert_eq!(stats["bytes_client_to_upstream"], 100_004, "{stats}");
    assert_eq!(stats["bytes_upstream_to_client"], 100_004, "{stats}");
    let metrics = get(api, "/metrics", &[]).await.body;
    assert_eq!(
        sample(&metrics, "ebbsocks_sessions_started_total"),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "ebbsocks_sessions_active"), Some(0.0));
    assert_eq!(
        sample(&metrics, "ebbsocks_handshake_duration_seconds_count"),
        Some(1.0)
    );
    let misses = "ebbsocks_upstream_connect_duration_seconds_count{pool=\"miss\"}";
    assert_eq!(sample(&metrics, misses), Some(1.0));
    // No label names the destination a client chose.
    assert!(!metrics.contains(&echo.to_string()), "{metrics}");
}

#[tokio::test]
async fn failures_are_counted_by_reason() {
    let hash = ebbsocks::auth::hash_password("right").expect("hash");
    let server = TestServer::start_toml(&format!(
        "[auth]\nmethod = \"userpass\"\n[[auth.users]]\nusername = \"alice\"\npassword_hash = \"{hash}\"\n"
    ))
    .await;
    let api = start_api(&server, None).await;
    // A wrong password: an auth failure, and so a handshake failure.
    let mut client = server.connect().await;
    assert_eq!(greet(&mut client, &[5, 1, 2]).await, [5, 2]);
    let mut login = vec![1, 5];
    login.extend_from_slice(b"alice");
    login.push(5);
    login.extend_from_slice(b"wrong");
    within(client.write_all(&login)).await.expect("send login");
    let mut status = [0u8; 2];
    within(client.read_exact(&mut status))
        .await
        .expect("auth reply");
    assert_eq!(status, [1, 1], "refused");
    server.handshake_failures_reach("auth_failed", 1).await;

    let metrics = get(api, "/metrics", &[]).await.body;
    let key = |name: &str, reason: &str| format!("{name}{{reason=\"{reason}\"}}");
    let auth = "ebbsocks_auth_failures_total";
    let handshake = "ebbsocks_handshake_failures_total";
    assert_eq!(sample(&metrics, &key(auth, "auth_failed")), Some(1.0));
    assert_eq!(sample(&metrics, &key(auth, "auth_throttled")), Some(0.0));
    assert_eq!(sample(&metrics, &key(handshake, "auth_failed")), Some(1.0));
    // No label names the user a client sent.
    assert!(!metrics.contains("alice"), "{metrics}");
}

#[tokio::test]
async fn promtool_accepts_the_output() {
    let server = TestServer::start_toml("").await;
    let api = start_api(&server, None).await;
    // Some traffic first, so labelled families have samples.
    let echo = echo_server("127.0.0.1:0").await;
    let mut stream = socks5_connect(server.addr, echo).await;
    within(stream.write_all(b"ping")).await.expect("write");
    let mut back = [0u8; 4];
    within(stream.read_exact(&mut back)).await.expect("echo");
    drop(stream);
    eventually(|| server.services.stats.snapshot().sessions_active == 0).await;
    let mut bad = server.connect().await;
    within(bad.write_all(&[9, 9, 9])).await.expect("write");
    server.handshake_failures_reach("unknown_version", 1).await;

    let response = get(api, "/metrics", &[]).await;
    assert_eq!(response.status, 200);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| {
            panic!("cannot run promtool (Debian package prometheus, installed by .ci/run): {err}")
        });
    let mut input = promtool.stdin.take().expect("stdin");
    within(input.write_all(response.body.as_bytes()))
        .await
        .expect("write stdin");
    drop(input);
    let output = within(promtool.wait_with_output()).await.expect("wait");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "promtool check metrics: {}\n{said}",
        output.status
    );
}
