//! How the pool opens a new upstream TCP connection. The trait lets tests
//! and benchmarks slow connects down, fail them or redirect them.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::net::TcpStream;

/// Opens a new TCP connection to `addr`. The pool applies the connect
/// timeout around it; implementations need not.
pub trait Connector: Send + Sync + 'static {
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>>;
}

/// The real connector: `TcpStream::connect` with `TCP_NODELAY` set, since a
/// proxy forwards whatever its client wrote without waiting to batch it.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>> {
        Box::pin(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(stream)
        })
    }
}
