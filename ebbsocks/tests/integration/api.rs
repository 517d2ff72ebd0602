//! The HTTP API against a live server.

use std::net::SocketAddr;

use ebbsocks::api::{self, ApiState, ServeOptions};
use ebbsocks::config::Secret;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::http::request_json;
use crate::common::upstreams::echo_server;
use crate::common::*;

async fn start_api(server: &TestServer, token: Option<&str>) -> SocketAddr {
    let options = ServeOptions {
        token: token.map(Secret::new),
        ..ServeOptions::default()
    };
    start_api_with(server, options).await
}

/// Serves the API of `server` on 127.0.0.1:0 as `options` say.
pub async fn start_api_with(server: &TestServer, options: ServeOptions) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind api");
    let addr = listener.local_addr().expect("addr");
    let services = &server.services;
    let state = ApiState {
        stats: services.stats.clone(),
        telemetry: services.telemetry.clone(),
        pool: services.pool.clone(),
        memory: services.memory.clone(),
    };
    tokio::spawn(api::serve_with(
        listener,
        state,
        options,
        std::future::pending(),
    ));
    addr
}

/// A plain HTTP/1.1 GET; returns (status, JSON body).
pub async fn get_json(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, Value) {
    request_json(addr, "GET", path, token).await
}

#[tokio::test]
async fn stats_count_sessions_and_bytes() {
    let server = TestServer::start_toml("").await;
    let api = start_api(&server, None).await;
    let (status, health) = get_json(api, "/healthz", None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));

    let echo = echo_server("127.0.0.1:0").await;
    let mut stream = socks5_connect(server.addr, echo).await;
    within(stream.write_all(b"12345")).await.expect("write");
    let mut back = [0u8; 5];
    within(stream.read_exact(&mut back)).await.expect("echo");
    drop(stream);
    eventually(|| server.services.stats.snapshot().sessions_active == 0).await;

    let (status, stats) = get_json(api, "/api/stats", None).await;
    assert_eq!(status, 200);
    assert_eq!(stats["sessions_total"], 1);
    assert_eq!(stats["bytes_client_to_upstream"], 5);
    assert_eq!(stats["bytes_upstream_to_client"], 5);

    let (status, pool) = get_json(api, "/api/pool/stats", None).await;
    assert_eq!(status, 200);
    assert_eq!(pool["total_created"], 1);
    assert_eq!(pool["checkout_created"], 1);
    assert_eq!(pool["spares_created"], 0);
    assert_eq!(pool["connections_in_use"], 0);
    assert!(
        pool.get("total_reused").is_none(),
        "it duplicated pool_hits"
    );

    let (status, memory) = get_json(api, "/api/memory", None).await;
    assert_eq!(status, 200);
    assert!(memory["rss_bytes"].as_u64().expect("rss_bytes") > 0);
}

#[tokio::test]
async fn token_is_required_when_configured() {
    let server = TestServer::start_toml("").await;
    let api = start_api(&server, Some("s3cret")).await;
    assert_eq!(get_json(api, "/api/stats", None).await.0, 401);
    assert_eq!(get_json(api, "/api/stats", Some("wrong")).await.0, 401);
    assert_eq!(get_json(api, "/api/stats", Some("s3cret")).await.0, 200);
    assert_eq!(get_json(api, "/healthz", None).await.0, 200);
    let (status, body) = get_json(api, "/nope", Some("s3cret")).await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn telemetry_filters_are_validated() {
    let server = TestServer::start_toml("").await;
    let api = start_api(&server, None).await;
    let (status, body) = get_json(
        api,
        "/api/telemetry/events?min_severity=warning&limit=5",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["events"].is_array());
    let (status, body) = get_json(api, "/api/telemetry/events?min_severity=loud", None).await;
    assert_eq!(status, 400);
    assert!(body["error"]
        .as_str()
        .expect("error text")
        .contains("min_severity"));
}
