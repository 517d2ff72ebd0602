// TEMPORARY STUB (not committed): replaced by the real pool on merge.
use crate::config::PoolConfig;
use crate::stats::Telemetry;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpStream;
pub trait Connector: Send + Sync + 'static {
    fn connect(
        &self,
        addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + '_>>;
}
#[derive(Debug)]
pub struct Pool {
    config: PoolConfig,
    created: std::sync::atomic::AtomicU64,
}
#[derive(Debug)]
pub struct Lease;
#[derive(Debug)]
pub struct Upstream {
    pub stream: TcpStream,
    pub reused: bool,
}
impl Upstream {
    pub fn into_parts(self) -> (TcpStream, Lease) {
        (self.stream, Lease)
    }
}
impl Pool {
    pub fn new(config: PoolConfig, _t: Arc<Telemetry>) -> Arc<Self> {
        Arc::new(Self {
            config,
            created: Default::default(),
        })
    }
    pub fn with_connector(
        config: PoolConfig,
        t: Arc<Telemetry>,
        _c: Arc<dyn Connector>,
    ) -> Arc<Self> {
        Self::new(config, t)
    }
    pub async fn get(self: &Arc<Self>, dest: SocketAddr) -> io::Result<Upstream> {
        let s = tokio::time::timeout(self.config.connect_timeout(), TcpStream::connect(dest))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        self.created
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Upstream {
            stream: s,
            reused: false,
        })
    }
    pub fn stats(&self) -> serde_json::Value {
        serde_json::json!({"total_created": self.created.load(std::sync::atomic::Ordering::Relaxed), "connections_in_use": 0})
    }
}
