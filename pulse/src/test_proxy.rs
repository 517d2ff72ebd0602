//! A minimal SOCKS5 proxy for tests (no auth, CONNECT to IPv4 only), so the
//! proxy paths of every subcommand run end to end without the real server.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::{copy_bidirectional, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct TestProxy {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start() -> TestProxy {
    start_with_deadline(None).await
}

/// With a deadline on the greeting and request, like a hardened server.
pub async fn start_with_deadline(deadline: Option<std::time::Duration>) -> TestProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = serve(s, deadline).await;
            });
        }
    });
    TestProxy { addr, task }
}

async fn serve(mut c: TcpStream, deadline: Option<std::time::Duration>) -> std::io::Result<()> {
    c.set_nodelay(true)?;
    let handshake = async {
        let mut head = [0u8; 2];
        c.read_exact(&mut head).await?;
        let mut methods = vec![0u8; usize::from(head[1])];
        c.read_exact(&mut methods).await?;
        c.write_all(&[5, 0]).await?;
        let mut req = [0u8; 10];
        c.read_exact(&mut req).await?;
        Ok::<_, std::io::Error>(req)
    };
    let req = match deadline {
        Some(d) => tokio::time::timeout(d, handshake)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??,
        None => handshake.await?,
    };
    assert_eq!(req[..4], [5, 1, 0, 1], "test proxy: IPv4 CONNECT only");
    let ip = Ipv4Addr::new(req[4], req[5], req[6], req[7]);
    let port = u16::from_be_bytes([req[8], req[9]]);
    match TcpStream::connect((ip, port)).await {
        Ok(mut up) => {
            up.set_nodelay(true)?;
            c.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).await?;
            copy_bidirectional(&mut c, &mut up).await?;
        }
        Err(_) => c.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?,
    }
    Ok(())
}
