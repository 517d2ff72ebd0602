//! Real SOCKS clients (curl, ncat, Python's PySocks) against the real server.
//! `.ci/run` installs them; a missing client fails the test rather than
//! skipping it, so CI can never pass without running these.

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::common::upstreams::{answer_after_eof_server, http_server};
use crate::common::*;

const BODY: &str = "hello from the destination";

/// Runs `program` with `args`, feeding `stdin`; returns stdout on success.
async fn run(program: &str, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {program} (installed by .ci/run): {err}"));
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).await.expect("write stdin");
    drop(input);
    let output = within(child.wait_with_output()).await.expect("wait");
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

fn url(dest: SocketAddr) -> String {
    format!("http://localhost:{}/", dest.port())
}

#[tokio::test]
async fn curl_socks5_hostname() {
    let server = TestServer::start_toml("").await;
    let dest = http_server(BODY).await;
    let proxy = server.addr.to_string();
    let out = run(
        "curl",
        &[
            "-sS",
            "--max-time",
            "10",
            "--socks5-hostname",
            &proxy,
            &url(dest),
        ],
        b"",
    )
    .await;
    assert_eq!(out, BODY);
}

#[tokio::test]
async fn curl_socks5_with_local_resolution() {
    let server = TestServer::start_toml("").await;
    let dest = http_server(BODY).await;
    let proxy = format!("socks5://{}", server.addr);
    let target = format!("http://127.0.0.1:{}/", dest.port());
    let out = run(
        "curl",
        &["-sS", "--max-time", "10", "-x", &proxy, &target],
        b"",
    )
    .await;
    assert_eq!(out, BODY);
}

#[tokio::test]
async fn curl_with_proxy_user() {
    let hash = ebbsocks::auth::hash_password("pw-for-curl").expect("hash");
    let config = format!(
        "[auth]\nmethod = \"userpass\"\n[[auth.users]]\nusername = \"carol\"\npassword_hash = \"{hash}\"\n"
    );
    let server = TestServer::start_toml(&config).await;
    let dest = http_server(BODY).await;
    let proxy = server.addr.to_string();
    let target = url(dest);
    let args = ["-sS", "--max-time", "10", "--socks5-hostname", &proxy];
    let good = [&args[..], &["--proxy-user", "carol:pw-for-curl", &target]].concat();
    assert_eq!(run("curl", &good, b"").await, BODY);

    let bad = [&args[..], &["--proxy-user", "carol:nope", &target]].concat();
    let status = Command::new("curl")
        .args(&bad)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let status = within(status).await.expect("curl runs");
    assert!(!status.success(), "a wrong password must fail");
}

#[tokio::test]
async fn curl_socks4a() {
    let server = TestServer::start_toml("").await;
    let dest = http_server(BODY).await;
    let proxy = format!("socks4a://{}", server.addr);
    let out = run(
        "curl",
        &["-sS", "--max-time", "10", "-x", &proxy, &url(dest)],
        b"",
    )
    .await;
    assert_eq!(out, BODY);
}

#[tokio::test]
async fn ncat_half_close() {
    let server = TestServer::start_toml("").await;
    let dest = answer_after_eof_server().await;
    let proxy = server.addr.to_string();
    let port = dest.port().to_string();
    let args = [
        "--proxy",
        &proxy,
        "--proxy-type",
        "socks5",
        "127.0.0.1",
        &port,
    ];
    // ncat shuts down its sending side at stdin EOF; the answer only comes
    // if the proxy passes that FIN on and keeps the other direction open.
    let out = run("ncat", &args, b"twelve bytes").await;
    assert_eq!(out, "got 12 bytes");
}

#[tokio::test]
async fn python_pysocks_with_remote_dns_and_auth() {
    let hash = ebbsocks::auth::hash_password("py-pass").expect("hash");
    let config = format!(
        "[auth]\nmethod = \"userpass\"\n[[auth.users]]\nusername = \"py\"\npassword_hash = \"{hash}\"\n"
    );
    let server = TestServer::start_toml(&config).await;
    let dest = http_server(BODY).await;
    let script = r#"
import sys, socks
proxy_port, dest_port = int(sys.argv[1]), int(sys.argv[2])
s = socks.socksocket()
s.settimeout(10)
s.set_proxy(socks.SOCKS5, "127.0.0.1", proxy_port, rdns=True, username="py", password="py-pass")
s.connect(("localhost", dest_port))
s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.split(b"\r\n\r\n", 1)[1].decode())
"#;
    let proxy_port = server.addr.port().to_string();
    let dest_port = dest.port().to_string();
    let out = run("python3", &["-c", script, &proxy_port, &dest_port], b"").await;
    assert_eq!(out, BODY);
}
