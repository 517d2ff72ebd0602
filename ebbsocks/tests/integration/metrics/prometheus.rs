//! A real Prometheus (the Debian package, installed by `.ci/run`) scrapes a
//! live server's `/metrics` on loopback, with the API token, and a counter
//! is read back through Prometheus' HTTP API after traffic.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::{get, start_api, TOKEN};
use crate::common::upstreams::echo_server;
use crate::common::*;

/// How long Prometheus may take to start, scrape, and show a value, on a
/// loaded machine.
const DEADLINE: Duration = Duration::from_secs(90);
/// Ports tried for Prometheus' own listener before giving up.
const PORT_ATTEMPTS: usize = 5;

struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second with `token`. Its
    /// own port is a free one found by binding port 0 and letting it go; if
    /// another process takes it in between, another is tried.
    async fn start(target: SocketAddr, token: &str) -> Prometheus {
        let mut logs = Vec::new();
        for attempt in 0..PORT_ATTEMPTS {
            let dir = std::env::temp_dir().join(format!(
                "ebbsocks-prometheus-{}-{attempt}-{}",
                std::process::id(),
                target.port()
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let addr = free_port();
            let config = dir.join("prometheus.yml");
            std::fs::write(
                &config,
                format!(
                    "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
                     scrape_configs:\n  - job_name: ebbsocks\n    authorization:\n      \
                     credentials: {token}\n    static_configs:\n      - targets: [\"{target}\"]\n"
                ),
            )
            .expect("write prometheus.yml");
            let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address={addr}"))
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|err| {
                    panic!("cannot run prometheus (Debian package prometheus, installed by .ci/run): {err}")
                });
            let mut prometheus = Prometheus { child, addr, dir };
            if prometheus.ready().await {
                return prometheus;
            }
            let log =
                std::fs::read_to_string(prometheus.dir.join("prometheus.log")).unwrap_or_default();
            if !log.contains("address already in use") {
                panic!("prometheus did not become ready:\n{log}");
            }
            logs.push(log);
        }
        panic!("prometheus found no free port in {PORT_ATTEMPTS} attempts:\n{logs:?}");
    }

    /// Waits for `/-/ready`; false if the process exited first.
    async fn ready(&mut self) -> bool {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if status(self.addr, "/-/ready").await == Some(200) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus not ready after {DEADLINE:?}");
    }

    /// The single value of an instant `query`, if it has exactly one.
    async fn query_one(&self, query: &str) -> Option<f64> {
        let url = format!("http://{}/api/v1/query", self.addr);
        let output = Command::new("curl")
            .args(["-sS", "--max-time", "5", "-G", "--data-urlencode"])
            .arg(format!("query={query}"))
            .arg(&url)
            .kill_on_drop(true)
            .output();
        let output = within(output)
            .await
            .unwrap_or_else(|err| panic!("cannot run curl (installed by .ci/run): {err}"));
        let body: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        let result = body["data"]["result"].as_array()?;
        match result.as_slice() {
            [only] => only["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Polls `query` until it equals `want`; fails with the last answer.
    async fn wait_for(&self, query: &str, want: f64) {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < DEADLINE {
            last = self.query_one(query).await;
            if last == Some(want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let log = std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
        panic!("{query}: wanted {want}, Prometheus said {last:?} after {DEADLINE:?}\n{log}");
    }
}

/// A loopback address with a port that was free a moment ago.
fn free_port() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
    probe.local_addr().expect("probe addr")
}

/// The status code of a GET, or `None` if nothing answers.
async fn status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = [0u8; 12];
    tokio::time::timeout(STEP, stream.read_exact(&mut head))
        .await
        .ok()?
        .ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_live_server() {
    let server = TestServer::start_toml("").await;
    let api = start_api(&server, Some(TOKEN)).await;
    let prometheus = Prometheus::start(api, TOKEN).await;
    // The first scrape went through, with the token.
    prometheus.wait_for("up{job=\"ebbsocks\"}", 1.0).await;

    let echo = echo_server("127.0.0.1:0").await;
    for _ in 0..3 {
        let mut stream = socks5_connect(server.addr, echo).await;
        let payload = [1u8; 1000];
        within(stream.write_all(&payload)).await.expect("write");
        let mut back = [0u8; 1000];
        within(stream.read_exact(&mut back)).await.expect("echo");
    }
    eventually(|| server.services.stats.snapshot().sessions_active == 0).await;

    prometheus
        .wait_for(
            "ebbsocks_relayed_bytes_total{job=\"ebbsocks\",direction=\"client_to_upstream\"}",
            3000.0,
        )
        .await;
    prometheus
        .wait_for("ebbsocks_sessions_started_total{job=\"ebbsocks\"}", 3.0)
        .await;
    // The scrape went through the token check: without it there is nothing.
    assert_eq!(get(api, "/metrics", &[]).await.status, 401);
}
