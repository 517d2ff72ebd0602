//! Username/password authentication (RFC 1929).

use std::sync::OnceLock;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::upstreams::echo_server;
use crate::common::*;

/// Hashing is slow on purpose; hash once for all tests.
fn alice_config() -> &'static str {
    static CONFIG: OnceLock<String> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let hash = ebbsocks::auth::hash_password("wonderland").expect("hash");
        format!(
            "[auth]\nmethod = \"userpass\"\n[[auth.users]]\nusername = \"alice\"\npassword_hash = \"{hash}\"\n"
        )
    })
}

/// Greets offering user/password, sends credentials, returns the status byte.
async fn login(server: &TestServer, user: &str, pass: &str) -> (tokio::net::TcpStream, u8) {
    let mut stream = server.connect().await;
    let choice = greet(&mut stream, &[0x05, 0x02, 0x00, 0x02]).await;
    assert_eq!(choice, [0x05, 0x02], "server must pick user/password");
    let status = send_login(&mut stream, user, pass).await;
    (stream, status)
}

#[tokio::test]
async fn right_password_connects() {
    let server = TestServer::start_toml(alice_config()).await;
    let echo = echo_server("127.0.0.1:0").await;
    let (mut stream, status) = login(&server, "alice", "wonderland").await;
    assert_eq!(status, 0x00);
    let mut request = vec![0x05, 0x01, 0x00];
    request.extend_from_slice(&atyp_for(echo));
    within(stream.write_all(&request)).await.expect("request");
    let (code, _) = read_reply(&mut stream).await;
    assert_eq!(code, 0x00);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_and_close() {
    let server = TestServer::start_toml(alice_config()).await;
    for (user, pass) in [("alice", "looking-glass"), ("mallory", "wonderland")] {
        let (mut stream, status) = login(&server, user, pass).await;
        assert_ne!(status, 0x00, "{user} must be refused");
        assert!(closed_by_peer(&mut stream).await);
    }
    server.handshake_failures_reach("auth_failed", 2).await;
}

#[tokio::test]
async fn client_without_password_method_gets_no_acceptable_method() {
    let server = TestServer::start_toml(alice_config()).await;
    let mut stream = server.connect().await;
    let choice = greet(&mut stream, &[0x05, 0x01, 0x00]).await;
    assert_eq!(choice, [0x05, 0xFF]);
    assert!(closed_by_peer(&mut stream).await);
}

#[tokio::test]
async fn socks4_is_refused_when_a_password_is_required() {
    let server = TestServer::start_toml(alice_config()).await;
    let echo = echo_server("127.0.0.1:0").await;
    let mut stream = server.connect().await;
    let mut request = vec![0x04, 0x01];
    request.extend_from_slice(&echo.port().to_be_bytes());
    request.extend_from_slice(&[127, 0, 0, 1, 0]);
    within(stream.write_all(&request)).await.expect("request");
    let mut reply = [0u8; 8];
    within(stream.read_exact(&mut reply)).await.expect("reply");
    assert_eq!(reply[1], 0x5B);
    server
        .handshake_failures_reach("socks4_auth_required", 1)
        .await;
}

/// After `max_failures_per_client` wrong logins, even the right password is
/// refused (before argon2 runs), counted, and other clients are unaffected.
#[tokio::test]
async fn repeated_failures_from_one_client_are_throttled() {
    let config = alice_config().replacen(
        "method = \"userpass\"\n",
        "method = \"userpass\"\nmax_failures_per_client = 2\nfailure_window_secs = 600\n",
        1,
    );
    let server = TestServer::start_toml(&config).await;
    for guess in ["rabbit", "hatter"] {
        let (mut stream, status) = login(&server, "alice", guess).await;
        assert_ne!(status, 0x00);
        assert!(closed_by_peer(&mut stream).await);
    }
    let (mut stream, status) = login(&server, "alice", "wonderland").await;
    assert_ne!(status, 0x00, "a throttled client must be refused");
    assert!(closed_by_peer(&mut stream).await);
    server.handshake_failures_reach("auth_throttled", 1).await;
    server.handshake_failures_reach("auth_failed", 2).await;

    // The budget is per client address: ::1 is another client than 127.0.0.1.
    let v6 = TestServer::start_on("[::1]:0".parse().expect("addr"), server.services.clone()).await;
    let mut stream = v6.connect().await;
    let choice = greet(&mut stream, &[0x05, 0x01, 0x02]).await;
    assert_eq!(choice, [0x05, 0x02]);
    within(stream.write_all(&userpass("alice", "wonderland")))
        .await
        .expect("credentials");
    let mut status = [0u8; 2];
    within(stream.read_exact(&mut status))
        .await
        .expect("status");
    assert_eq!(status, [0x01, 0x00], "another client keeps its own budget");
}
