//! A plain HTTP/1.1 client for the API tests: one request without a body
//! on its own connection, read to the end.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::within;

/// A response: status, head (lowercase), body.
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

/// `method path` with extra header lines (`Name: value`), `Connection: close`.
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[&str]) -> Response {
    let mut stream = within(TcpStream::connect(addr)).await.expect("connect api");
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n");
    within(stream.write_all(request.as_bytes()))
        .await
        .expect("send");
    let mut response = Vec::new();
    within(stream.read_to_end(&mut response))
        .await
        .expect("response");
    let text = String::from_utf8(response).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    Response {
        status: head[9..12].parse().expect("status code"),
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// `request` with the bearer `token`, if any; returns (status, JSON body).
pub async fn request_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let headers: Vec<&str> = auth.iter().map(String::as_str).collect();
    let response = request(addr, method, path, &headers).await;
    (response.status, response.json())
}
