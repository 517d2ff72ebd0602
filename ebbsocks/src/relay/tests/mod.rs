//! Relay tests over loopback sockets; every test is bounded in time.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

use super::*;

const LIMIT: Duration = Duration::from_secs(60);

/// A connected pair: (the side the relay owns, the far end a test drives).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (near, far) = tokio::join!(listener.accept(), TcpStream::connect(addr));
    (near.unwrap().0, far.unwrap())
}

type Started = (TcpStream, TcpStream, tokio::task::JoinHandle<RelayOutcome>);

/// Starts a relay; returns (client app, upstream app, relay task).
async fn start(options: RelayOptions, splice: bool) -> Started {
    let (relay_client, client_app) = pair().await;
    let (relay_upstream, upstream_app) = pair().await;
    let task = tokio::spawn(relay_with(relay_client, relay_upstream, &options, splice));
    (client_app, upstream_app, task)
}

/// Runs a test once copying through the scratch buffer (`copy`) and once
/// with splice (`splice`, which copies too where splice does not exist).
macro_rules! in_both_modes {
    ($(#[$attr:meta])* async fn $name:ident($splice:ident: bool) $body:block) => {
        mod $name {
            use super::*;

            $(#[$attr])*
            async fn copy() {
                run(false).await
            }

            $(#[$attr])*
            async fn splice() {
                run(true).await
            }

            async fn run($splice: bool) $body
        }
    };
}

/// A deterministic byte stream, addressable by offset: the receiver checks
/// content and order, not only a sum.
fn pattern(seed: u64, offset: usize, buf: &mut [u8]) {
    let mut word = [0; 8];
    for (i, byte) in buf.iter_mut().enumerate() {
        let pos = offset + i;
        if i == 0 || pos.is_multiple_of(8) {
            let mut z = seed
                .wrapping_add((pos / 8) as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            word = (z ^ (z >> 31)).to_le_bytes();
        }
        *byte = word[pos % 8];
    }
}

async fn send_pattern(mut w: impl AsyncWriteExt + Unpin, seed: u64, total: usize) {
    let mut buf = vec![0; 40_000]; // not a multiple of the scratch size
    let mut sent = 0;
    while sent < total {
        let n = (total - sent).min(buf.len());
        pattern(seed, sent, &mut buf[..n]);
        w.write_all(&buf[..n]).await.unwrap();
        sent += n;
    }
    w.shutdown().await.unwrap();
}

async fn expect_pattern(mut r: impl AsyncReadExt + Unpin, seed: u64, total: usize) {
    let mut got = vec![0; 50_000];
    let mut expected = vec![0; got.len()];
    let mut received = 0;
    loop {
        let n = r.read(&mut got).await.unwrap();
        if n == 0 {
            break;
        }
        pattern(seed, received, &mut expected[..n]);
        assert!(
            got[..n] == expected[..n],
            "stream differs in bytes {received}..{}",
            received + n
        );
        received += n;
    }
    assert_eq!(received, total);
}

#[test]
fn the_future_stays_small() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (a, _a) = pair().await;
        let (b, _b) = pair().await;
        let fut = relay(a, b, &RelayOptions::default());
        let size = std::mem::size_of_val(&fut);
        println!(
            "relay future: {size} bytes; TcpStream {} bytes; idle timer box {} bytes",
            std::mem::size_of::<TcpStream>(),
            std::mem::size_of::<IdleTimer>() + std::mem::size_of::<tokio::time::Sleep>()
        );
        assert!(size <= 160, "relay future grew to {size} bytes");
    });
}

in_both_modes! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_transfers_both_ways_at_once_arrive_intact(splice: bool) {
    const TOTAL: usize = 64 << 20;
    let (client, upstream, task) = start(RelayOptions::default(), splice).await;
    let (client_r, client_w) = client.into_split();
    let (upstream_r, upstream_w) = upstream.into_split();
    let work = async {
        tokio::join!(
            send_pattern(client_w, 1, TOTAL),
            expect_pattern(upstream_r, 1, TOTAL),
            send_pattern(upstream_w, 2, TOTAL),
            expect_pattern(client_r, 2, TOTAL),
        )
    };
    timeout(LIMIT, work).await.unwrap();
    let outcome = timeout(LIMIT, task).await.unwrap().unwrap();
    assert_eq!(
        outcome,
        RelayOutcome {
            client_to_upstream: TOTAL as u64,
            upstream_to_client: TOTAL as u64,
            end: RelayEnd::Closed
        }
    );
}
}

in_both_modes! {
#[tokio::test]
async fn half_close_lets_the_answer_through(splice: bool) {
    let (mut client, mut upstream, task) = start(RelayOptions::default(), splice).await;
    let server = async move {
        // The upstream answers only after it has read the request to EOF.
        let mut request = Vec::new();
        upstream.read_to_end(&mut request).await.unwrap();
        let answer = format!(
            "got {} bytes: {}",
            request.len(),
            String::from_utf8_lossy(&request)
        );
        upstream.write_all(answer.as_bytes()).await.unwrap();
    };
    let client_side = async move {
        client.write_all(b"question").await.unwrap();
        client.shutdown().await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        answer
    };
    let ((), answer) = timeout(LIMIT, async { tokio::join!(server, client_side) })
        .await
        .unwrap();
    assert_eq!(answer, "got 8 bytes: question");
    let outcome = timeout(LIMIT, task).await.unwrap().unwrap();
    assert_eq!(outcome.end, RelayEnd::Closed);
    assert_eq!(outcome.client_to_upstream, 8);
    assert_eq!(outcome.upstream_to_client, answer.len() as u64);
}
}

