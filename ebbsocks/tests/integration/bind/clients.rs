//! An independent client: tests/clients/bind_client.py (Python standard
//! library only) does SOCKS5 and SOCKS4 BIND against the real server while
//! the test plays the peer.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{ChildStdout, Command};

use super::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/bind_client.py");

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    within(lines.next_line())
        .await
        .expect("read the client's output")
        .expect("the client printed a line")
}

/// Parses "WORD ip port" into an address, checking the word.
fn parse_addr(line: &str, word: &str) -> SocketAddr {
    let mut parts = line.split(' ');
    assert_eq!(parts.next(), Some(word), "{line:?}");
    let ip: IpAddr = parts.next().expect("ip").parse().expect("an address");
    let port: u16 = parts.next().expect("port").parse().expect("a port");
    SocketAddr::new(ip, port)
}

async fn python_bind(version: &str) {
    let server = TestServer::start_toml("").await;
    let mut child = Command::new("python3")
        .arg(SCRIPT)
        .args([
            &server.addr.ip().to_string(),
            &server.addr.port().to_string(),
        ])
        .args([version, "0.0.0.0", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run python3 (installed by .ci/run): {err}"));
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();

    let bound = parse_addr(&next_line(&mut lines).await, "BOUND");
    let mut inbound = within(TcpStream::connect(bound))
        .await
        .expect("peer connects");
    let named = parse_addr(&next_line(&mut lines).await, "PEER");
    assert_eq!(named, inbound.local_addr().expect("peer addr"));

    let mut got = Vec::new();
    within(inbound.read_to_end(&mut got))
        .await
        .expect("peer reads");
    assert_eq!(got, b"hello from python");
    within(inbound.write_all(b"hello from the peer"))
        .await
        .expect("write");
    drop(inbound);
    assert_eq!(next_line(&mut lines).await, "GOT hello from the peer");

    let output = within(child.wait_with_output()).await.expect("wait");
    assert!(
        output.status.success(),
        "bind_client.py {version} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(server.services.stats.snapshot().bind_requests, 1);
}

#[tokio::test]
async fn python_socks5_bind() {
    python_bind("5").await;
}

#[tokio::test]
async fn python_socks4_bind() {
    python_bind("4").await;
}
