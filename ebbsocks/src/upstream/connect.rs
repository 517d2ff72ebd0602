//! From a SOCKS target to a connected upstream socket: ask the access rules
//! about the name, resolve once, ask them about every address, then try each
//! allowed address in turn through the pool (which applies the connect
//! timeout to every attempt and counts it). The connect goes only to an
//! address that passed, so a name cannot be re-resolved to a denied one.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::access::{Bound, Denial};
use crate::error::SessionError;
use crate::proto::TargetAddr;
use crate::upstream::pool::{Pool, Upstream};
use crate::upstream::resolve::Resolver;

/// The access decisions [`connect`] needs; the server builds them from the
/// rules in force and who is asking.
pub trait Gate {
    /// Before resolving `name`: a refusal that holds for any address.
    fn check_name(&self, name: &str, port: u16) -> Result<(), Denial>;
    /// For one address the connect would go to; `name` is the requested
    /// name when the address came from resolving it.
    fn check_addr(&self, name: Option<&str>, addr: SocketAddr) -> Result<(), Denial>;
}

impl Gate for Bound<'_> {
    fn check_name(&self, name: &str, port: u16) -> Result<(), Denial> {
        self.rules.check_name(&self.who, name, port)
    }

    fn check_addr(&self, name: Option<&str>, addr: SocketAddr) -> Result<(), Denial> {
        self.rules.check_addr(&self.who, name, addr)
    }
}

pub async fn connect(
    target: &TargetAddr,
    resolver: &Resolver,
    pool: &Arc<Pool>,
    gate: &impl Gate,
) -> Result<Upstream, SessionError> {
    let allowed = allowed_addresses(target, resolver, gate).await?;
    let mut last_error = None;
    for addr in allowed {
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

/// Resolves `target` once and keeps the addresses `gate` allows, in order.
/// When none is allowed, the first refusal is the answer.
pub async fn allowed_addresses(
    target: &TargetAddr,
    resolver: &Resolver,
    gate: &impl Gate,
) -> Result<Vec<SocketAddr>, SessionError> {
    let name = match target {
        TargetAddr::Domain(name, port) => {
            gate.check_name(name, *port).map_err(SessionError::Denied)?;
            Some(name.as_str())
        }
        TargetAddr::Ip(_) => None,
    };
    let addrs = resolver
        .resolve(target)
        .await
        .map_err(|message| SessionError::Resolve {
            host: target.to_string(),
            message,
        })?;
    let mut first_denial = None;
    let mut allowed = Vec::with_capacity(addrs.len());
    for addr in addrs {
        match gate.check_addr(name, addr) {
            Ok(()) => allowed.push(addr),
            Err(denial) => {
                tracing::debug!(%addr, rule = %denial.rule, "resolved address refused");
                first_denial.get_or_insert(denial);
            }
        }
    }
    match first_denial {
        Some(denial) if allowed.is_empty() => Err(SessionError::Denied(denial)),
        _ => Ok(allowed),
    }
}
