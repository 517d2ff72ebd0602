//! `access.max_sessions_per_client` and `access.max_sessions_per_user`.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::upstreams::echo_server;
use crate::common::*;

fn limit_refusals(server: &TestServer, reason: &str) -> u64 {
    let snapshot = server.services.stats.snapshot();
    snapshot
        .session_limit_refusals
        .get(reason)
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn per_client_limit_refuses_the_extra_session_until_one_ends() {
    let server = TestServer::start_toml("[access]\nmax_sessions_per_client = 2\n").await;
    let echo = echo_server("127.0.0.1:0").await;
    let mut first = socks5_connect(server.addr, echo).await;
    let _second = socks5_connect(server.addr, echo).await;
    let (_third, code, _) = socks5_connect_raw(server.addr, &atyp_for(echo)).await;
    assert_eq!(code, 0x02, "a third session from one address");
    assert_eq!(limit_refusals(&server, "max_sessions_per_client"), 1);
    // The admitted sessions keep working.
    within(first.write_all(b"ok")).await.expect("write");
    let mut back = [0u8; 2];
    within(first.read_exact(&mut back)).await.expect("echo");
    drop(first);
    // Once a session has ended, its slot is free again.
    eventually(|| server.services.stats.snapshot().sessions_active == 1).await;
    let _fourth = socks5_connect(server.addr, echo).await;
}

/// `[auth]` with alice and bob (passwords = names), hashed once.
fn two_users() -> &'static str {
    static AUTH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    AUTH.get_or_init(|| {
        let mut out = String::from("[auth]\nmethod = \"userpass\"\n");
        for name in ["alice", "bob"] {
            let hash = ebbsocks::auth::hash_password(name).expect("hash");
            out.push_str(&format!(
                "[[auth.users]]\nusername = \"{name}\"\npassword_hash = \"{hash}\"\n"
            ));
        }
        out
    })
}

/// Logs in as `user` (password = name) and sends a CONNECT to `target`.
async fn connect_as(
    proxy: std::net::SocketAddr,
    user: &str,
    target: std::net::SocketAddr,
) -> (TcpStream, u8) {
    let mut stream = within(TcpStream::connect(proxy)).await.expect("connect");
    assert_eq!(greet(&mut stream, &[0x05, 0x01, 0x02]).await, [0x05, 0x02]);
    let mut login = vec![0x01, user.len() as u8];
    login.extend_from_slice(user.as_bytes());
    login.push(user.len() as u8);
    login.extend_from_slice(user.as_bytes());
    within(stream.write_all(&login)).await.expect("login");
    let mut status = [0u8; 2];
    within(stream.read_exact(&mut status))
        .await
        .expect("status");
    assert_eq!(status, [0x01, 0x00], "login as {user}");
    let mut request = vec![0x05, 0x01, 0x00];
    request.extend_from_slice(&atyp_for(target));
    within(stream.write_all(&request)).await.expect("request");
    let code = read_reply(&mut stream).await.0;
    (stream, code)
}

#[tokio::test]
async fn per_user_limit_counts_one_user_and_leaves_others_alone() {
    let server = TestServer::start_toml(&format!(
        "{}\n[access]\nmax_sessions_per_user = 1\n",
        two_users()
    ))
    .await;
    let echo = echo_server("127.0.0.1:0").await;
    let (_alice, code) = connect_as(server.addr, "alice", echo).await;
    assert_eq!(code, 0x00);
    let (_again, code) = connect_as(server.addr, "alice", echo).await;
    assert_eq!(code, 0x02, "alice's second session");
    let (_bob, code) = connect_as(server.addr, "bob", echo).await;
    assert_eq!(code, 0x00, "bob has his own budget");
    assert_eq!(limit_refusals(&server, "max_sessions_per_user"), 1);
}
