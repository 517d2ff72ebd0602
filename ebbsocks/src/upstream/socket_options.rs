//! The TCP options every session socket gets, on both legs: `TCP_NODELAY`
//! (a proxy forwards whatever its client wrote without waiting to batch
//! it) and TCP keepalive (a peer that vanished is found and its session
//! closed, and a NAT keeps the mapping of an idle pooled connection); plus
//! the outbound address upstream connections are made from.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpSocket, TcpStream};

use crate::config::{Config, KeepaliveConfig};

/// Keepalive timings, as the kernel takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub idle: Duration,
    pub interval: Duration,
    pub count: u32,
}

impl Keepalive {
    pub fn from_config(config: &KeepaliveConfig) -> Option<Self> {
        config.enabled.then(|| Self {
            idle: Duration::from_secs(config.idle_secs),
            interval: Duration::from_secs(config.interval_secs),
            count: config.count,
        })
    }
}

/// What [`SocketOptions::apply`] sets and [`SocketOptions::connect`] uses.
/// The default sets `TCP_NODELAY` only and lets the kernel pick the source
/// address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// `None`: keepalive off.
    pub keepalive: Option<Keepalive>,
    /// The local address upstream connections are made from.
    pub bind_address: Option<IpAddr>,
}

impl SocketOptions {
    /// From `[server.keepalive]` and `upstream.bind_address`.
    pub fn from_config(config: &Config) -> Self {
        Self {
            keepalive: Keepalive::from_config(&config.server.keepalive),
            bind_address: config.upstream.bind_address,
        }
    }

    /// Sets `TCP_NODELAY` and, when configured, keepalive on a socket just
    /// accepted (a client, a BIND peer).
    pub fn apply(&self, stream: &TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        self.set_keepalive(SockRef::from(stream))
    }

    /// Sets the options of [`SocketOptions::apply`] on a listening socket:
    /// Linux copies `TCP_NODELAY` and the keepalive settings to every socket
    /// it accepts (the keepalive timer starts with the connection), so each
    /// client connection gets them without a `setsockopt` of its own.
    pub fn apply_to_listener(&self, listener: SockRef<'_>) -> io::Result<()> {
        listener.set_nodelay(true)?;
        self.set_keepalive(listener)
    }

    /// Whether an address of `dest`'s family can be reached from the
    /// configured outbound address (always, when none is set).
    pub fn can_reach(&self, dest: &SocketAddr) -> bool {
        self.bind_address
            .is_none_or(|local| local.is_ipv4() == dest.is_ipv4())
    }

    /// A new connection to `dest`: from the outbound address when one is
    /// configured, with keepalive set before the handshake and `TCP_NODELAY`
    /// after it. No timeout: the caller applies the deadline.
    pub async fn connect(&self, dest: SocketAddr) -> io::Result<TcpStream> {
        let socket = match dest {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        self.set_keepalive(SockRef::from(&socket))?;
        if let Some(local) = self.bind_address {
            if !self.can_reach(&dest) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("{dest} is not of the family of upstream.bind_address ({local})"),
                ));
            }
            socket.bind(SocketAddr::new(local, 0)).map_err(|err| {
                io::Error::new(err.kind(), format!("cannot bind to {local}: {err}"))
            })?;
        }
        let stream = socket.connect(dest).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Only ever called on new sockets (fresh, or just accepted from a
    /// listener without keepalive), whose keepalive is off: with keepalive
    /// off in the configuration there is nothing to do, and no syscall.
    fn set_keepalive(&self, socket: SockRef<'_>) -> io::Result<()> {
        match &self.keepalive {
            None => Ok(()),
            Some(timing) => socket.set_tcp_keepalive(
                &TcpKeepalive::new()
                    .with_time(timing.idle)
                    .with_interval(timing.interval)
                    .with_retries(timing.count),
            ),
        }
    }
}

// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    const TIMING: Keepalive = Keepalive {
        idle: Duration::from_secs(37),
        interval: Duration::from_secs(11),
        count: 5,
    };

    /// What the kernel says is set on `stream`.
    fn read_back(stream: &TcpStream) -> (bool, Option<Keepalive>) {
        let socket = SockRef::from(stream);
        let keepalive = socket.keepalive().unwrap().then(|| Keepalive {
            idle: socket.keepalive_time().unwrap(),
            interval: socket.keepalive_interval().unwrap(),
            count: socket.keepalive_retries().unwrap(),
        });
        (socket.nodelay().unwrap(), keepalive)
    }

    #[tokio::test]
    async fn connect_sets_nodelay_keepalive_and_the_source_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let options = SocketOptions {
            keepalive: Some(TIMING),
            bind_address: Some("127.0.0.2".parse().unwrap()),
        };
        let stream = options
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (_, seen_from) = listener.accept().await.unwrap();
        assert_eq!(seen_from.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(read_back(&stream), (true, Some(TIMING)));
    }

    #[tokio::test]
    async fn apply_sets_nodelay_and_the_configured_keepalive_on_accepted_sockets() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let on = SocketOptions {
            keepalive: Some(TIMING),
            bind_address: None,
        };
        for (options, expected) in [(on, Some(TIMING)), (SocketOptions::default(), None)] {
            let _client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            assert_eq!(read_back(&accepted), (false, None), "as accepted");
            options.apply(&accepted).unwrap();
            assert_eq!(read_back(&accepted), (true, expected));
        }
    }

    #[tokio::test]
    async fn a_destination_of_the_other_family_is_refused_before_connecting() {
        let options = SocketOptions {
            keepalive: None,
            bind_address: Some("127.0.0.1".parse().unwrap()),
        };
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        assert!(!options.can_reach(&v6));
        let err = options.connect(v6).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable);
        assert!(err.to_string().contains("upstream.bind_address"), "{err}");
    }

    #[test]
    fn the_configured_defaults_are_conservative() {
        let options = SocketOptions::from_config(&Config::default());
        assert_eq!(
            options.keepalive,
            Some(Keepalive {
                idle: Duration::from_secs(60),
                interval: Duration::from_secs(15),
                count: 4,
            })
        );
        assert_eq!(options.bind_address, None);
    }
}
