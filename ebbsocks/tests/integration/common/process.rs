//! The real `ebbsocks` binary as a child process.
//!
//! Every wait here has a deadline: the "listening" line is read from a
//! thread that forwards stderr over a channel (a blocking read cannot time
//! out), and exit is awaited by polling `try_wait`. A server that never
//! listens or never exits fails the test with what it printed.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long a debug build on a busy machine may take to start listening.
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long SIGTERM may take to end the process: the default shutdown grace
/// (10 s) with room to spare.
pub const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// The message of the line that carries the bound address.
const LISTENING: &str = "SOCKS proxy listening";

/// The server binary on port 0; kills it when dropped.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// Log lines printed before the server said it was listening.
    pub startup_log: Vec<String>,
    /// The configuration file it runs on (kept until the process is dropped,
    /// so a reload can re-read it).
    pub config_path: PathBuf,
    /// Log lines printed after the "listening" one, as they come.
    pub log: mpsc::Receiver<String>,
    dir: PathBuf,
}

impl ServerProcess {
    /// Starts the binary and waits until it listens. The config listens on
    /// port 0 and logs JSON at `info` without an access log; `extra` may add
    /// tables other than `[server]` and `[logging]`.
    pub fn start(extra: &str) -> Self {
        Self::start_with(extra, |_| {})
    }

    /// [`ServerProcess::start`], with `configure` applied to the command
    /// before it is spawned (to set resource limits in `pre_exec`, say).
    pub fn start_with(extra: &str, configure: impl FnOnce(&mut Command)) -> Self {
        Self::start_full("access_log = false\n", extra, configure)
    }

    /// [`ServerProcess::start`] with `logging` as the body of the
    /// `[logging]` table after `format = "json"` and `level = "info"`.
    pub fn start_logging(logging: &str) -> Self {
        Self::start_full(logging, "", |_| {})
    }

    fn start_full(logging: &str, extra: &str, configure: impl FnOnce(&mut Command)) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ebbsocks-process-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("server.toml");
        std::fs::write(&config, config_text_with(logging, extra)).expect("write config");
        let mut command = Command::new(env!("CARGO_BIN_EXE_ebbsocks"));
        command
            .arg("--config")
            .arg(&config)
            // RUST_LOG overrides the configured level; inherited from the
            // test's environment it could hide the line we wait for.
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        configure(&mut command);
        let mut child = command.spawn().expect("start ebbsocks");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        // Reads until the server closes stderr, so it never blocks on a full
        // pipe; once the receiver is gone the lines are only drained.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let found = wait_for_listening(&lines, START_DEADLINE);
        match found {
            Ok((addr, startup_log)) => Self {
                child,
                addr,
                startup_log,
                config_path: config,
                log: lines,
                dir,
            },
            Err(why) => {
                std::fs::remove_dir_all(dir).expect("cleanup");
                let _ = child.kill();
                let _ = wait_until(&mut child, Instant::now() + EXIT_DEADLINE);
                panic!("ebbsocks did not start: {why}");
            }
        }
    }

    /// Lines printed since the server listened, as far as they have come.
    pub fn log_so_far(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }

    /// [`ServerProcess::terminate`], then every line the server printed
    /// after `log_so_far` until it closed stderr.
    pub fn terminate_with_log(self) -> (ExitStatus, Vec<String>) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a valid signal number has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + EXIT_DEADLINE;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("ebbsocks kept stderr open {EXIT_DEADLINE:?} after SIGTERM")
                }
            }
        }
        (self.terminate_after_signal(deadline), lines)
    }

    fn terminate_after_signal(mut self, deadline: Instant) -> ExitStatus {
        match wait_until(&mut self.child, deadline) {
            Some(status) => status,
            None => panic!("ebbsocks still running {EXIT_DEADLINE:?} after SIGTERM"),
        }
    }

    /// Sends SIGTERM and returns the exit status; fails the test if the
    /// process is still running after [`EXIT_DEADLINE`].
    pub fn terminate(mut self) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) with a valid signal number has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        match wait_until(&mut self.child, Instant::now() + EXIT_DEADLINE) {
            Some(status) => status,
            None => panic!("ebbsocks still running {EXIT_DEADLINE:?} after SIGTERM"),
        }
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
            .and_then(|rest| rest.trim().strip_suffix(" kB")?.trim().parse().ok())
            .expect("VmRSS line");
        kib * 1024
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        // SIGKILL cannot be caught, so this is quick; bounded all the same.
        let _ = wait_until(&mut self.child, Instant::now() + EXIT_DEADLINE);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The configuration [`ServerProcess::start`] writes: port 0, JSON logs at
