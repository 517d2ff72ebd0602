//! UDP ASSOCIATE against the real server: a hand-written client (this file),
//! relaying (`relay.rs`), what gets dropped (`drops.rs`), the association's
//! life and limits (`life.rs`), access rules (`access.rs`) and PySocks
//! (`pysocks.rs`). Real sockets on loopback; every wait is bounded.

mod access;
mod drops;
mod life;
mod pysocks;
mod relay;

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::common::*;

/// A client's side of an association: the control connection, the UDP
/// socket it sends from, and the relay address from the reply.
pub struct Association {
    pub control: TcpStream,
    pub socket: UdpSocket,
    pub relay: SocketAddr,
}

impl Association {
    /// Opens an association from a fresh socket on `local_ip`, declaring
    /// `0.0.0.0:0` (the client's port is learnt from its first datagram).
    pub async fn open(proxy: SocketAddr, local_ip: &str) -> Self {
        let socket = bind_udp(local_ip).await;
        let declared: SocketAddr = "0.0.0.0:0".parse().expect("addr");
        let (control, code, relay) = request(proxy, declared).await;
        assert_eq!(code, 0x00, "UDP ASSOCIATE refused");
        Self {
            control,
            socket,
            relay,
        }
    }

    /// Opens an association declaring the socket's own address.
    pub async fn open_declared(proxy: SocketAddr, socket: UdpSocket) -> Self {
        let declared = socket.local_addr().expect("local addr");
        let (control, code, relay) = request(proxy, declared).await;
        assert_eq!(code, 0x00, "UDP ASSOCIATE refused");
        Self {
            control,
            socket,
            relay,
        }
    }

    /// Sends `payload` to `target` (SOCKS ATYP bytes) through the relay.
    pub async fn send(&self, target: &[u8], payload: &[u8]) {
        let datagram = [&[0, 0, 0][..], target, payload].concat();
        self.send_raw(&datagram).await;
    }

    pub async fn send_raw(&self, datagram: &[u8]) {
        within(self.socket.send_to(datagram, self.relay))
            .await
            .expect("send to relay");
    }

    /// The next datagram from the relay: (source in its header, payload).
    pub async fn recv(&self) -> (SocketAddr, Vec<u8>) {
        let mut buf = vec![0u8; 65536];
        let (len, from) = within(self.socket.recv_from(&mut buf))
            .await
            .expect("recv from relay");
        assert_eq!(from, self.relay, "replies come from the relay socket");
        parse_reply(&buf[..len])
    }

    /// Sends `payload` to `dest` and expects it echoed back from `dest`.
    pub async fn echo(&self, dest: SocketAddr, payload: &[u8]) {
        self.send(&atyp_for(dest), payload).await;
        let (source, back) = self.recv().await;
        assert_eq!(source, dest, "reply header names the echo server");
        assert_eq!(back, payload);
    }
}

/// Greeting (no auth) and a UDP ASSOCIATE request declaring `declared`.
pub async fn request(proxy: SocketAddr, declared: SocketAddr) -> (TcpStream, u8, SocketAddr) {
    let mut control = within(TcpStream::connect(proxy)).await.expect("connect");
    assert_eq!(greet(&mut control, &[0x05, 0x01, 0x00]).await, [0x05, 0x00]);
    let request = [&[0x05, 0x03, 0x00][..], &atyp_for(declared)].concat();
    within(control.write_all(&request)).await.expect("request");
    let (code, relay) = read_reply(&mut control).await;
    (control, code, relay)
}

pub async fn bind_udp(ip: &str) -> UdpSocket {
    let addr = SocketAddr::new(ip.parse().expect("ip"), 0);
    UdpSocket::bind(addr).await.expect("bind udp")
}

/// Splits a datagram from the relay into its header's address and DATA
/// (IP address types only: that is all the server sends).
pub fn parse_reply(datagram: &[u8]) -> (SocketAddr, Vec<u8>) {
    assert!(datagram.len() >= 10, "short reply {datagram:02x?}");
    assert_eq!(&datagram[..3], [0, 0, 0], "RSV and FRAG");
    let (ip, rest): (std::net::IpAddr, &[u8]) = match datagram[3] {
        0x01 => {
            let octets: [u8; 4] = datagram[4..8].try_into().expect("4 bytes");
            (octets.into(), &datagram[8..])
        }
        0x04 => {
            let octets: [u8; 16] = datagram[4..20].try_into().expect("16 bytes");
            (octets.into(), &datagram[20..])
        }
        other => panic!("reply with address type {other}"),
    };
    let port = u16::from_be_bytes([rest[0], rest[1]]);
    (SocketAddr::new(ip, port), rest[2..].to_vec())
}

/// A UDP echo server on `ip`, port 0, that also reports each datagram's
/// source (the proxy's remote socket).
pub async fn echo_server(ip: &str) -> (SocketAddr, mpsc::Receiver<SocketAddr>) {
    let socket = bind_udp(ip).await;
    let addr = socket.local_addr().expect("addr");
    let (seen, sources) = mpsc::channel(1024);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            let _ = seen.try_send(from);
            let _ = socket.send_to(&buf[..len], from).await;
        }
    });
    (addr, sources)
}

/// The server's UDP counters now.
pub fn udp_stats(server: &TestServer) -> ebbsocks::stats::UdpSnapshot {
    server.services.stats.snapshot().udp
}

/// Waits until the server's drop count for `reason` is `count`.
pub async fn drops_reach(server: &TestServer, reason: &str, count: u64) {
    eventually(|| udp_stats(server).drops[reason] == count).await;
}
