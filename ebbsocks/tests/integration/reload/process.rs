//! The real binary, its file rewritten and re-read on SIGHUP or
//! `POST /api/reload`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use super::*;
use crate::common::pattern::{read_and_hash, PatternWriter};
use crate::common::process::{config_text, ServerProcess};
use crate::common::upstreams::echo_server;

const API: &str = "[api]\nenabled = true\nlisten = \"127.0.0.1:0\"\n";

/// [`config_text`] with `server` keys added to `[server]` and the log level set.
fn file(server: &str, level: &str, extra: &str) -> String {
    config_text(extra)
        .replacen(
            "listen = \"127.0.0.1:0\"\n",
            &format!("listen = \"127.0.0.1:0\"\n{server}"),
            1,
        )
        .replacen("level = \"info\"", &format!("level = \"{level}\""), 1)
}

/// Each reload changes something that applies in place, while the session
/// is in the middle of its transfer: the sender stops at each fifth and
/// goes on only once the reload is in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_transfer_completes_byte_exact_across_reloads() {
    const TOTAL: u64 = 64 << 20;
    const RELOADS: u64 = 4;
    let server = ServerProcess::start(API);
    let echo = echo_server("127.0.0.1:0").await;
    let stream = socks5_connect(server.addr, echo).await;
    let (reader, mut writer) = stream.into_split();
    let sent = Arc::new(AtomicU64::new(0));
    let go_on = Arc::new(Semaphore::new(0));
    let sender = {
        let (sent, go_on) = (sent.clone(), go_on.clone());
        tokio::spawn(async move {
            let mut pattern = PatternWriter::new();
            let mut stops = (1..=RELOADS).map(|k| k * (TOTAL / (RELOADS + 1)));
            let mut next_stop = stops.next();
            while pattern.sent() < TOTAL {
                if next_stop.is_some_and(|stop| pattern.sent() >= stop) {
                    sent.store(pattern.sent(), Ordering::SeqCst);
                    go_on.acquire().await.expect("open").forget();
                    next_stop = stops.next();
                }
                pattern.write_chunk(&mut writer).await;
            }
            writer.shutdown().await.expect("shutdown");
            pattern.hash()
        })
    };
    let receiver = tokio::spawn(read_and_hash(reader));
    for round in 1..=RELOADS {
        let reached = round * (TOTAL / (RELOADS + 1));
        eventually(|| sent.load(Ordering::SeqCst) >= reached).await;
        let text = file(
            &format!(
                "max_connections = {}\nidle_timeout_secs = {}\n",
                100 + round,
                60 + round
            ),
            if round % 2 == 1 { "debug" } else { "info" },
            &format!("{API}[access]\nmax_sessions_per_client = {}\n", 10 + round),
        );
        let line = server.reload_by_signal(&text, "configuration reloaded");
        let changed = line["fields"]["changed"].as_str().unwrap_or_default();
        assert!(changed.contains("server.max_connections"), "{line}");
        go_on.add_permits(1);
    }
    let sent_hash = within(sender).await.expect("sender");
    let (received, received_hash) = tokio::time::timeout(RELOAD_DEADLINE * 3, receiver)
        .await
        .expect("the transfer finishes")
        .expect("receiver");
    assert_eq!(received, TOTAL);
    assert_eq!(
        received_hash, sent_hash,
        "the echo differs from what was sent"
    );
    let (_, stats) = http_json(server.api_addr(), "GET", "/api/stats", None).await;
    assert_eq!(stats["reloads"]["applied"], RELOADS, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_user_keeps_its_session_and_cannot_start_another() {
    let server = ServerProcess::start(&format!("{API}{}", users_toml(&["alice", "bob"])));
    let echo = echo_server("127.0.0.1:0").await;
    let (mut bob, status) = login(server.addr, "bob", "bob-pw").await;
    assert_eq!(status, 0, "bob logs in before the reload");
    assert_eq!(request_connect(&mut bob, echo).await, 0x00);
    echo_round(&mut bob, b"before").await;

    let line = server.reload_by_signal(
        &config_text(&format!("{API}{}", users_toml(&["alice"]))),
        "configuration reloaded",
    );
    assert!(
        line["fields"]["changed"]
            .as_str()
            .is_some_and(|changed| changed.contains("auth.users")),
        "{line}"
    );
    // Bob's session goes on; bob cannot log in again; alice can.
    echo_round(&mut bob, b"after the reload").await;
    let (_, status) = login(server.addr, "bob", "bob-pw").await;
    assert_ne!(status, 0, "a removed user must not start a session");
    let (mut alice, status) = login(server.addr, "alice", "alice-pw").await;
    assert_eq!(status, 0);
    assert_eq!(request_connect(&mut alice, echo).await, 0x00);
    echo_round(&mut alice, b"alice").await;
    echo_round(&mut bob, b"still there").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_keeps_the_running_config_and_is_counted() {
    let server = ServerProcess::start(API);
    let api = server.api_addr();
    // userpass without users: a validation error with a key.
    let bad = config_text(&format!("{API}[auth]\nmethod = \"userpass\"\n"));
    let line = server.reload_by_signal(&bad, "configuration reload rejected");
    let error = line["fields"]["error"].as_str().expect("error field");
    let path = server.config_path.display().to_string();
    assert!(error.contains(&path), "names the file: {error}");
    assert!(error.contains("key `auth.users`"), "names the key: {error}");
    assert!(
        error.contains("no users are configured"),
        "says why: {error}"
    );

    // Still running on the old file: no authentication.
    let echo = echo_server("127.0.0.1:0").await;
    let mut stream = socks5_connect(server.addr, echo).await;
    echo_round(&mut stream, b"old config").await;

    let (status, report) = http_json(api, "POST", "/api/reload", None).await;
    assert_eq!(status, 422, "{report}");
    assert_eq!(report["outcome"], "rejected");
    assert!(report["error"].as_str().is_some_and(|e| e.contains(&path)));

    let (_, events) = http_json(api, "GET", "/api/telemetry/events?min_severity=error", None).await;
    let rejected: Vec<&Value> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["category"] == "config")
        .collect();
    assert_eq!(rejected.len(), 2, "{events}");
    assert!(rejected[0]["details"]["error"]
        .as_str()
        .is_some_and(|e| e.contains("auth.users")));

    // The file put right: nothing differs from what runs.
    server.rewrite_config(&config_text(API));
    let (status, report) = http_json(api, "POST", "/api/reload", None).await;
    assert_eq!(
        (status, report["outcome"].as_str()),
        (200, Some("unchanged"))
    );
    let (_, stats) = http_json(api, "GET", "/api/stats", None).await;
    assert_eq!(
        stats["reloads"],
        serde_json::json!({"rejected": 2, "unchanged": 1})
    );
}

/// `curl -X POST` the way an operator would; returns (status, JSON body).
async fn curl_post(url: &str, token: Option<&str>) -> (u16, Value) {
    let mut command = tokio::process::Command::new("curl");
    command.args([
        "-sS",
        "--max-time",
        "10",
        "-X",
        "POST",
        "-w",
        "\n%{http_code}",
    ]);
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = within(command.arg(url).output())
        .await
        .expect("curl must be installed (Debian package curl)");
    assert!(output.status.success(), "curl failed: {output:?}");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (
        status.parse().expect("status code"),
        serde_json::from_str(body).expect("JSON body"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_reload_requires_the_token_and_the_new_token_replaces_the_old() {
    let with_token = |token: &str| config_text(&format!("{API}token = \"{token}\"\n"));
    let server = ServerProcess::start(&format!("{API}token = \"old-token\"\n"));
    let api = server.api_addr();
    let url = format!("http://{api}/api/reload");

    let (status, body) = curl_post(&url, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = curl_post(&url, Some("wrong")).await;
    assert_eq!(status, 401, "{body}");

    server.rewrite_config(&with_token("new-token"));
    let (status, report) = curl_post(&url, Some("old-token")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["outcome"], "applied");
    assert_eq!(report["trigger"], "api");
    assert_eq!(report["changed"], serde_json::json!(["api.token"]));
    assert_eq!(report["restart_needed"], serde_json::json!([]));
    let text = report.to_string();
    assert!(!text.contains("new-token") && !text.contains("old-token"));

    let (status, _) = http_json(api, "GET", "/api/stats", Some("old-token")).await;
    assert_eq!(status, 401, "the old token no longer works");
    let (status, stats) = http_json(api, "GET", "/api/stats", Some("new-token")).await;
    assert_eq!(status, 200);
    assert_eq!(stats["reloads"], serde_json::json!({"applied": 1}));

    // A change that needs a restart is reported and the server stays as it is.
    let moved = with_token("new-token").replace(
        "[api]\nenabled = true\nlisten = \"127.0.0.1:0\"",
        "[api]\nenabled = true\nlisten = \"127.0.0.1:1\"",
    );
    server.rewrite_config(&moved);
    let (status, report) = curl_post(&url, Some("new-token")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["changed"], serde_json::json!([]));
    assert_eq!(report["restart_needed"][0]["key"], "api.listen");
    let (status, _) = http_json(api, "GET", "/healthz", None).await;
    assert_eq!(status, 200, "the API still listens where it did");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_level_change_takes_effect() {
    let server = ServerProcess::start(API);
    let api = server.api_addr();
    let failed_handshakes = move || async move {
        let (_, stats) = http_json(api, "GET", "/api/stats", None).await;
        let by_reason = stats["handshake_failures"].as_object().cloned();
        by_reason.map_or(0, |m| m.values().filter_map(Value::as_u64).sum::<u64>())
    };
    // A client that is not SOCKS: the failure is logged at debug.
    let proxy = server.addr;
    let not_socks = move || async move {
        let mut stream = within(TcpStream::connect(proxy)).await.expect("connect");
        within(stream.write_all(b"\x07junk")).await.expect("write");
        assert!(closed_by_peer(&mut stream).await);
    };
    not_socks().await;
    within(async {
        while failed_handshakes().await < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    let (_, before) = {
        server.rewrite_config(&file("", "debug", API));
        server.hangup();
        tokio::task::block_in_place(|| server.wait_for_log("configuration reloaded"))
    };
    let debug_lines = |lines: &[Value]| {
        lines
            .iter()
            .filter(|l| l["fields"]["message"] == "handshake failed")
            .count()
    };
    assert_eq!(
        debug_lines(&before),
        0,
        "at info, no debug line: {before:#?}"
    );

    not_socks().await;
    let (line, _) = tokio::task::block_in_place(|| server.wait_for_log("handshake failed"));
    assert_eq!(line["level"], "DEBUG", "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_added_by_a_reload_protects_an_api_that_had_none() {
    let server = ServerProcess::start(API);
    let api = server.api_addr();
    let (status, _) = http_json(api, "GET", "/api/stats", None).await;
    assert_eq!(status, 200, "no token configured yet");
    server.rewrite_config(&config_text(&format!("{API}token = \"fresh\"\n")));
    let (status, report) = http_json(api, "POST", "/api/reload", None).await;
    assert_eq!((status, report["outcome"].as_str()), (200, Some("applied")));
    let (status, _) = http_json(api, "GET", "/api/stats", None).await;
    assert_eq!(status, 401, "the token now protects the API");
    let (status, _) = http_json(api, "POST", "/api/reload", None).await;
    assert_eq!(status, 401, "reloading too");
    let (status, _) = http_json(api, "GET", "/api/stats", Some("fresh")).await;
    assert_eq!(status, 200);
    let (status, _) = http_json(api, "GET", "/healthz", None).await;
    assert_eq!(status, 200, "health stays open");
}
