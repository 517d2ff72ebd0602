//! Relaying through the whole server: half-close and large transfers.

use tokio::io::AsyncWriteExt;

use crate::common::pattern::{read_and_hash, PatternWriter};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_each_way_arrive_intact() {
    const TOTAL: u64 = 64 << 20;
    let server = TestServer::start_toml("").await;
    let echo = echo_server("127.0.0.1:0").await;
    let stream = socks5_connect(server.addr, echo).await;
    let (reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        let mut pattern = PatternWriter::new();
        while pattern.sent() < TOTAL {
            pattern.write_chunk(&mut writer).await;
        }
        writer.shutdown().await.expect("shutdown");
        pattern.hash()
    });
    let receiver = tokio::spawn(read_and_hash(reader));
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
