//! Relaying through the whole server: half-close and large transfers.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::upstreams::{answer_after_eof_server, echo_server};
use crate::common::*;

#[tokio::test]
async fn half_close_reaches_the_destination_and_the_answer_comes_back() {
    let server = TestServer::start_toml("").await;
    let dest = answer_after_eof_server().await;
    let mut stream = socks5_connect(server.addr, dest).await;
    within(stream.write_all(&[7u8; 1000])).await.expect("write");
    within(stream.shutdown())
        .await
        .expect("shutdown write side");
    let answer = read_to_end(&mut stream).await;
    assert_eq!(answer, b"got 1000 bytes");
    eventually(|| server.services.stats.snapshot().sessions_active == 0).await;
    let stats = server.services.stats.snapshot();
    assert_eq!(stats.bytes_client_to_upstream, 1000);
    assert_eq!(stats.bytes_upstream_to_client, 14);
}

/// A deterministic byte pattern that differs per offset, so a lost, doubled
/// or reordered chunk changes the checksum.
fn pattern(offset: u64, buf: &mut [u8]) {
    for (i, byte) in buf.iter_mut().enumerate() {
        let x = offset + i as u64;
        *byte = (x ^ (x >> 8) ^ (x >> 16)) as u8;
    }
}

fn fnv1a(hash: u64, data: &[u8]) -> u64 {
    data.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_each_way_arrive_intact() {
    const TOTAL: u64 = 64 << 20;
    let server = TestServer::start_toml("").await;
    let echo = echo_server("127.0.0.1:0").await;
    let stream = socks5_connect(server.addr, echo).await;
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut hash = FNV_OFFSET;
        let mut sent = 0u64;
        while sent < TOTAL {
            pattern(sent, &mut buf);
            writer.write_all(&buf).await.expect("send");
            hash = fnv1a(hash, &buf);
            sent += buf.len() as u64;
        }
        writer.shutdown().await.expect("shutdown");
        hash
    });
    let receiver = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut hash = FNV_OFFSET;
        let mut received = 0u64;
        loop {
            let n = reader.read(&mut buf).await.expect("receive");
            if n == 0 {
                break;
            }
            hash = fnv1a(hash, &buf[..n]);
            received += n as u64;
        }
        (received, hash)
    });
    let timeout = std::time::Duration::from_secs(120);
    let sent_hash = tokio::time::timeout(timeout, sender)
        .await
        .expect("in time")
        .expect("sender");
    let (received, got_hash) = tokio::time::timeout(timeout, receiver)
        .await
        .expect("in time")
        .expect("receiver");
    assert_eq!(received, TOTAL);
    assert_eq!(got_hash, sent_hash, "checksum mismatch");
    eventually(|| server.services.stats.snapshot().sessions_active == 0).await;
    let stats = server.services.stats.snapshot();
    assert_eq!(stats.bytes_client_to_upstream, TOTAL);
    assert_eq!(stats.bytes_upstream_to_client, TOTAL);
}
