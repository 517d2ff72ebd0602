//! Destination servers for the tests, all on loopback port 0.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Echoes every byte back until the peer closes.
pub async fn echo_server(bind: &str) -> SocketAddr {
    let listener = TcpListener::bind(bind).await.expect("bind echo server");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Reads everything until EOF, then answers with "got N bytes" and closes:
/// only a proxy that forwards the client's FIN lets this answer arrive.
pub async fn answer_after_eof_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut all = Vec::new();
                if stream.read_to_end(&mut all).await.is_ok() {
                    let answer = format!("got {} bytes", all.len());
                    let _ = stream.write_all(answer.as_bytes()).await;
                }
            });
        }
    });
    addr
}

/// A destination on `ip:port` (port 0: any) that reports the peer address
/// of every connection it accepts, then holds it open until the peer
/// closes.
pub async fn reporting_listener(
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::sync::mpsc::Receiver<SocketAddr>)> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(addr)?;
    let listener: TcpListener = socket.listen(16)?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut stream, peer)) = listener.accept().await {
            let _ = tx.send(peer).await;
            tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
            });
        }
    });
    Ok((addr, rx))
}

/// [`reporting_listener`] on any loopback port.
pub async fn peer_reporting_server() -> (SocketAddr, tokio::sync::mpsc::Receiver<SocketAddr>) {
    reporting_listener("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("listen")
}

/// A minimal HTTP/1.1 server answering every request with `body`.
pub async fn http_server(body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve_http(stream, body));
        }
    });
    addr
}

async fn serve_http(mut stream: TcpStream, body: &'static str) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A port on loopback with nothing listening: bound, then released.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

/// A loopback listener that never accepts, with its accept queue full: the
/// kernel drops further SYNs, so a connect to it is never answered. Holds
/// the listener and the connections filling its queue; the fault lasts as
/// long as this value.
pub struct Unanswering {
    pub addr: SocketAddr,
    _listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

impl Unanswering {
    /// At `addr` (port 0 for any); an error if it cannot be bound.
    pub async fn at(addr: SocketAddr) -> std::io::Result<Unanswering> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.bind(addr)?;
        // Backlog 1: Linux queues backlog + 1 connections, then drops SYNs.
        let listener = socket.listen(1)?;
        let addr = listener.local_addr()?;
        let mut fillers = Vec::new();
        // Connect until one attempt goes unanswered; a handful always suffices.
        for _ in 0..8 {
            let attempt = TcpStream::connect(addr);
            match tokio::time::timeout(std::time::Duration::from_millis(300), attempt).await {
                Ok(Ok(stream)) => fillers.push(stream),
                Ok(Err(err)) => panic!("filler connect failed: {err}"),
                Err(_) => {
                    return Ok(Unanswering {
                        addr,
                        _listener: listener,
                        _fillers: fillers,
                    })
                }
            }
        }
        panic!("the accept queue of a backlog-1 listener never filled");
    }
}
