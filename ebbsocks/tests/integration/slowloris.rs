//! Slowloris at small scale: many connections send part of a greeting and
//! stall. A legitimate client is still served while they hold, and every
//! stalled connection is closed by the server at the handshake deadline, not
//! before. `pulse slowloris` runs the same attack at scale against a release
//! build (docs/BENCHMARKS.md, "Attacks and faults").

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::common::upstreams::echo_server;
use crate::common::*;

const STALLED: usize = 200;
const DEADLINE: Duration = Duration::from_secs(1);

/// Opens a connection, sends 3 of the 4 bytes of a greeting offering two
/// methods, and waits for the server to close it. Returns the time from the
/// partial greeting to the close, or panics if the server answered.
async fn stall(proxy: std::net::SocketAddr) -> (Instant, Duration) {
    let mut stream = within(TcpStream::connect(proxy)).await.expect("connect");
    within(stream.write_all(&[0x05, 0x02, 0x00]))
        .await
        .expect("partial greeting");
    let sent = Instant::now();
    let mut buf = [0u8; 16];
    match within(stream.read(&mut buf)).await {
        Ok(0) | Err(_) => (sent, sent.elapsed()),
        Ok(n) => panic!("the server answered a partial greeting: {:?}", &buf[..n]),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_greetings_are_closed_at_the_deadline_while_a_client_is_served() {
    let server = TestServer::start_toml("[server]\nhandshake_timeout_secs = 1\n").await;
    let echo = echo_server("127.0.0.1:0").await;

    // All stalled connections open and counted by the server before the
    // legitimate client starts, so it is served during the attack.
    let mut stalled = JoinSet::new();
    for _ in 0..STALLED {
        stalled.spawn(stall(server.addr));
    }
    eventually(|| server.services.stats.connections_open() == STALLED as u64).await;

    let started = Instant::now();
    let mut client = socks5_connect(server.addr, echo).await;
    within(client.write_all(b"still served"))
        .await
        .expect("write");
    let mut back = [0u8; 12];
    within(client.read_exact(&mut back)).await.expect("echo");
    assert_eq!(&back, b"still served");
    let served_in = started.elapsed();
    let served_at = Instant::now();

    let mut closed_after = Vec::with_capacity(STALLED);
    let mut first_close = None::<Instant>;
    while let Some(done) = within(stalled.join_next()).await {
        let (sent, after) = done.expect("stalled connection task");
        let at = sent + after;
        first_close = Some(first_close.map_or(at, |first| first.min(at)));
        closed_after.push(after);
    }
    closed_after.sort();
    let (min, max) = (closed_after[0], closed_after[STALLED - 1]);
    eprintln!(
        "{STALLED} stalled: closed after {min:?} .. {max:?}; legitimate CONNECT + echo took {served_in:?}"
    );
    // The legitimate client was served while every stalled connection held.
    let first_close = first_close.expect("closes were seen");
    assert!(
        served_at < first_close,
        "the client was served only after the attack ended"
    );
    // The deadline counts from accept, a little before our partial greeting
    // was sent; the margin covers that gap and timer granularity.
    assert!(
        min >= DEADLINE - Duration::from_millis(100),
        "closed before the deadline: {min:?}"
    );
    assert!(
        max <= DEADLINE + Duration::from_secs(3),
        "closed long after the deadline: {max:?}"
    );
    server
        .handshake_failures_reach("handshake_timeout", STALLED as u64)
        .await;
    drop(client);
    eventually(|| server.services.stats.connections_open() == 0).await;
}
