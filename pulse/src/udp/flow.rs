//! One UDP flow: a socket that sends a numbered datagram and waits for its
//! echo before the next, either straight to the echo server or through a
//! SOCKS5 UDP association (RFC 1928 section 7). Also the echo server, and
//! the few bytes of the UDP request header pulse needs.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket};

use crate::fail::FailKind;
use crate::socks::{self, Credentials, Target};

/// The UDP request header in front of a datagram for `dest`: RSV, FRAG 0,
/// ATYP, address, port.
pub fn udp_header(dest: SocketAddr) -> Vec<u8> {
    let mut out = vec![0, 0, 0];
    match dest.ip() {
        IpAddr::V4(ip) => {
            out.push(0x01);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(0x04);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&dest.port().to_be_bytes());
    out
}

/// Splits a datagram from the relay into (source, DATA); `None` when its
/// header is not a whole-datagram header with an IP address.
pub fn parse_udp_reply(datagram: &[u8]) -> Option<(SocketAddr, &[u8])> {
    if datagram.get(..3)? != [0, 0, 0] {
        return None;
    }
    let (ip, rest): (IpAddr, &[u8]) = match *datagram.get(3)? {
        0x01 => {
            let b: [u8; 4] = datagram.get(4..8)?.try_into().ok()?;
            (Ipv4Addr::from(b).into(), datagram.get(8..)?)
        }
        0x04 => {
            let b: [u8; 16] = datagram.get(4..20)?.try_into().ok()?;
            (Ipv6Addr::from(b).into(), datagram.get(20..)?)
        }
        _ => return None,
    };
    let port = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
    Some((SocketAddr::new(ip, port), &rest[2..]))
}

/// A UDP echo server on its own OS thread (blocking sockets), so both paths
/// share one echo whose cost does not depend on the runtime's load. It
/// stops when the process exits.
pub fn start_echo(bind: SocketAddr) -> io::Result<SocketAddr> {
    let socket = std::net::UdpSocket::bind(bind)?;
    let addr = socket.local_addr()?;
    std::thread::Builder::new()
        .name("udp-echo".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(&buf[..n], from);
            }
        })?;
    Ok(addr)
}

/// An open SOCKS5 UDP association: the control connection (kept open for
/// the association's life) and the relay address.
#[derive(Debug)]
pub struct Associated {
    pub control: TcpStream,
    pub relay: SocketAddr,
}

/// Opens an association through `proxy`. The relay address in the reply
/// is used as given, unless it is unspecified (then the proxy's IP).
pub async fn associate(
    proxy: &Target,
    credentials: Option<&Credentials>,
) -> Result<Associated, FailKind> {
    let io = |e: io::Error| FailKind::from_io(&e);
    let mut control = match proxy {
        Target::Addr(a) => TcpStream::connect(a).await.map_err(io)?,
        Target::Domain(h, p) => TcpStream::connect((h.as_str(), *p)).await.map_err(io)?,
    };
    let _ = control.set_nodelay(true);
    let any = Target::Addr(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let relay = socks::udp_associate(&mut control, &any, credentials)
        .await
        .map_err(|e| FailKind::from_socks(&e))?;
    let Target::Addr(mut relay) = relay else {
        return Err(FailKind::SocksProtocol);
    };
    if relay.ip().is_unspecified() {
        relay.set_ip(control.peer_addr().map_err(io)?.ip());
    }
    Ok(Associated { control, relay })
}

/// Where a flow sends: straight to the echo, or through a relay.
#[derive(Debug)]
pub struct Flow {
    socket: UdpSocket,
    /// The relay, and the association kept alive with it.
    via: Option<Associated>,
    echo: SocketAddr,
    /// What is sent: the header (through a relay), then the payload whose
    /// first 8 bytes are the sequence number.
    datagram: Vec<u8>,
    header_len: usize,
    seq: u64,
    buf: Vec<u8>,
}

impl Flow {
    pub async fn new(echo: SocketAddr, via: Option<Associated>, size: usize) -> io::Result<Self> {
        let peer = via.as_ref().map_or(echo, |a| a.relay);
        let local: SocketAddr = if peer.is_ipv6() {
            (Ipv6Addr::LOCALHOST, 0).into()
        } else {
            (Ipv4Addr::LOCALHOST, 0).into()
        };
        let socket = UdpSocket::bind(local).await?;
        let mut datagram = match via {
            Some(_) => udp_header(echo),
            None => Vec::new(),
        };
        let header_len = datagram.len();
        datagram.extend((0..size.max(8)).map(|i| (i % 251) as u8));
        Ok(Self {
            socket,
            via,
            echo,
            datagram,
            header_len,
            seq: 0,
            // Room for the echo and a little more: anything longer is not it.
            buf: vec![0u8; header_len + size.max(8) + 64],
        })
    }

    /// One round trip: send the next numbered datagram, wait (up to
    /// `limit`) for its echo; late echoes of earlier ones are skipped.
    pub async fn round_trip(&mut self, limit: Duration) -> Result<(), FailKind> {
        self.seq += 1;
        let seq = self.seq.to_be_bytes();
        self.datagram[self.header_len..self.header_len + 8].copy_from_slice(&seq);
        let to = self.via.as_ref().map_or(self.echo, |a| a.relay);
        let io = |e: io::Error| FailKind::from_io(&e);
        self.socket.send_to(&self.datagram, to).await.map_err(io)?;
        let payload_len = self.datagram.len() - self.header_len;
        let wait = async {
            loop {
                let (n, _) = self.socket.recv_from(&mut self.buf).await.map_err(io)?;
                let got = &self.buf[..n];
                let payload = match self.via {
                    Some(_) => match parse_udp_reply(got) {
                        Some((source, data)) if source == self.echo => data,
                        _ => return Err(FailKind::SocksProtocol),
                    },
                    None => got,
                };
                if payload.len() == payload_len && payload[..8] == seq {
                    return if payload[8..] == self.datagram[self.header_len + 8..] {
                        Ok(())
                    } else {
                        Err(FailKind::BadEcho)
                    };
                }
                // An echo of an earlier datagram that timed out: skip it.
            }
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(r) => r,
            Err(_) => Err(FailKind::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let v4: SocketAddr = "10.0.0.1:53".parse().unwrap();
        let h = udp_header(v4);
        assert_eq!(h, [0, 0, 0, 1, 10, 0, 0, 1, 0, 53]);
        let datagram = [&h[..], b"data"].concat();
        assert_eq!(parse_udp_reply(&datagram), Some((v4, &b"data"[..])));
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        let datagram = [&udp_header(v6)[..], b"x"].concat();
        assert_eq!(parse_udp_reply(&datagram), Some((v6, &b"x"[..])));
        assert_eq!(parse_udp_reply(&[0, 0, 1, 1, 1, 1, 1, 1, 0, 1]), None);
        assert_eq!(parse_udp_reply(&[0, 0, 0, 3, 1, b'a', 0, 1]), None);
        assert_eq!(parse_udp_reply(&[0, 0, 0, 1, 1]), None);
    }

    #[test]
    fn the_associate_request_is_command_3() {
        let any = Target::Addr("0.0.0.0:0".parse().unwrap());
        assert_eq!(
            socks::encode_udp_associate(&any).unwrap(),
            [5, 3, 0, 1, 0, 0, 0, 0, 0, 0]
        );
    }

    #[tokio::test]
    async fn a_direct_flow_round_trips_through_the_echo() {
        let echo = start_echo("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut flow = Flow::new(echo, None, 512).await.unwrap();
        for _ in 0..3 {
            flow.round_trip(Duration::from_secs(5)).await.unwrap();
        }
    }
}
