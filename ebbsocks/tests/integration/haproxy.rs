//! End to end behind a real HAProxy, run on `docs/deploy/haproxy.cfg` (the
//! file the deployment guide shows): `mode tcp`, `send-proxy-v2`, health
//! checks, two ebbsocks processes. curl, bound to its own loopback address,
//! fetches through HAProxy; the access logs name curl's address, not
//! HAProxy's; HAProxy's health checks leave no failure in the counters; and
//! a process told to stop (SIGTERM) finishes its running session while new
//! ones go to the other. `.ci/run` installs haproxy and curl.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::logged::{api_get, LoggedServer};
use crate::common::upstreams::{echo_server, http_server};
use crate::common::*;

const BODY: &str = "fetched through HAProxy";
/// curl's own source address, distinct from HAProxy's 127.0.0.1.
const CURL_SOURCE: &str = "127.0.0.7";
const HAPROXY_CFG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/deploy/haproxy.cfg");
/// Health checks every second (the file's `inter 1s`), a loaded machine.
const CHECK_DEADLINE: Duration = Duration::from_secs(20);

const EBBSOCKS_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
# Long enough that the drain below ends because the session did.
shutdown_grace_secs = 60
[server.proxy_protocol]
trusted = ["127.0.0.1/32"]
[logging]
format = "json"
level = "info"
access_log = true
[api]
enabled = true
listen = "127.0.0.1:0"
"#;

