//! Destinations pulse runs itself, so a measurement needs nothing but the
//! server under test:
//!
//! - sink: accepts and holds connections until the peer closes;
//! - discard: reads a length header, swallows that many bytes (or up to EOF),
//!   answers with the count it read;
//! - source: reads a length header, writes that many bytes (or until the
//!   peer goes away);
//! - echo: writes back whatever it reads.
//!
//! The length header (8 bytes, big endian, `u64::MAX` = unbounded) means a
//! bytes-bounded transfer needs no half-close from the proxy in between.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const UNBOUNDED: u64 = u64::MAX;
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Sink,
    Discard,
    Source,
    Echo,
}

/// A running server. Dropping it stops accepting and closes its connections.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    open: Arc<AtomicUsize>,
    accept_errors: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `bind` (use port 0) and serves in the background.
    pub async fn start(bind: SocketAddr, service: Service) -> io::Result<Server> {
        let listener = listen(bind)?;
        let addr = listener.local_addr()?;
        let open = Arc::new(AtomicUsize::new(0));
        let accept_errors = Arc::new(AtomicU64::new(0));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            listener,
            service,
            open.clone(),
            accept_errors.clone(),
            stop_rx,
        ));
        Ok(Server {
            addr,
            open,
            accept_errors,
            stop,
            task,
        })
    }

    /// Connections currently held.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Failed accepts (EMFILE and the like) since start.
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

/// Binds with the longest accept queue the kernel allows (net.core.somaxconn
/// caps it). tokio's default of 1024 overflows when hundreds of clients
/// connect at once: the kernel then drops handshakes and clients wait a
/// full second to retransmit, which would make pulse's own sink, not the
/// server under test, the bottleneck of a spike.
fn listen(bind: SocketAddr) -> io::Result<TcpListener> {
    let socket = match bind {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(bind)?;
    socket.listen(65535)
}

async fn accept_loop(
    listener: TcpListener,
    service: Service,
    open: Arc<AtomicUsize>,
    errors: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(5);
                let mut stop = stop.clone();
                let open = open.clone();
                open.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve(stream, service) => {}
                        _ = stop.changed() => {}
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(_) => {
                // Out of descriptors, most likely: retrying at once would
                // spin; wait for connections to close instead.
                errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
        }
    }
}

async fn serve(mut s: TcpStream, service: Service) -> io::Result<()> {
    match service {
        Service::Sink => {
            // Only the peer's close matters; the stack buffer is tiny on
            // purpose, thousands of these are held at once.
            let mut b = [0u8; 64];
            while s.read(&mut b).await? > 0 {}
        }
        Service::Discard => {
            let want = s.read_u64().await?;
            let mut buf = vec![0u8; CHUNK];
            let mut got = 0u64;
            while got < want {
                let room = usize::try_from(want - got).unwrap_or(CHUNK).min(CHUNK);
                let n = s.read(&mut buf[..room]).await?;
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
            s.write_u64(got).await?;
            s.shutdown().await?;
        }
        Service::Source => {
            let want = s.read_u64().await?;
            let buf = vec![0x5Au8; CHUNK];
            let mut sent = 0u64;
            while sent < want {
                let n = usize::try_from(want - sent).unwrap_or(CHUNK).min(CHUNK);
                s.write_all(&buf[..n]).await?;
                sent += n as u64;
            }
            s.shutdown().await?;
        }
        Service::Echo => {
            s.set_nodelay(true)?;
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await?;
            }
        }
    }
    Ok(())
}

/// Loopback, any free port.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn connect(s: &Server) -> TcpStream {
        TcpStream::connect(s.addr).await.unwrap()
    }

    #[tokio::test]
    async fn discard_counts_and_source_sends() {
        let discard = Server::start(loopback(), Service::Discard).await.unwrap();
        let mut c = connect(&discard).await;
        c.write_u64(100_000).await.unwrap();
        c.write_all(&vec![1u8; 100_000]).await.unwrap();
        assert_eq!(c.read_u64().await.unwrap(), 100_000);

        // Unbounded: read until our half-close.
        let mut c = connect(&discard).await;
        c.write_u64(UNBOUNDED).await.unwrap();
        c.write_all(&[7u8; 1000]).await.unwrap();
        c.shutdown().await.unwrap();
        assert_eq!(c.read_u64().await.unwrap(), 1000);

        let source = Server::start(loopback(), Service::Source).await.unwrap();
        let mut c = connect(&source).await;
        c.write_u64(200_000).await.unwrap();
        let mut all = Vec::new();
        c.read_to_end(&mut all).await.unwrap();
        assert_eq!(all.len(), 200_000);
    }

    #[tokio::test]
    async fn echo_echoes_and_sink_holds() {
        let echo = Server::start(loopback(), Service::Echo).await.unwrap();
        let mut c = connect(&echo).await;
        c.write_all(b"hello").await.unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"hello");

        let sink = Server::start(loopback(), Service::Sink).await.unwrap();
        let c = connect(&sink).await;
        // Nothing comes back from a sink: the held stream stays readable-empty.
        let mut one = [0u8; 1];
        assert!(c.try_read(&mut one).is_err());
        drop(c);
        assert_eq!(sink.accept_errors(), 0);
    }
}
