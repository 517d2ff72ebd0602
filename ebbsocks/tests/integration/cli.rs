//! The `ebbsocks` binary's subcommands and startup checks.

use std::process::Command;

fn ebbsocks(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ebbsocks"))
        .args(args)
        .output()
        .expect("run ebbsocks")
}

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/config/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn default_config_prints_a_file_that_checks_out() {
    let out = ebbsocks(&["default-config"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains("listen = \"127.0.0.1:1080\""));
    let dir = std::env::temp_dir().join(format!("ebbsocks-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("default.toml");
    std::fs::write(&file, text).expect("write");
    let check = ebbsocks(&["check-config", file.to_str().expect("utf-8 path")]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    std::fs::remove_dir_all(dir).expect("cleanup");
}

#[test]
fn check_config_names_file_key_and_problem() {
    let path = fixture("invalid/open_proxy.toml");
    let out = ebbsocks(&["check-config", &path]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert!(stderr.contains(&path), "{stderr}");
    assert!(stderr.contains("server.listen"), "{stderr}");
    assert!(stderr.contains("allow_open_proxy"), "{stderr}");
}

#[test]
fn a_bad_config_stops_startup() {
    let path = fixture("invalid/unknown_key.toml");
    let out = ebbsocks(&["--config", &path]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert!(
        stderr.contains(&path) && stderr.contains("listen_addr"),
        "{stderr}"
    );
}

#[test]
fn hash_password_prints_a_verifiable_hash() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ebbsocks"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"open sesame\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).expect("utf-8");
    let hash = hash.trim();
    assert!(ebbsocks::auth::parse_hash(hash).is_ok(), "{hash}");
    assert!(!hash.contains("open sesame"));
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let server = crate::common::process::ServerProcess::start("");
    let echo = crate::common::upstreams::echo_server("127.0.0.1:0").await;
    // A session that is closed by its client before the signal lands.
    let session = crate::common::socks5_connect(server.addr, echo).await;
    drop(session);
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("join");
    assert!(status.success(), "exit status {status}");
}

/// Access-log lines wait in per-thread buffers; a clean shutdown writes
/// every one. The flush interval is longer than the test, so no line can
/// come out before SIGTERM: the shutdown flush is what writes them.
#[tokio::test]
async fn a_clean_shutdown_writes_every_access_log_line() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const SESSIONS: usize = 40;
    let server = crate::common::process::ServerProcess::start_logging(
        "access_log = true\naccess_log_flush_ms = 60000\n",
    );
    let echo = crate::common::upstreams::echo_server("127.0.0.1:0").await;
    for _ in 0..SESSIONS {
        let mut session = crate::common::socks5_connect(server.addr, echo).await;
        crate::common::within(async {
            session.write_all(b"ping").await.expect("write");
            let mut back = [0; 4];
            session.read_exact(&mut back).await.expect("echo");
            assert_eq!(&back, b"ping");
        })
        .await;
    }
    let is_access = |line: &String| {
        let entry: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        entry["target"] == "ebbsocks::access" && entry["fields"]["message"] == "session"
    };
    let early = server.log_so_far();
    assert_eq!(
        early.iter().filter(|line| is_access(line)).count(),
        0,
        "lines came out before the flush interval: {early:#?}"
    );
    let (status, lines) = tokio::task::spawn_blocking(move || server.terminate_with_log())
        .await
        .expect("join");
    assert!(status.success(), "exit status {status}");
    let logged: Vec<_> = lines.iter().filter(|line| is_access(line)).collect();
    assert_eq!(logged.len(), SESSIONS, "access lines: {logged:#?}");
    for line in logged {
        let entry: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(entry["fields"]["bytes_up"], 4, "{line}");
        assert_eq!(entry["fields"]["outcome"], "closed", "{line}");
    }
}
