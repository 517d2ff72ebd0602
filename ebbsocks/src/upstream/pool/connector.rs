//! How the pool opens a new upstream TCP connection. The trait lets tests
//! and benchmarks slow connects down, fail them or redirect them.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::net::TcpStream;

use crate::upstream::socket_options::SocketOptions;

/// Opens a new TCP connection to `addr`. The pool applies the connect
/// timeout around it; implementations need not.
pub trait Connector: Send + Sync + 'static {
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>>;
}

/// The real connector. Its connections get the session socket options
/// (`TCP_NODELAY`, keepalive, the outbound address); the default sets
/// `TCP_NODELAY` only, since a proxy forwards whatever its client wrote
/// without waiting to batch it.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpConnector {
    options: SocketOptions,
}

impl TcpConnector {
    /// The server builds its connector from the configuration with this.
    pub fn new(options: SocketOptions) -> Self {
        Self { options }
    }

    pub fn options(&self) -> &SocketOptions {
        &self.options
    }
}

impl Connector for TcpConnector {
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        Box::pin(self.options.connect(addr))
    }
}