/// HAProxy in the foreground; killed when dropped, whatever the test did.
struct Haproxy {
    child: Child,
    frontend: SocketAddr,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Haproxy {
    /// Runs HAProxy on the deployment file in front of `servers`, on a free
    /// port (found by binding port 0, so another process may take it
    /// first: then it tries another). Ready once each server has counted a
    /// health check, which HAProxy starts only after its listener is bound.
    async fn start(servers: [SocketAddr; 2], apis: [SocketAddr; 2]) -> Self {
        for _attempt in 0..5 {
            let frontend = free_port();
            let child = Command::new("haproxy")
                .args(["-db", "-f", HAPROXY_CFG])
                .env("EBBSOCKS_FRONTEND", frontend.to_string())
                .env("EBBSOCKS_1", servers[0].to_string())
                .env("EBBSOCKS_2", servers[1].to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|err| panic!("cannot run haproxy (installed by .ci/run): {err}"));
            let mut haproxy = Haproxy { child, frontend };
            let deadline = tokio::time::Instant::now() + CHECK_DEADLINE;
            loop {
                if let Some(status) = haproxy.child.try_wait().expect("try_wait") {
                    let mut stderr = String::new();
                    if let Some(mut pipe) = haproxy.child.stderr.take() {
                        let _ = pipe.read_to_string(&mut stderr);
                    }
                    if stderr.contains("cannot bind") {
                        break; // the port was taken meanwhile: another one
                    }
                    panic!("haproxy exited ({status}):\n{stderr}");
                }
                if local_checks(apis[0]).await > 0 && local_checks(apis[1]).await > 0 {
                    return haproxy;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no HAProxy health check reached both servers within {CHECK_DEADLINE:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("haproxy found no free port in 5 attempts");
    }
}

fn free_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    probe.local_addr().expect("addr")
}

async fn stats(api: SocketAddr) -> Value {
    api_get(api, "/api/stats").await
}

async fn local_checks(api: SocketAddr) -> u64 {
    stats(api).await["proxy_protocol"]["local"]
        .as_u64()
        .expect("proxy_protocol.local")
}

/// curl from [`CURL_SOURCE`] through HAProxy to `target`; returns the body.
async fn curl(frontend: SocketAddr, target: SocketAddr) -> String {
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--interface", CURL_SOURCE])
        .arg("--socks5-hostname")
        .arg(frontend.to_string())
        .arg(format!("http://127.0.0.1:{}/", target.port()))
        .kill_on_drop(true)
        .output();
    let output = within(output)
        .await
        .unwrap_or_else(|err| panic!("cannot run curl (installed by .ci/run): {err}"));
    assert!(
        output.status.success(),
        "curl through HAProxy failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 body")
}

/// The access log entries of sessions to `target`.
fn sessions_to(server: &LoggedServer, target: SocketAddr) -> Vec<Value> {
    let suffix = format!(":{}", target.port());
    server
        .access_log()
        .into_iter()
        .filter(|entry| {
            entry["fields"]["destination"]
                .as_str()
                .is_some_and(|dest| dest.ends_with(&suffix))
        })
        .collect()
}

async fn until(mut check: impl FnMut() -> bool, what: &str) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {STEP:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn echo_once(stream: &mut TcpStream) {
    within(stream.write_all(b"ping")).await.expect("write");
    let mut back = [0u8; 4];
    within(stream.read_exact(&mut back)).await.expect("echo");
    assert_eq!(&back, b"ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_haproxy_reaches_both_processes_and_a_stopping_one_drains() {
    let web = http_server(BODY).await;
    let echo = echo_server("127.0.0.1:0").await;
    let mut servers = [
        LoggedServer::start(EBBSOCKS_CONFIG).await,
        LoggedServer::start(EBBSOCKS_CONFIG).await,
    ];
    let apis = [servers[0].api_addr().await, servers[1].api_addr().await];
    let haproxy = Haproxy::start([servers[0].addr, servers[1].addr], apis).await;

    // Round robin: four fetches, two for each process.
    for _ in 0..4 {
        assert_eq!(curl(haproxy.frontend, web).await, BODY);
    }
    let served = |servers: &[LoggedServer; 2]| {
        sessions_to(&servers[0], web).len() + sessions_to(&servers[1], web).len()
    };
    until(|| served(&servers) == 4, "four fetches in the access logs").await;
    for server in &servers {
        let sessions = sessions_to(server, web);
        assert!(!sessions.is_empty(), "a process got no fetch");
        for entry in sessions {
            let client = entry["fields"]["client"].as_str().expect("client field");
            assert!(
                client.starts_with(&format!("{CURL_SOURCE}:")),
                "access log names {client}"
            );
        }
    }

    // A long session through HAProxy, then SIGTERM to the process serving it.
    let mut long = socks5_connect(haproxy.frontend, echo).await;
    echo_once(&mut long).await;
    let mut active = [0, 0];
    for (i, api) in apis.iter().enumerate() {
        active[i] = stats(*api).await["sessions_active"]
            .as_u64()
            .expect("sessions_active");
    }
    assert_eq!(active.iter().sum::<u64>(), 1, "{active:?}");
    let (stopping, staying) = if active[0] == 1 { (0, 1) } else { (1, 0) };
    let before = sessions_to(&servers[staying], web).len();
    servers[stopping].sigterm();
    servers[stopping]
        .wait_for(STEP, |entry| {
            entry["fields"]["message"] == "stopped accepting; draining sessions"
        })
        .await;

    // New sessions go to the other process (HAProxy retries a refused
    // connection elsewhere until the checks mark the stopped one down).
    for _ in 0..4 {
        assert_eq!(curl(haproxy.frontend, web).await, BODY);
    }
    until(
        || sessions_to(&servers[staying], web).len() == before + 4,
        "the fetches after SIGTERM in the staying process's log",
    )
    .await;

    // The running session was never cut; once it ends, the process exits.
    echo_once(&mut long).await;
    drop(long);
    let status = servers[stopping].exit_status().await;
    assert!(status.success(), "the stopped process exited with {status}");
    let drained = sessions_to(&servers[stopping], echo);
    assert_eq!(drained.len(), 1, "the long session's access log line");
    assert_eq!(drained[0]["fields"]["bytes_up"], 8);

    // Health checks (LOCAL headers, every second) are counted as such,
    // never as failures: a few more of them first.
    let seen = local_checks(apis[staying]).await;
    let deadline = tokio::time::Instant::now() + CHECK_DEADLINE;
    while local_checks(apis[staying]).await < seen + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "HAProxy stopped checking"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let staying_stats = stats(apis[staying]).await;
    assert_eq!(
        staying_stats["handshake_failures"],
        serde_json::json!({}),
        "{staying_stats}"
    );
    assert_eq!(
        staying_stats["proxy_protocol"]["proxied"].as_u64(),
        Some(before as u64 + 4)
    );
    drop(haproxy);
}
