//! The real `ebbsocks` binary as a child process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The server binary on port 0; kills it when dropped.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// Log lines printed before the server said it was listening.
    pub startup_log: Vec<String>,
}

impl ServerProcess {
    /// Starts the binary and waits until it listens. The config listens on
    /// port 0 and logs JSON without an access log; `extra` may add tables
    /// other than `[server]` and `[logging]`.
    pub fn start(extra: &str) -> Self {
        Self::start_with(extra, |_| {})
    }

    /// [`ServerProcess::start`], with `configure` applied to the command
    /// before it is spawned (to set resource limits in `pre_exec`, say).
    pub fn start_with(extra: &str, configure: impl FnOnce(&mut Command)) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ebbsocks-process-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("server.toml");
        let text =
            format!("[server]\nlisten = \"127.0.0.1:0\"\n[logging]\nformat = \"json\"\naccess_log = false\n{extra}");
        std::fs::write(&config, text).expect("write config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_ebbsocks"));
        command
            .arg("--config")
            .arg(&config)
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        configure(&mut command);
        let mut child = command.spawn().expect("start ebbsocks");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut startup_log = Vec::new();
        let addr = loop {
            let line = lines
                .next()
                .expect("ebbsocks exited before listening")
                .expect("read log line");
            let entry: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("ebbsocks printed a non-JSON line: {line}"));
            if entry["fields"]["message"] == "SOCKS proxy listening" {
                let addr = entry["fields"]["addr"].as_str().expect("addr field");
                break addr.parse().expect("socket address");
            }
            startup_log.push(line);
        };
        // Keep draining the log so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        std::fs::remove_dir_all(dir).expect("cleanup");
        Self {
            child,
            addr,
            startup_log,
        }
    }

    /// Sends SIGTERM and returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a valid signal number has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        self.child.wait().expect("wait for exit")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("server is alive");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches(" kB").parse().ok())
            .expect("VmRSS line");
        kib * 1024
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
