//! The real `ebbsocks` binary with a configuration of the test's own, whose
//! every JSON log line is kept: for tests that read its access log or wait
//! for what it says (several processes, a balancer in front).
//!
//! Lines are collected by a thread (a blocking read cannot time out); every
//! wait polls them with a deadline and fails the test with what the server
//! printed. The process is killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::process::{EXIT_DEADLINE, START_DEADLINE};

pub struct LoggedServer {
    child: Child,
    /// The SOCKS listener's address, from its "listening" line.
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl LoggedServer {
    /// Starts the binary on `config` (a whole TOML file, which must set
    /// `logging.format = "json"`) and waits until it listens.
    pub async fn start(config: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ebbsocks-logged-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, config).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ebbsocks"))
            .arg("--config")
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ebbsocks");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("log lines").push(line);
            }
        });
        let mut server = Self {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            lines,
        };
        let listening = server
            .wait_for(START_DEADLINE, |entry| {
                entry["fields"]["message"] == "SOCKS proxy listening"
            })
            .await;
        let _ = std::fs::remove_file(path);
        server.addr = listening["fields"]["addr"]
            .as_str()
            .and_then(|addr| addr.parse().ok())
            .expect("the listening line names the address");
        server
    }

    /// Every JSON line printed so far.
    pub fn entries(&self) -> Vec<Value> {
        let lines = self.lines.lock().expect("log lines");
        lines
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The access log so far: one entry per finished session.
    pub fn access_log(&self) -> Vec<Value> {
        self.entries()
            .into_iter()
            .filter(|entry| entry["target"] == "ebbsocks::access")
            .collect()
    }

    /// Waits until a line satisfies `found`, and returns it; fails the test
    /// with the output so far after `limit`, or when the process exits.
    pub async fn wait_for(&mut self, limit: Duration, found: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(entry) = self.entries().into_iter().find(|entry| found(entry)) {
                return entry;
            }
            let exited = self.child.try_wait().expect("try_wait");
            if exited.is_some() || tokio::time::Instant::now() >= deadline {
                let output = self.lines.lock().expect("log lines").join("\n");
                panic!(
                    "ebbsocks ({}) did not print the line awaited within {limit:?}; output:\n{output}",
                    match exited {
                        Some(status) => format!("exited: {status}"),
                        None => "still running".into(),
                    }
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The address of the HTTP API, from its "listening" line.
    pub async fn api_addr(&mut self) -> SocketAddr {
        let line = self
            .wait_for(START_DEADLINE, |entry| {
                entry["fields"]["message"] == "HTTP API listening"
            })
            .await;
        line["fields"]["addr"]
            .as_str()
            .and_then(|addr| addr.parse().ok())
            .expect("the API line names the address")
    }

    pub fn sigterm(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a valid signal number has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    /// Waits for the process to exit, failing the test after [`EXIT_DEADLINE`].
    pub async fn exit_status(&mut self) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + EXIT_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ebbsocks still running {EXIT_DEADLINE:?} after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET path` on the API at `addr`, as JSON (HTTP/1.0: the body ends at EOF).
pub async fn api_get(addr: SocketAddr, path: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = super::within(tokio::net::TcpStream::connect(addr))
        .await
        .expect("connect to the API");
    let request = format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n");
    super::within(stream.write_all(request.as_bytes()))
        .await
        .expect("request");
    let mut response = Vec::new();
    super::within(stream.read_to_end(&mut response))
        .await
        .expect("response");
    let text = String::from_utf8(response).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    serde_json::from_str(body).expect("a JSON body")
}