/// `info` without an access log, then `extra` (tables other than
/// `[server]` and `[logging]`).
pub fn config_text(extra: &str) -> String {
    config_text_with("access_log = false\n", extra)
}

/// [`config_text`] with `logging` as the rest of the `[logging]` table.
fn config_text_with(logging: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [logging]\nformat = \"json\"\nlevel = \"info\"\n{logging}{extra}"
    )
}

/// Reads log lines until the "listening" one, the end of stderr or the
/// deadline; the error says which, with what was printed.
fn wait_for_listening(
    lines: &mpsc::Receiver<String>,
    within: Duration,
) -> Result<(SocketAddr, Vec<String>), String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "no \"{LISTENING}\" line within {within:?}; it printed: {seen:#?}"
                ))
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(format!(
                    "it exited (or closed stderr) before listening; it printed: {seen:#?}"
                ))
            }
        };
        let entry: serde_json::Value = serde_json::from_str(&line)
            .map_err(|_| format!("it printed a non-JSON line: {line}"))?;
        if entry["fields"]["message"] == LISTENING {
            let addr = entry["fields"]["addr"]
                .as_str()
                .ok_or_else(|| format!("no addr field in {line}"))?;
            let addr = addr
                .parse()
                .map_err(|e| format!("bad address {addr:?}: {e}"))?;
            return Ok((addr, seen));
        }
        seen.push(line);
    }
}

/// Polls for the child's exit until `deadline`; `None` if it is still
/// running. `Child::wait` has no timeout, hence the polling.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) | Err(_) => return None,
        }
    }
}

// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_server_fails_by_the_deadline() {
        let (_tx, lines) = mpsc::channel::<String>();
        let started = Instant::now();
        let err = wait_for_listening(&lines, Duration::from_millis(50)).unwrap_err();
        assert!(err.contains("within"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_server_that_exits_early_fails_with_its_output() {
        let (tx, lines) = mpsc::channel();
        tx.send(r#"{"fields":{"message":"bad config"}}"#.to_string())
            .unwrap();
        drop(tx);
        let err = wait_for_listening(&lines, START_DEADLINE).unwrap_err();
        assert!(
            err.contains("exited") && err.contains("bad config"),
            "{err}"
        );
    }

    #[test]
    fn the_listening_line_gives_the_address() {
        let (tx, lines) = mpsc::channel();
        tx.send(r#"{"fields":{"message":"starting"}}"#.to_string())
            .unwrap();
        tx.send(format!(
            r#"{{"fields":{{"message":"{LISTENING}","addr":"127.0.0.1:4321"}}}}"#
        ))
        .unwrap();
        let (addr, before) = wait_for_listening(&lines, START_DEADLINE).unwrap();
        assert_eq!(addr, "127.0.0.1:4321".parse().unwrap());
        assert_eq!(before, [r#"{"fields":{"message":"starting"}}"#]);
    }

    #[test]
    fn waiting_for_a_process_that_does_not_exit_ends_at_the_deadline() {
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let started = Instant::now();
        let status = wait_until(&mut child, Instant::now() + Duration::from_millis(100));
        assert!(status.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
        child.kill().unwrap();
        assert!(wait_until(&mut child, Instant::now() + EXIT_DEADLINE).is_some());
    }
}
