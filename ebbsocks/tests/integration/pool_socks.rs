//! Full SOCKS flows with the pool on: hits skip the connect, used
//! connections are never reused, errors and authentication still apply.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::common::upstreams::closed_port;
use crate::common::*;

const POOL_ON: &str = "[server.pool]\nenabled = true\nmax_idle_per_dest = 2\n";

/// An echo destination that reports each accepted peer and counts the
/// connections that have ended.
struct Destination {
    addr: SocketAddr,
    peers: mpsc::UnboundedReceiver<SocketAddr>,
    closed: Arc<AtomicUsize>,
}

async fn destination() -> Destination {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, peers) = mpsc::unbounded_channel();
    let closed = Arc::new(AtomicUsize::new(0));
    let counter = closed.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, peer)) = listener.accept().await {
            let _ = tx.send(peer);
            let counter = counter.clone();
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                counter.fetch_add(1, SeqCst);
            });
        }
    });
    Destination {
        addr,
        peers,
        closed,
    }
}

async fn echo_once(stream: &mut tokio::net::TcpStream, payload: &[u8]) {
    within(stream.write_all(payload)).await.expect("write");
    let mut back = vec![0u8; payload.len()];
    within(stream.read_exact(&mut back)).await.expect("echo");
    assert_eq!(back, payload);
}

#[tokio::test]
async fn second_connect_is_a_pool_hit_on_a_fresh_connection() {
    let server = TestServer::start_toml(POOL_ON).await;
    let mut dest = destination().await;
    let pool = &server.services.pool;

    // Seen once: no spare.
    let mut first = socks5_connect(server.addr, dest.addr).await;
    echo_once(&mut first, b"first session").await;
    drop(first);
    eventually(|| dest.closed.load(SeqCst) == 1).await;
    assert_eq!(pool.stats().spares_created, 0);
    // Seen twice: in demand; once its own connect succeeded the pool warms
    // one spare connection.
    let mut second = socks5_connect(server.addr, dest.addr).await;
    echo_once(&mut second, b"second session").await;
    eventually(|| pool.stats().total_idle == 1).await;
    drop(second);
    // The used connections are closed, not kept.
    eventually(|| dest.closed.load(SeqCst) == 2).await;

    let (mut third, code, bound) = socks5_connect_raw(server.addr, &atyp_for(dest.addr)).await;
    assert_eq!(code, 0x00);
    echo_once(&mut third, b"third session").await;
    let stats = pool.stats();
    assert_eq!((stats.pool_misses, stats.pool_hits), (2, 1));
    assert_eq!(stats.connections_in_use, 1);

    // BND.ADDR is the local address of the pooled socket actually used: the
    // destination saw exactly that peer, and it is not a session's own.
    let first_peer = dest.peers.recv().await.expect("first peer");
    let second_peer = dest.peers.recv().await.expect("second peer");
    let spare_peer = dest.peers.recv().await.expect("spare peer");
    assert_eq!(bound, spare_peer);
    assert_ne!(bound, first_peer);
    assert_ne!(bound, second_peer);
    drop(third);
    eventually(|| pool.stats().connections_in_use == 0).await;
}

#[tokio::test]
async fn used_connections_never_return_to_the_pool() {
    let server = TestServer::start_toml(POOL_ON).await;
    let dest = destination().await;
    let pool = &server.services.pool;
    for round in 0..6u8 {
        let mut session = socks5_connect(server.addr, dest.addr).await;
        echo_once(&mut session, &[round; 8]).await;
        drop(session);
        eventually(|| dest.closed.load(SeqCst) == usize::from(round) + 1).await;
    }
    let stats = pool.stats();
    // Every session used its own upstream connection; every one of them
    // ended when its session did.
    assert_eq!(stats.pool_hits + stats.pool_misses, 6);
    assert_eq!(stats.checkout_created, stats.pool_misses);
    assert!(stats.total_created >= 6, "{stats:?}");
    assert!(stats.total_idle <= 2, "{stats:?}");
}

#[tokio::test]
async fn errors_still_reach_the_client_and_the_telemetry_feed() {
    let server = TestServer::start_toml(POOL_ON).await;
    let dead = closed_port().await;
    let (_stream, code, _) = socks5_connect_raw(server.addr, &atyp_for(dead)).await;
    assert_eq!(code, 0x05);
    let events = server.services.telemetry.query(&Default::default());
    assert!(
        events.iter().any(|e| e.category == "upstream"),
        "a failed upstream connect is a telemetry event: {events:?}"
    );
}

#[tokio::test]
async fn the_pool_never_bypasses_authentication() {
    let hash = ebbsocks::auth::hash_password("pool-pass").expect("hash");
    let config = format!(
        "{POOL_ON}[auth]\nmethod = \"userpass\"\n[[auth.users]]\nusername = \"u\"\npassword_hash = \"{hash}\"\n"
    );
    let server = TestServer::start_toml(&config).await;
    let dest = destination().await;
    // Mark demand through the pool directly, so an idle connection waits.
    let _ = server
        .services
        .pool
        .get(dest.addr)
        .await
        .expect("seen once");
    let _ = server
        .services
        .pool
        .get(dest.addr)
        .await
        .expect("in demand");
    eventually(|| server.services.pool.stats().total_idle == 1).await;

    let mut stream = server.connect().await;
    let choice = greet(&mut stream, &[0x05, 0x01, 0x00]).await;
    assert_eq!(choice, [0x05, 0xFF], "no password, no session");
    assert!(closed_by_peer(&mut stream).await);
    assert_eq!(server.services.pool.stats().pool_hits, 0);
}

/// Runs curl through the proxy (SOCKS5, addresses resolved by curl) and
/// returns the body.
async fn curl(proxy: SocketAddr, dest: SocketAddr) -> String {
    let output = within(
        tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--socks5"])
            .arg(proxy.to_string())
            .arg(format!("http://{dest}/"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|err| panic!("cannot run curl (installed by .ci/run): {err}"));
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 body")
}

#[tokio::test]
async fn curl_through_the_pool_one_offs_cost_one_connection_repeats_hit() {
    let server = TestServer::start_toml(POOL_ON).await;
    let pool = &server.services.pool;
    let once = crate::common::upstreams::http_server("once").await;
    let often = crate::common::upstreams::http_server("often").await;

    assert_eq!(curl(server.addr, once).await, "once");
    let stats = pool.stats();
    assert_eq!((stats.total_created, stats.spares_created), (1, 0));

    assert_eq!(curl(server.addr, often).await, "often");
    assert_eq!(pool.stats().spares_created, 0, "seen once so far");
    assert_eq!(curl(server.addr, often).await, "often");
    eventually(|| pool.stats().total_idle == 1).await;
    assert_eq!(curl(server.addr, often).await, "often");
    eventually(|| pool.stats().pending_creates == 0).await;
    let stats = pool.stats();
    assert_eq!((stats.pool_hits, stats.pool_misses), (1, 3));
    // Four CONNECTs: three opened their own connection, one took the
    // spare, whose replacement is idle now.
    assert_eq!(stats.checkout_created, 3);
    assert_eq!(stats.spares_created, 2);
    assert_eq!(stats.total_created, 5);
    assert_eq!(stats.total_idle, 1);
}