in_both_modes! {
#[tokio::test]
async fn a_reset_upstream_resets_the_client(splice: bool) {
    let (mut client, upstream, task) = start(RelayOptions::default(), splice).await;
    client.write_all(b"hello").await.unwrap();
    upstream.set_zero_linger().unwrap();
    drop(upstream);
    let outcome = timeout(LIMIT, task).await.unwrap().unwrap();
    assert_eq!(
        outcome.end,
        RelayEnd::Error(io::ErrorKind::ConnectionReset),
        "{outcome:?}"
    );
    assert_eq!(outcome.end.label(), "reset");
    let mut buf = [0; 16];
    let err = timeout(LIMIT, client.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}
}

in_both_modes! {
#[tokio::test]
async fn a_reset_client_resets_the_upstream(splice: bool) {
    let (client, mut upstream, task) = start(RelayOptions::default(), splice).await;
    client.set_zero_linger().unwrap();
    drop(client);
    let outcome = timeout(LIMIT, task).await.unwrap().unwrap();
    assert_eq!(
        outcome.end,
        RelayEnd::Error(io::ErrorKind::ConnectionReset),
        "{outcome:?}"
    );
    let mut buf = [0; 16];
    let err = timeout(LIMIT, upstream.read(&mut buf))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);
}
}

/// A request/response session with small payloads moves every byte with
/// plain reads and writes: the relay, polled on this (current-thread) test's
/// thread, leases no pipe. A bulk answer on the same thread then does, so
/// the counter read here is live.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn small_requests_and_answers_lease_no_pipe() {
    let leased = super::splice::leased_on_this_thread;
    let before = leased();
    let (mut client, mut upstream, task) = start(RelayOptions::default(), true).await;
    let exchanges = async {
        for round in 0..5u8 {
            client.write_all(&[round; 32]).await.unwrap();
            let mut request = [0; 32];
            upstream.read_exact(&mut request).await.unwrap();
            assert_eq!(request, [round; 32]);
            let answer = vec![round; 1000];
            upstream.write_all(&answer).await.unwrap();
            let mut got = vec![0; answer.len()];
            client.read_exact(&mut got).await.unwrap();
            assert_eq!(got, answer);
        }
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        upstream.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
        drop(upstream);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    };
    timeout(LIMIT, exchanges).await.unwrap();
    let outcome = timeout(LIMIT, task).await.unwrap().unwrap();
    assert_eq!(
        outcome,
        RelayOutcome {
            client_to_upstream: 5 * 32,
            upstream_to_client: 5 * 1000,
            end: RelayEnd::Closed
        }
    );
    assert_eq!(leased() - before, 0, "a small session leased a pipe");

    const BULK: usize = 4 << 20;
    let (client, upstream, task) = start(RelayOptions::default(), true).await;
    let (client_r, _client_w) = client.into_split();
    let (_upstream_r, upstream_w) = upstream.into_split();
    let work = async {
        tokio::join!(
            send_pattern(upstream_w, 3, BULK),
            expect_pattern(client_r, 3, BULK)
        )
    };
    timeout(LIMIT, work).await.unwrap();
    assert!(leased() > before, "a bulk answer went without a pipe");
    task.abort();
}

/// A small direction whose peer takes only part of a write keeps the rest
/// and sends it once the peer reads again: nothing is lost or reordered,
/// and nothing stays held when the session ends.
#[tokio::test]
async fn small_writes_to_a_full_peer_arrive_intact() {
    const MESSAGES: usize = 3000;
    const SIZE: usize = 700;
    let (relay_client, client) = pair().await;
    let (relay_upstream, upstream) = pair().await;
    // Small buffers on the path to the client: it fills after a few writes.
    let sock = socket2::SockRef::from(&relay_client);
    sock.set_send_buffer_size(4096).unwrap();
    socket2::SockRef::from(&client)
        .set_recv_buffer_size(4096)
        .unwrap();
    let task = tokio::spawn(relay_with(
        relay_client,
        relay_upstream,
        &RelayOptions::default(),
        true,
    ));
    let (client_r, _client_w) = client.into_split();
    let (_upstream_r, mut upstream_w) = upstream.into_split();
    let writer = async move {
        // Message by message, yielding between them, so reads stay small.
        let mut buf = vec![0; SIZE];
        for i in 0..MESSAGES {
            pattern(4, i * SIZE, &mut buf);
            upstream_w.write_all(&buf).await.unwrap();
            tokio::task::yield_now().await;
        }
        upstream_w.shutdown().await.unwrap();
    };
    let reader = async move {
        // Let the path fill before reading anything.
        tokio::time::sleep(Duration::from_millis(50)).await;
        expect_pattern(client_r, 4, MESSAGES * SIZE).await;
    };
    timeout(LIMIT, async { tokio::join!(writer, reader) })
        .await
        .unwrap();
    task.abort();
    let _ = task.await;
}

#[test]
fn labels_are_short_and_stable() {
    assert_eq!(RelayEnd::Closed.label(), "closed");
    assert_eq!(RelayEnd::IdleTimeout.label(), "idle_timeout");
    assert_eq!(RelayEnd::HalfCloseTimeout.label(), "half_close_timeout");
    assert_eq!(RelayEnd::Shutdown.label(), "shutdown");
    assert_eq!(
        RelayEnd::Error(io::ErrorKind::BrokenPipe).label(),
        "broken_pipe"
    );
    assert_eq!(RelayEnd::Error(io::ErrorKind::Other).label(), "io_error");
}

// After the macro, which it uses.
mod timeouts;
