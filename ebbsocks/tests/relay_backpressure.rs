//! A slow reader behind the relay: the relay's own buffering stays bounded
//! and every byte arrives; readers that stop altogether cost the relay no
//! heap. This file holds one test on purpose: the buffer accounting and the
//! allocator figures it reads are process-wide.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ebbsocks::memory;
use ebbsocks::relay::{self, RelayEnd, RelayOptions, PIPE_CAPACITY, SCRATCH_SIZE, SMALL_READ};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (near, far) = tokio::join!(listener.accept(), TcpStream::connect(addr));
    (near.unwrap().0, far.unwrap())
}

fn byte_at(pos: usize) -> u8 {
    (pos.wrapping_mul(31) ^ (pos >> 11)) as u8
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_everything_and_the_relay_buffers_little() {
    // Sequential, in one test: the mode switch and the counters are global.
    relay::set_splice(false);
    slow_reader().await;
    stopped_readers().await;
    relay::set_splice(true);
    slow_reader().await;
}

async fn slow_reader() {
    const TOTAL: usize = 64 << 20;
    let (relay_client, mut client) = pair().await;
    let (relay_upstream, mut upstream) = pair().await;
    let task = tokio::spawn(relay::relay(
        relay_client,
        relay_upstream,
        &RelayOptions::default(),
    ));

    let writer = tokio::spawn(async move {
        let mut buf = vec![0; 1 << 20];
        let mut sent = 0;
        while sent < TOTAL {
            for (i, byte) in buf.iter_mut().enumerate() {
                *byte = byte_at(sent + i);
            }
            upstream.write_all(&buf).await.unwrap();
            sent += buf.len();
        }
        upstream.shutdown().await.unwrap();
        upstream
    });

    let reader = async {
        let mut buf = vec![0; 8 * 1024];
        let mut received = 0;
        let mut peak = relay::buffered();
        let mut sleeps = 0;
        loop {
            let n = client.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            for (i, byte) in buf[..n].iter().enumerate() {
                assert_eq!(
                    *byte,
                    byte_at(received + i),
                    "byte {} differs",
                    received + i
                );
            }
            let now = relay::buffered();
            peak.stalled_pipes = peak.stalled_pipes.max(now.stalled_pipes);
            peak.piped_bytes = peak.piped_bytes.max(now.piped_bytes);
            peak.held_bytes = peak.held_bytes.max(now.held_bytes);
            // Slower than the writer: a pause for every 512 KiB read.
            if (received + n) / (512 << 10) > received / (512 << 10) {
                tokio::time::sleep(Duration::from_millis(2)).await;
                sleeps += 1;
            }
            received += n;
        }
        (received, peak, sleeps)
    };
    let (received, peak, sleeps) = timeout(Duration::from_secs(120), reader).await.unwrap();
    println!("slow reader: {received} bytes, {sleeps} pauses, peak relay buffering {peak:?}");
    assert_eq!(received, TOTAL);
    // One direction was busy: at most one remainder, in a pipe (or, while
    // the direction was still small, less than SMALL_READ on the heap).
    assert!(peak.piped_bytes <= PIPE_CAPACITY, "relay buffered {peak:?}");
    assert!(peak.held_bytes < SMALL_READ, "relay buffered {peak:?}");
    assert!(peak.stalled_pipes <= 1, "relay buffered {peak:?}");

    let _upstream = writer.await.unwrap();
    drop(client);
    let outcome = timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.upstream_to_client, TOTAL as u64);
    // Both sides closed in order, nothing reset: the upstream's FIN reached
    // the client (its read returned 0 above), then the client closed with
    // nothing unread. Any error here would be the relay's own doing.
    assert_eq!(outcome.end, RelayEnd::Closed, "{outcome:?}");
    assert_eq!(outcome.client_to_upstream, 0);
    assert_eq!(
        relay::buffered().piped_bytes,
        0,
        "pipes must be emptied or closed when the session ends"
    );
    assert_eq!(relay::buffered().stalled_pipes, 0);
    assert_eq!(
        relay::buffered().held_bytes,
        0,
        "held remainders must be sent or freed when the session ends"
    );
}

fn allocated() -> u64 {
    memory::read().allocator.unwrap().allocated
}

/// Sessions whose client never reads while the upstream floods: once the
/// flood has stalled, the relay holds no payload on the heap. (It used to
/// keep the unsent part of its last read, up to 64 KiB per session.)
async fn stopped_readers() {
    const SESSIONS: usize = 100;
    let mut held = Vec::new();
    for _ in 0..SESSIONS {
        let (relay_client, mut client) = pair().await;
        let (relay_upstream, mut upstream) = pair().await;
        let task = tokio::spawn(relay::relay(
            relay_client,
            relay_upstream,
            &RelayOptions::default(),
        ));
        // One byte through first: the sockets and the workers' scratch
        // buffers exist before the baseline.
        upstream.write_all(b"x").await.unwrap();
        let mut byte = [0; 1];
        timeout(Duration::from_secs(10), client.read_exact(&mut byte))
            .await
            .unwrap()
            .unwrap();
        held.push((client, upstream, task));
    }
    let before = allocated();
    // Every upstream writes until it would block; again until a whole pass
    // finds every one still full (the relay has stopped taking bytes).
    let chunk = vec![0x5a; 64 * 1024];
    let flood = async {
        let mut quiet = 0;
        while quiet < 3 {
            let mut moved = 0;
            for (_, upstream, _) in &held {
                while let Ok(n) = upstream.try_write(&chunk) {
                    moved += n;
                }
            }
            quiet = if moved == 0 { quiet + 1 } else { 0 };
            // Lets the relays run between passes; not a readiness wait.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    timeout(Duration::from_secs(60), flood).await.unwrap();
    let grown = allocated().saturating_sub(before);
    println!("{SESSIONS} stalled sessions: heap grew by {grown} bytes");
    // Room for the worker threads' scratch buffers (one may be allocated
    // only now) and bookkeeping; the old remainders were ~32 KiB a session.
    assert!(
        grown < (2 * SCRATCH_SIZE + SESSIONS * 1024) as u64,
        "stalled sessions hold {grown} bytes of heap"
    );
    for (_, _, task) in &held {
        assert!(!task.is_finished());
    }
    for (_, _, task) in held {
        task.abort();
    }
}
