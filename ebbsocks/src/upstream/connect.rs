//! From a SOCKS target to a connected upstream socket: resolve, then try each
//! address in turn through the pool (which applies the connect timeout to
//! every attempt and counts it).

use std::sync::Arc;

use crate::error::SessionError;
use crate::proto::TargetAddr;
use crate::upstream::pool::{Pool, Upstream};
use crate::upstream::resolve::Resolver;

pub async fn connect(
    target: &TargetAddr,
    resolver: &Resolver,
    pool: &Arc<Pool>,
) -> Result<Upstream, SessionError> {
    let addrs = resolver
        .resolve(target)
        .await
        .map_err(|message| SessionError::Resolve {
            host: target.to_string(),
            message,
        })?;
    let mut last_error = None;
    for addr in addrs {
        match pool.get(addr).await {
            Ok(upstream) => return Ok(upstream),
            Err(err) => {
                tracing::debug!(%addr, %err, "upstream connect failed");
                last_error = Some(err);
            }
        }
    }
    Err(SessionError::Connect {
        target: target.to_string(),
        source: last_error.unwrap_or_else(|| std::io::Error::other("no addresses")),
    })
}
