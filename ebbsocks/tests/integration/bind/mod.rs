//! BIND, SOCKS5 and SOCKS4: the test plays the client on the control
//! connection and the peer that connects to the advertised port.

mod access;
mod clients;
mod failures;
mod socks4;
mod socks5;

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::*;

pub fn addr(text: &str) -> SocketAddr {
    text.parse().expect("valid socket address")
}

/// No-auth greeting + BIND with the given ATYP bytes (and `extra` bytes in
/// the same write); returns the control stream and the first reply.
pub async fn socks5_bind(
    proxy: SocketAddr,
    atyp: &[u8],
    extra: &[u8],
) -> (TcpStream, u8, SocketAddr) {
    let mut control = within(TcpStream::connect(proxy)).await.expect("connect");
    assert_eq!(greet(&mut control, &[0x05, 0x01, 0x00]).await, [0x05, 0x00]);
    let mut request = vec![0x05, 0x02, 0x00];
    request.extend_from_slice(atyp);
    request.extend_from_slice(extra);
    within(control.write_all(&request)).await.expect("request");
    let (code, bound) = read_reply(&mut control).await;
    (control, code, bound)
}

/// A SOCKS4 BIND request (SOCKS4a when `domain` is given).
pub fn socks4_bind_request(port: u16, ip: [u8; 4], domain: Option<&str>) -> Vec<u8> {
    let mut out = vec![0x04, 0x02];
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&ip);
    out.extend_from_slice(b"tester\0");
    if let Some(domain) = domain {
        out.extend_from_slice(domain.as_bytes());
        out.push(0);
    }
    out
}

/// Reads an 8-byte SOCKS4 reply; returns (status, address).
pub async fn read_socks4_reply(stream: &mut TcpStream) -> (u8, SocketAddr) {
    let mut reply = [0u8; 8];
    within(stream.read_exact(&mut reply))
        .await
        .expect("SOCKS4 reply");
    assert_eq!(reply[0], 0x00, "SOCKS4 reply version");
    let port = u16::from_be_bytes([reply[2], reply[3]]);
    let ip = std::net::Ipv4Addr::new(reply[4], reply[5], reply[6], reply[7]);
    (reply[1], SocketAddr::from((ip, port)))
}

/// A peer connecting to `to` from `source` (any port); 127.0.0.0/8 is all
/// local on Linux, so 127.0.0.2 is a second host for the tests.
pub async fn peer_from(source: &str, to: SocketAddr) -> TcpStream {
    let source: IpAddr = source.parse().expect("valid address");
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(source, 0)).expect("bind peer");
    within(socket.connect(to)).await.expect("peer connects")
}

/// Asserts nothing listens at `addr` any more.
pub async fn assert_port_closed(addr: SocketAddr) {
    match within(TcpStream::connect(addr)).await {
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}"),
        Ok(_) => panic!("{addr} still accepts connections"),
    }
}

/// One message each way between the client (`control`) and the peer.
pub async fn exchange(control: &mut TcpStream, inbound: &mut TcpStream) {
    within(control.write_all(b"to the peer"))
        .await
        .expect("write");
    let mut got = [0u8; 11];
    within(inbound.read_exact(&mut got))
        .await
        .expect("peer reads");
    assert_eq!(&got, b"to the peer");
    within(inbound.write_all(b"to the client"))
        .await
        .expect("write");
    let mut got = [0u8; 13];
    within(control.read_exact(&mut got))
        .await
        .expect("client reads");
    assert_eq!(&got, b"to the client");
}

/// The server's counter of connection failures for `reason`.
pub fn connect_failures(server: &TestServer, reason: &str) -> u64 {
    let stats = server.services.stats.snapshot();
    stats.connect_failures.get(reason).copied().unwrap_or(0)
}
