//! The API's defences against slow, greedy and oversized clients, and the
//! rule that every error it can still answer is JSON.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ebbsocks::api::ServeOptions;
use ebbsocks::config::Secret;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::api::{get_json, start_api_with};
use crate::common::*;

fn options(max_connections: usize, header_read_timeout: Duration) -> ServeOptions {
    ServeOptions {
        token: None,
        max_connections,
        header_read_timeout,
        ..ServeOptions::default()
    }
}

/// Sends `request` and reads until the server closes. A reset (the server
/// closed with our bytes unread) ends the read like EOF does.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = within(TcpStream::connect(addr)).await.expect("connect api");
    let _ = within(stream.write_all(request)).await;
    read_until_closed(&mut stream).await
}

async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match within(stream.read(&mut chunk)).await {
            Ok(0) | Err(_) => return response,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
        }
    }
}

/// (status, JSON body) of a raw response; `None` when nothing came back.
fn parse(response: &[u8]) -> Option<(u16, Option<Value>)> {
    let text = std::str::from_utf8(response).expect("utf-8 response");
    let status = text.get(9..12)?.parse().expect("status code");
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body)?;
    Some((status, serde_json::from_str(body).ok()))
}

fn get(path: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra_headers}Connection: close\r\n\r\n")
        .into_bytes()
}

#[tokio::test]
async fn half_a_request_line_is_closed_at_the_header_timeout() {
    let server = TestServer::start_toml("").await;
    let timeout = Duration::from_secs(1);
    let api = start_api_with(&server, options(4, timeout)).await;
    let started = Instant::now();
    let response = exchange(api, b"GET /heal").await;
    let waited = started.elapsed();
    assert!(
        waited >= timeout - Duration::from_millis(50),
        "closed after {waited:?}"
    );
    assert!(
        parse(&response).is_none_or(|(status, _)| status != 200),
        "{response:?}"
    );
    // An idle keep-alive connection is held no longer than that either.
    let mut stream = within(TcpStream::connect(api)).await.expect("connect");
    let request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    within(stream.write_all(request)).await.expect("send");
    let response = read_until_closed(&mut stream).await;
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_while_the_first_work() {
    let server = TestServer::start_toml("").await;
    let api = start_api_with(&server, options(2, Duration::from_secs(60))).await;
    // Two connections that have not sent a byte hold both slots.
    let mut first = within(TcpStream::connect(api)).await.expect("connect");
    let _second = within(TcpStream::connect(api)).await.expect("connect");
    for _ in 0..3 {
        let response = exchange(api, &get("/healthz", "")).await;
        match parse(&response) {
            None => {} // closed before the 503 could be read
            Some((status, body)) => {
                assert_eq!(status, 503, "{response:?}");
                assert!(body.expect("JSON body")["error"].is_string());
            }
        }
    }
    // The connections within the cap are served...
    within(first.write_all(&get("/healthz", "")))
        .await
        .expect("send");
    let response = read_until_closed(&mut first).await;
    assert_eq!(parse(&response).map(|(status, _)| status), Some(200));
    // ...and once one is done, its slot takes a new connection.
    within(async {
        while parse(&exchange(api, &get("/healthz", "")).await).map(|(s, _)| s) != Some(200) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn oversized_heads_get_431_and_bodies_413_as_json() {
    let server = TestServer::start_toml("").await;
    let api = start_api_with(&server, options(4, Duration::from_secs(10))).await;
    let pad = format!("X-Pad: {}\r\n", "a".repeat(ebbsocks::api::MAX_HEAD_BYTES));
    let (status, body) = parse(&exchange(api, &get("/healthz", &pad)).await).expect("a response");
    assert_eq!(status, 431);
    assert!(body.expect("JSON body")["error"].is_string());

    // Beyond the read buffer hyper answers (without a body) or closes.
    let huge = format!(
        "X-Pad: {}\r\n",
        "a".repeat(4 * ebbsocks::api::MAX_READ_BUFFER)
    );
    let response = exchange(api, &get("/healthz", &huge)).await;
    if let Some((status, _)) = parse(&response) {
        assert_eq!(status, 431);
    }

    let request = b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nxx";
    let (status, body) = parse(&exchange(api, request).await).expect("a response");
    assert_eq!(status, 413);
    assert!(body.expect("JSON body")["error"].is_string());
}

#[tokio::test]
async fn every_error_is_json_and_the_bearer_scheme_ignores_case() {
    let server = TestServer::start_toml("").await;
    let mut options = options(4, Duration::from_secs(10));
    options.token = Some(Secret::new("s3cret"));
    let api = start_api_with(&server, options).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("Authorization: {scheme} s3cret\r\n");
        let response = exchange(api, &get("/api/stats", &auth)).await;
        assert_eq!(parse(&response).map(|(s, _)| s), Some(200), "{scheme}");
    }
    let auth = "Authorization: Basic s3cret\r\n";
    let (status, body) = parse(&exchange(api, &get("/api/stats", auth)).await).expect("response");
    assert_eq!(status, 401);
    assert!(body.expect("JSON body")["error"].is_string());
    let post =
        b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (status, body) = parse(&exchange(api, post).await).expect("response");
    assert_eq!(status, 405);
    assert!(body.expect("JSON body")["error"].is_string());
    assert_eq!(get_json(api, "/nope", Some("s3cret")).await.0, 404);
}
