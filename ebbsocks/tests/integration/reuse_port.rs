//! `server.reuse_port`: two ebbsocks processes listen on one address and
//! the kernel gives both of them connections.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::logged::LoggedServer;
use crate::common::process::START_DEADLINE;
use crate::common::upstreams::echo_server;
use crate::common::*;

fn config(listen: &str, reuse_port: bool) -> String {
    format!(
        "[server]\nlisten = \"{listen}\"\nreuse_port = {reuse_port}\n\
         [logging]\nformat = \"json\"\nlevel = \"info\"\naccess_log = true\n"
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
