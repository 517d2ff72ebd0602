//! A scaled-down connection spike against the real `ebbsocks` binary: memory
//! must come back after the spike, measured against the process's own
//! baseline. The bounds are generous for a noisy CI machine; the strict
//! figures live in the benchmark (docs/BENCHMARKS.md).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::common::process::ServerProcess;
use crate::common::*;

const SPIKE: usize = 2000;
const MIB: u64 = 1 << 20;

/// Accepts and holds connections until the peer closes.
async fn sink() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 16];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

async fn open_sessions(proxy: SocketAddr, dest: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut sessions = Vec::with_capacity(count);
    let mut pending = tokio::task::JoinSet::new();
    for i in 0..count {
        pending.spawn(async move { (i, socks5_connect(proxy, dest).await) });
        // Bounded connect concurrency, like a real client burst.
        if pending.len() >= 128 {
            sessions.push(pending.join_next().await.expect("task").expect("connect").1);
        }
    }
    while let Some(done) = pending.join_next().await {
        sessions.push(done.expect("connect").1);
    }
    sessions
}

fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_comes_back_after_a_spike() {
    raise_fd_limit();
    let server = ServerProcess::start("");
    let dest = sink().await;
    // Warm up the runtime and allocator, then take the baseline.
    drop(open_sessions(server.addr, dest, 50).await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let baseline = server.rss();

    let sessions = open_sessions(server.addr, dest, SPIKE).await;
    let peak = server.rss();
    drop(sessions);

    let started = Instant::now();
    let excess = peak.saturating_sub(baseline);
    // The spike must be visible, or the check below could not fail.
    assert!(
        excess >= 2 * MIB,
        "a spike of {SPIKE} should add at least 2 MiB (baseline {baseline}, peak {peak})"
    );
    // Most of the spike must go back: at most 40% of it (or 1.5 MiB) may stay.
    let limit = baseline + (3 * MIB / 2).max(excess * 2 / 5);
    let mut after = server.rss();
    while after > limit && started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = server.rss();
    }
    eprintln!(
        "spike of {SPIKE}: baseline {} KiB, peak {} KiB, after {:?}: {} KiB",
        baseline / 1024,
        peak / 1024,
        started.elapsed(),
        after / 1024
    );
    assert!(
        after <= limit,
        "RSS {after} did not come back under {limit} (baseline {baseline}, peak {peak})"
    );
}
