//! Hot reload: the real binary re-reading its file on SIGHUP and on
//! `POST /api/reload` (`process.rs`), and reloads into an in-process server
//! where the test needs to look inside (`in_process.rs`).

mod in_process;
mod process;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::http::request_json;
use crate::common::process::ServerProcess;
use crate::common::*;

/// How long a reload may take to show in the log of a debug build on a
/// busy machine.
const RELOAD_DEADLINE: Duration = Duration::from_secs(20);

/// An argon2id hash with cheap parameters: logins in a debug build stay fast.
fn cheap_hash(password: &str) -> String {
    let params = Params::new(256, 1, 1, None).expect("params");
    let salt = SaltString::generate(&mut rand_core::OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing works")
        .to_string()
}

/// `[auth]` with these users, each with password `<name>-pw`.
fn users_toml(names: &[&str]) -> String {
    let mut text = String::from("[auth]\nmethod = \"userpass\"\n");
    for name in names {
        let hash = cheap_hash(&format!("{name}-pw"));
        text += &format!("[[auth.users]]\nusername = \"{name}\"\npassword_hash = \"{hash}\"\n");
    }
    text
}

impl ServerProcess {
    fn rewrite_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("rewrite the config file");
    }

    fn hangup(&self) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits");
        // SAFETY: kill(2) with a valid signal number has no memory effects.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0, "kill -HUP");
    }

    /// The next log line whose message starts with `message`; fails the
    /// test after [`RELOAD_DEADLINE`]. Returns it with the lines before it.
    fn wait_for_log(&self, message: &str) -> (Value, Vec<Value>) {
        let deadline = Instant::now() + RELOAD_DEADLINE;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.log.recv_timeout(left).unwrap_or_else(|err| {
                panic!("no log line {message:?} ({err}); it printed: {before:#?}")
            });
            let entry: Value = serde_json::from_str(&line).expect("JSON log line");
            let text = entry["fields"]["message"].as_str().unwrap_or("");
            if text.starts_with(message) {
                return (entry, before);
            }
            before.push(entry);
        }
    }

    /// Sends SIGHUP and waits for the reload's log line (its outcome).
    fn reload_by_signal(&self, text: &str, expect: &str) -> Value {
        self.rewrite_config(text);
        self.hangup();
        let (line, _) = tokio::task::block_in_place(|| self.wait_for_log(expect));
        line
    }

    /// The API address, from the line the server logged at startup.
    fn api_addr(&self) -> SocketAddr {
        self.startup_log
            .iter()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|entry| entry["fields"]["message"] == "HTTP API listening")
            .and_then(|entry| entry["fields"]["addr"].as_str()?.parse().ok())
            .expect("the server logged its API address")
    }
}

/// A plain HTTP/1.1 request without a body; returns (status, JSON body).
async fn http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    request_json(addr, method, path, token).await
}

/// Greets offering user/password and logs in; returns the stream and the
/// status byte (0 = accepted).
async fn login(proxy: SocketAddr, user: &str, pass: &str) -> (TcpStream, u8) {
    let mut stream = within(TcpStream::connect(proxy)).await.expect("connect");
    let choice = greet(&mut stream, &[0x05, 0x01, 0x02]).await;
    assert_eq!(choice, [0x05, 0x02], "the server must pick user/password");
    let status = send_login(&mut stream, user, pass).await;
    (stream, status)
}

/// A CONNECT on a stream past its method negotiation; returns the reply code.
async fn request_connect(stream: &mut TcpStream, target: SocketAddr) -> u8 {
    let mut request = vec![0x05, 0x01, 0x00];
    request.extend_from_slice(&atyp_for(target));
    within(stream.write_all(&request)).await.expect("request");
    read_reply(stream).await.0
}

/// Sends `data` and reads the echo of it.
async fn echo_round(stream: &mut TcpStream, data: &[u8]) {
    within(stream.write_all(data)).await.expect("write");
    let mut back = vec![0u8; data.len()];
    within(stream.read_exact(&mut back)).await.expect("echo");
    assert_eq!(back, data);
}
