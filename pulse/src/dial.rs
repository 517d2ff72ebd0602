//! Opening one outbound stream: straight to the destination, or through a
//! SOCKS5 proxy. The whole of it, TCP handshake and SOCKS exchange, shares
//! one timeout so a stalled server cannot stall a run.

use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::fail::FailKind;
use crate::socks::{self, Credentials, Target};

#[derive(Debug, Clone)]
pub struct Proxy {
    pub addr: Target,
    pub credentials: Option<Credentials>,
}

#[derive(Debug, Clone)]
pub struct Dialer {
    /// `None` connects directly.
    pub proxy: Option<Proxy>,
    pub timeout: Duration,
    /// Small request/response exchanges want Nagle off; bulk and idle
    /// connections do not care.
    pub nodelay: bool,
}

impl Dialer {
    pub fn direct(timeout: Duration) -> Dialer {
        Dialer {
            proxy: None,
            timeout,
            nodelay: false,
        }
    }

    pub fn via(proxy: Proxy, timeout: Duration) -> Dialer {
        Dialer {
            proxy: Some(proxy),
            timeout,
            nodelay: false,
        }
    }

    /// A stream on which the next byte written reaches `dest`.
    pub async fn dial(&self, dest: &Target) -> Result<TcpStream, FailKind> {
        match timeout(self.timeout, self.dial_inner(dest)).await {
            Ok(r) => r,
            Err(_) => Err(FailKind::Timeout),
        }
    }

    async fn dial_inner(&self, dest: &Target) -> Result<TcpStream, FailKind> {
        let first_hop = match &self.proxy {
            Some(p) => &p.addr,
            None => dest,
        };
        let mut stream = tcp_connect(first_hop)
            .await
            .map_err(|e| FailKind::from_io(&e))?;
        if self.nodelay {
            stream
                .set_nodelay(true)
                .map_err(|e| FailKind::from_io(&e))?;
        }
        if let Some(p) = &self.proxy {
            socks::handshake(&mut stream, dest, p.credentials.as_ref())
                .await
                .map_err(|e| FailKind::from_socks(&e))?;
        }
        Ok(stream)
    }
}

async fn tcp_connect(t: &Target) -> std::io::Result<TcpStream> {
    match t {
        Target::Addr(a) => TcpStream::connect(a).await,
        Target::Domain(host, port) => TcpStream::connect((host.as_str(), *port)).await,
    }
}
