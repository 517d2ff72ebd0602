//! How sessions end and are counted: every session counted as started is
//! counted as finished, with an outcome, whichever await point a forced
//! shutdown or a vanished client lands on; a peer that never finishes after
//! a half-close is closed.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ebbsocks::config::Config;
use ebbsocks::server::Services;
use ebbsocks::upstream::pool::Connector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::common::upstreams::echo_server;
use crate::common::*;

/// Connects for real, except: connections to `gated` first report on
/// `entered` and wait for a permit on `release`; connections to `full` come
/// back with their send buffer already full, so any write to them waits.
struct StagedConnector {
    gated: SocketAddr,
    entered: mpsc::UnboundedSender<()>,
    release: Arc<Semaphore>,
    full: SocketAddr,
}

impl Connector for StagedConnector {
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        Box::pin(async move {
            if addr == self.gated {
                let _ = self.entered.send(());
                self.release.acquire().await.expect("gate open").forget();
            }
            let stream = TcpStream::connect(addr).await?;
            if addr == self.full {
                fill_send_buffer(&stream);
            }
            Ok(stream)
        })
    }
}

/// The peer never reads, so once its window closes writes would block.
fn fill_send_buffer(stream: &TcpStream) {
    let chunk = [0u8; 64 * 1024];
    let deadline = Instant::now() + STEP;
    loop {
        assert!(Instant::now() < deadline, "send buffer never filled");
        match stream.try_write(&chunk) {
            Ok(_) => continue,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
            Err(err) => panic!("filling the send buffer: {err}"),
        }
    }
}

struct Staged {
    server: TestServer,
    /// Listeners that never accept: the kernel completes connections to
    /// them and queues their bytes, which is all these tests need.
    gated: TcpListener,
    full: TcpListener,
    entered: mpsc::UnboundedReceiver<()>,
    release: Arc<Semaphore>,
}

async fn staged_server(toml: &str) -> Staged {
    let config = Config::from_toml(toml, Path::new("test.toml")).expect("valid test config");
    let gated = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let full = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (tx, entered) = mpsc::unbounded_channel();
    let release = Arc::new(Semaphore::new(0));
    let connector = StagedConnector {
        gated: gated.local_addr().expect("addr"),
        entered: tx,
        release: release.clone(),
        full: full.local_addr().expect("addr"),
    };
    let services = Services::with_connector(config, Arc::new(connector));
    Staged {
        server: TestServer::start_with(services).await,
        gated,
        full,
        entered,
        release,
    }
}

/// Greets and sends a CONNECT to `target` followed by `early` bytes, without
/// waiting for the reply.
async fn request(proxy: SocketAddr, target: SocketAddr, early: &[u8]) -> TcpStream {
    let mut stream = within(TcpStream::connect(proxy)).await.expect("connect");
    assert_eq!(greet(&mut stream, &[0x05, 0x01, 0x00]).await, [0x05, 0x00]);
    let mut request = vec![0x05, 0x01, 0x00];
    request.extend_from_slice(&atyp_for(target));
    request.extend_from_slice(early);
    within(stream.write_all(&request)).await.expect("request");
    stream
}

#[tokio::test]
async fn a_client_gone_before_the_success_reply_is_counted_with_an_outcome() {
    let mut staged = staged_server("[logging]\naccess_log = true\n").await;
    let target = staged.gated.local_addr().expect("addr");
    let client = request(staged.server.addr, target, b"").await;
    within(staged.entered.recv())
        .await
        .expect("connect started");
    // The client resets its connection while the server connects upstream:
    // writing the success reply then fails.
    client.set_zero_linger().expect("linger");
    drop(client);
    staged.release.add_permits(1);
    let stats = &staged.server.services.stats;
    eventually(|| stats.snapshot().session_outcomes.get("reply_failed") == Some(&1)).await;
    let snap = stats.snapshot();
    assert_eq!(
        (snap.sessions_total, snap.sessions_active),
        (1, 0),
        "{snap:?}"
    );
}

#[tokio::test]
async fn a_forced_shutdown_at_each_stage_leaves_no_session_active() {
    let mut staged = staged_server("[server]\nshutdown_grace_secs = 0\n").await;
    let proxy = staged.server.addr;
    let stats = staged.server.services.stats.clone();

    // In the handshake: connected, silent.
    let mut handshaking = staged.server.connect().await;
    // Connecting upstream: the connect waits at the gate.
    let gated = staged.gated.local_addr().expect("addr");
    let mut connecting = request(proxy, gated, b"").await;
    within(staged.entered.recv())
        .await
        .expect("connect started");
    // Between the success reply and the relay: the early data cannot be
    // written to an upstream whose send buffer is full.
    let full = staged.full.local_addr().expect("addr");
    let mut replied = request(proxy, full, b"early").await;
    assert_eq!(read_reply(&mut replied).await.0, 0x00);
    // Relaying.
    let echo = echo_server("127.0.0.1:0").await;
    let mut relaying = socks5_connect(proxy, echo).await;
    within(relaying.write_all(b"ping")).await.expect("write");
    let mut pong = [0u8; 4];
    within(relaying.read_exact(&mut pong)).await.expect("echo");
    assert_eq!(stats.snapshot().sessions_active, 2);

    let stopped = staged.server.begin_shutdown();
    within(stopped)
        .await
        .expect("server task")
        .expect("clean exit");
    for client in [
        &mut handshaking,
        &mut connecting,
        &mut replied,
        &mut relaying,
    ] {
        assert!(closed_by_peer(client).await);
    }
    let snap = stats.snapshot();
    assert_eq!(snap.connections_open, 0, "{snap:?}");
    assert_eq!(
        (snap.sessions_total, snap.sessions_active),
        (2, 0),
        "{snap:?}"
    );
    assert_eq!(snap.session_outcomes.get("shutdown"), Some(&2), "{snap:?}");
}

#[tokio::test]
async fn a_peer_that_never_finishes_after_a_half_close_is_closed() {
    let server = TestServer::start_toml("[server]\nhalf_close_timeout_secs = 1\n").await;
    // Reads the question to EOF, then neither answers nor closes.
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = upstream.local_addr().expect("addr");
    let silent = tokio::spawn(async move {
        let (mut peer, _) = upstream.accept().await.expect("accept");
        let mut question = Vec::new();
        peer.read_to_end(&mut question).await.expect("question");
        assert_eq!(question, b"question");
        peer
    });
    let mut client = socks5_connect(server.addr, target).await;
    within(client.write_all(b"question")).await.expect("write");
    let half_closed = Instant::now();
    within(client.shutdown()).await.expect("half-close");
    assert!(read_to_end(&mut client).await.is_empty());
    let waited = half_closed.elapsed();
    assert!(waited >= Duration::from_secs(1), "closed after {waited:?}");
    // The upstream connection was closed too: writing to it soon fails.
    let mut peer = within(silent).await.expect("peer task");
    within(async {
        while peer.write_all(b"late").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let stats = &server.services.stats;
    eventually(|| stats.snapshot().session_outcomes.get("half_close_timeout") == Some(&1)).await;
    assert_eq!(stats.snapshot().sessions_active, 0);
}
