//! Reloads into a server started in the test, to read its counters and
//! snapshots directly.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ebbsocks::config::Config;
use ebbsocks::reload::{Outcome, ReloadReport, Reloader, Trigger};
use ebbsocks::server::Services;

use super::*;
use crate::common::upstreams::echo_server;

/// A configuration file in the temp directory, removed when dropped.
struct TempConfig(PathBuf);

impl TempConfig {
    fn new(text: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "ebbsocks-reload-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).expect("write config");
        Self(path)
    }

    fn rewrite(&self, text: &str) {
        std::fs::write(&self.0, text).expect("rewrite config");
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A server on `text`, with a reloader on the file.
async fn start(text: &str) -> (TestServer, Arc<Reloader>, TempConfig) {
    let file = TempConfig::new(text);
    let config = Config::load(&file.0).expect("valid config");
    let services = Services::new(config);
    let reloader = Reloader::new(Some(file.0.clone()), services.clone(), None);
    (TestServer::start_with(services).await, reloader, file)
}

async fn reload(reloader: &Reloader, file: &TempConfig, text: &str) -> ReloadReport {
    file.rewrite(text);
    let report = within(reloader.reload(Trigger::Api)).await;
    assert_eq!(report.outcome, Outcome::Applied, "{report:?}");
    report
}

#[tokio::test]
async fn a_rule_change_applies_to_new_sessions_and_running_ones_keep_theirs() {
    let echo = echo_server("127.0.0.1:0").await;
    let (server, reloader, file) = start("").await;
    let mut running = socks5_connect(server.addr, echo).await;
    echo_round(&mut running, b"allowed").await;

    let deny = format!(
        "[[access.rules]]\nname = \"no-echo\"\naction = \"deny\"\nports = [\"{}\"]\n",
        echo.port()
    );
    let report = reload(&reloader, &file, &format!("[access]\n{deny}")).await;
    assert_eq!(report.changed, ["access.rules"]);

    let (_, code, _) = socks5_connect_raw(server.addr, &atyp_for(echo)).await;
    assert_eq!(code, 0x02, "a new session meets the new rule");
    let stats = server.services.stats.snapshot();
    assert_eq!(stats.access_denied.get("no-echo"), Some(&1));
    // The session granted before the reload goes on.
    echo_round(&mut running, b"still relayed").await;

    reload(&reloader, &file, "").await;
    let mut again = socks5_connect(server.addr, echo).await;
    echo_round(&mut again, b"allowed again").await;
}

#[tokio::test]
async fn max_connections_resizes_without_closing_anyone() {
    let echo = echo_server("127.0.0.1:0").await;
    let (server, reloader, file) = start("[server]\nmax_connections = 1\n").await;
    let mut first = socks5_connect(server.addr, echo).await;

    let mut refused = within(TcpStream::connect(server.addr)).await.expect("tcp");
    assert!(closed_by_peer(&mut refused).await, "over the limit of 1");
    assert_eq!(server.services.stats.snapshot().refused_max_connections, 1);

    let report = reload(&reloader, &file, "[server]\nmax_connections = 2\n").await;
    assert_eq!(report.changed, ["server.max_connections"]);
    let mut second = socks5_connect(server.addr, echo).await;

    // Back to 1: both stay open and relaying; a third is refused.
    reload(&reloader, &file, "[server]\nmax_connections = 1\n").await;
    echo_round(&mut first, b"first").await;
    echo_round(&mut second, b"second").await;
    let mut third = within(TcpStream::connect(server.addr)).await.expect("tcp");
    assert!(closed_by_peer(&mut third).await, "2 open, limit 1");
    // Once both have gone, one fits again.
    drop((first, second));
    eventually(|| server.services.stats.connections_open() == 0).await;
    let mut fourth = socks5_connect(server.addr, echo).await;
    echo_round(&mut fourth, b"fourth").await;
    assert_eq!(server.services.stats.snapshot().refused_max_connections, 2);
}

#[tokio::test]
async fn a_reload_without_a_file_is_rejected_and_counted() {
    let server = TestServer::start_toml("").await;
    let reloader = Reloader::new(None, server.services.clone(), None);
    let report = within(reloader.reload(Trigger::Sighup)).await;
    assert_eq!(report.outcome, Outcome::Rejected);
    assert!(report
        .error
        .as_deref()
        .is_some_and(|e| e.contains("no file to re-read")));
    let stats = server.services.stats.snapshot();
    assert_eq!(stats.reloads.get("rejected"), Some(&1));
    assert_eq!(stats.reloads.len(), 1);
}

#[tokio::test]
async fn a_new_handshake_timeout_applies_to_the_next_connection() {
    let (server, reloader, file) = start("[server]\nhandshake_timeout_secs = 30\n").await;
    // Connected before the reload: keeps the 30 s it started with.
    let mut before = within(TcpStream::connect(server.addr)).await.expect("tcp");
    eventually(|| server.services.stats.connections_open() == 1).await;
    reload(&reloader, &file, "[server]\nhandshake_timeout_secs = 1\n").await;
    let mut after = within(TcpStream::connect(server.addr)).await.expect("tcp");
    let started = std::time::Instant::now();
    assert!(
        closed_by_peer(&mut after).await,
        "closed by the new 1 s deadline"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    server
        .handshake_failures_reach("handshake_timeout", 1)
        .await;
    // The earlier connection is still waiting under its own deadline.
    assert!(!closed_within(&mut before, Duration::from_millis(200)).await);
}

#[tokio::test]
async fn a_running_session_keeps_its_timeouts_snapshot() {
    let (server, reloader, file) = start("[server]\nhandshake_timeout_secs = 10\n").await;
    let before = server.services.config();
    reload(&reloader, &file, "[server]\nhandshake_timeout_secs = 3\n").await;
    // The snapshot taken before is unchanged; the services hold the new one.
    assert_eq!(before.server.handshake_timeout_secs, 10);
    assert_eq!(server.services.config().server.handshake_timeout_secs, 3);
}

#[tokio::test]
async fn a_connection_limit_beyond_the_open_files_limit_is_noted() {
    let (_server, reloader, file) = start("").await;
    // Twenty million descriptors: above any open-files limit Linux allows.
    let report = reload(&reloader, &file, "[server]\nmax_connections = 10000000\n").await;
    assert!(
        report.notes.iter().any(|note| note
            .starts_with("server.max_connections: the open-files limit (RLIMIT_NOFILE) is")),
        "{:?}",
        report.notes
    );
    let report = reload(&reloader, &file, "[server]\nmax_connections = 10\n").await;
    assert!(report.notes.is_empty(), "{:?}", report.notes);
}
