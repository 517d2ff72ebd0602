// TEMPORARY STUB (not committed): replaced by the real relay on merge.
use std::time::Duration;
use tokio::net::TcpStream;
#[derive(Debug)]
pub struct RelayOptions {
    pub idle_timeout: Option<Duration>,
}
#[derive(Debug)]
pub struct RelayOutcome {
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
    pub end: RelayEnd,
}
#[derive(Debug)]
pub enum RelayEnd {
    Closed,
    IdleTimeout,
    Error(std::io::ErrorKind),
    Shutdown,
}
impl RelayEnd {
    pub fn label(&self) -> &'static str {
        "closed"
    }
}
pub async fn relay(
    mut client: TcpStream,
    mut upstream: TcpStream,
    _o: &RelayOptions,
) -> RelayOutcome {
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((a, b)) => RelayOutcome {
            client_to_upstream: a,
            upstream_to_client: b,
            end: RelayEnd::Closed,
        },
        Err(e) => RelayOutcome {
            client_to_upstream: 0,
            upstream_to_client: 0,
            end: RelayEnd::Error(e.kind()),
        },
    }
}
