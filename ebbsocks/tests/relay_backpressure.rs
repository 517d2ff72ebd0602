//! A slow reader behind the relay: the relay's own buffering stays bounded
//! and every byte arrives. This file holds one test on purpose: the buffer
//! accounting it reads is process-wide.

// In tests a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ebbsocks::relay::{self, RelayEnd, RelayOptions, PIPE_CAPACITY, SCRATCH_SIZE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

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
            peak.bytes = peak.bytes.max(now.bytes);
            peak.buffers = peak.buffers.max(now.buffers);
            peak.piped_bytes = peak.piped_bytes.max(now.piped_bytes);
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
    // One direction was busy: at most one remainder of one read, on the
    // heap (a scratch buffer's worth) or in a pipe (a pipe's capacity).
    assert!(peak.bytes <= SCRATCH_SIZE, "relay buffered {peak:?}");
    assert!(peak.piped_bytes <= PIPE_CAPACITY, "relay buffered {peak:?}");
    assert!(peak.buffers <= 1, "relay buffered {peak:?}");

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
        relay::buffered().bytes,
        0,
        "buffers must be freed when the session ends"
    );
    assert_eq!(relay::buffered().buffers, 0);
}
