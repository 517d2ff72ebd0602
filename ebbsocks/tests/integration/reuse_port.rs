//! `server.reuse_port`: two ebbsocks processes listen on one address and
//! the kernel gives both of them connections.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::logged::{api_get, LoggedServer};
use crate::common::process::START_DEADLINE;
use crate::common::upstreams::echo_server;
use crate::common::*;

fn config(listen: &str, reuse_port: bool) -> String {
    format!(
        "[server]\nlisten = \"{listen}\"\nreuse_port = {reuse_port}\n\
         [logging]\nformat = \"json\"\nlevel = \"info\"\naccess_log = true\n"
    )
}

/// [`config`] with reuse_port, a long shutdown grace and the API on.
fn draining_config(listen: &str) -> String {
    format!(
        "[server]\nlisten = \"{listen}\"\nreuse_port = true\nshutdown_grace_secs = 60\n\
         [logging]\nformat = \"json\"\nlevel = \"info\"\naccess_log = true\n\
         [api]\nenabled = true\nlisten = \"127.0.0.1:0\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_port_and_both_serve() {
    let first = LoggedServer::start(&config("127.0.0.1:0", true)).await;
    let second = LoggedServer::start(&config(&first.addr.to_string(), true)).await;
    assert_eq!(second.addr, first.addr);
    let echo = echo_server("127.0.0.1:0").await;
    // The kernel picks a listener by a hash of the client's address and
    // port: 40 connections all landing on one of two has odds of 2^-39.
    const SESSIONS: usize = 40;
    for _ in 0..SESSIONS {
        let mut stream = socks5_connect(first.addr, echo).await;
        within(stream.write_all(b"hi")).await.expect("write");
        let mut back = [0u8; 2];
        within(stream.read_exact(&mut back)).await.expect("echo");
    }
    // Each session is logged when it ends, by the process that served it.
    let logged = || first.access_log().len() + second.access_log().len();
    within(async {
        while logged() < SESSIONS {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    let (a, b) = (first.access_log().len(), second.access_log().len());
    eprintln!("sessions served: {a} and {b}");
    assert_eq!(a + b, SESSIONS);
    assert!(
        a > 0 && b > 0,
        "one process got every connection: {a} and {b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_reuse_port_the_second_process_cannot_bind() {
    let first = LoggedServer::start(&config("127.0.0.1:0", true)).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_ebbsocks"))
        .arg("--config")
        .arg({
            let path =
                std::env::temp_dir().join(format!("ebbsocks-noreuse-{}.toml", std::process::id()));
            std::fs::write(&path, config(&first.addr.to_string(), false)).expect("write config");
            path
        })
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(START_DEADLINE, output)
        .await
        .expect("the second process exits")
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("server.listen") && stderr.contains("in use"),
        "{stderr}"
    );
}

/// A rolling restart on one box: one of two processes sharing the port is
/// told to stop while it serves a session. Its session carries on; every
/// new connection goes to the other process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_process_drains_while_the_other_takes_new_connections() {
    let mut first = LoggedServer::start(&draining_config("127.0.0.1:0")).await;
    let mut second = LoggedServer::start(&draining_config(&first.addr.to_string())).await;
    assert_eq!(second.addr, first.addr);
    let apis = [first.api_addr().await, second.api_addr().await];
    let echo = echo_server("127.0.0.1:0").await;

    // Sessions until one lands on the first process; keep that one open.
    let mut held = None;
    for _ in 0..40 {
        let mut stream = socks5_connect(first.addr, echo).await;
        within(stream.write_all(b"hi")).await.expect("write");
        let mut back = [0u8; 2];
        within(stream.read_exact(&mut back)).await.expect("echo");
        let on_first = api_get(apis[0], "/api/stats").await["sessions_active"] == 1;
        if on_first {
            held = Some(stream);
            break;
        }
    }
    let mut held = held.expect("one of 40 connections reached the first process");
    let second_before = second.access_log().len();

    first.sigterm();
    first
        .wait_for(STEP, |entry| {
            entry["fields"]["message"] == "stopped accepting; draining sessions"
        })
        .await;
    const AFTER: usize = 20;
    for _ in 0..AFTER {
        let mut stream = socks5_connect(second.addr, echo).await;
        within(stream.write_all(b"hi")).await.expect("write");
        let mut back = [0u8; 2];
        within(stream.read_exact(&mut back)).await.expect("echo");
    }
    // All of them ended in the second process's access log.
    within(async {
        while second.access_log().len() < second_before + AFTER {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;

    // The held session still relays, and the first process exits once it ends.
    within(held.write_all(b"still")).await.expect("write");
    let mut back = [0u8; 5];
    within(held.read_exact(&mut back))
        .await
        .expect("echo after SIGTERM");
    drop(held);
    assert!(first.exit_status().await.success());
}
