//! From a SOCKS target to a connected upstream socket: ask the access rules
//! about the name, resolve once, ask them about every address, then race
//! the allowed addresses through the pool (Happy Eyeballs, see
//! `happy_eyeballs.rs`; a pool hit answers at once). The connect goes only
//! to an address that passed, so a name cannot be re-resolved to a denied
//! one. One deadline, `server.pool.connect_timeout_ms`, covers the whole
//! way from the start of resolving to an established connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::access::{Bound, Denial};
use crate::config::{AddressFamily, Config};
use crate::error::SessionError;
use crate::proto::TargetAddr;
use crate::upstream::happy_eyeballs::{attempt_order, race};
use crate::upstream::pool::{Pool, Upstream};
use crate::upstream::resolve::{ResolveFailure, ResolveKind, Resolver};
use crate::upstream::socket_options::SocketOptions;

/// How a CONNECT reaches its destination, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectPolicy {
    /// From the start of resolving to an established connection.
    pub deadline: Duration,
    /// Happy Eyeballs: between the starts of two attempts.
    pub attempt_delay: Duration,
    /// Addresses tried at most.
    pub max_addresses: usize,
    pub prefer: AddressFamily,
    /// The session socket options (the outbound address decides which
    /// destinations can be reached at all).
    pub options: SocketOptions,
}

impl ConnectPolicy {
    pub fn from_config(config: &Config) -> Self {
        let upstream = &config.upstream;
        Self {
            deadline: config.server.pool.connect_timeout(),
            attempt_delay: upstream.attempt_delay(),
            max_addresses: upstream.max_addresses,
            prefer: upstream.prefer_family,
            options: SocketOptions::from_config(config),
        }
    }

    /// The deadline of a connect that starts now.
    pub fn deadline_from_now(&self) -> Instant {
        Instant::now() + self.deadline
    }
}

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
    policy: &ConnectPolicy,
) -> Result<Upstream, SessionError> {
    let deadline = policy.deadline_from_now();
    let allowed = resolve_within(deadline, target, resolver, gate).await?;
    let failed = |source| SessionError::Connect {
        target: target.to_string(),
        source,
    };
    let reachable: Vec<SocketAddr> = allowed
        .into_iter()
        .filter(|addr| policy.options.can_reach(addr))
        .collect();
    if reachable.is_empty() {
        return Err(failed(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no address of the family of upstream.bind_address",
        )));
    }
    let mut order = attempt_order(&reachable, policy.prefer, usize::MAX);
    warm_first(&mut order, |addr| pool.has_idle(addr));
    order.truncate(policy.max_addresses);
    let attempts = race(&order, policy.attempt_delay, |addr| async move {
        let result = pool.get(addr).await;
        if let Err(err) = &result {
            tracing::debug!(%addr, %err, "upstream connect attempt failed");
        }
        result
    });
    match tokio::time::timeout_at(deadline, attempts).await {
        Ok(Ok(upstream)) => Ok(upstream),
        Ok(Err(source)) => Err(failed(source)),
        Err(_) => Err(failed(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no connection within {} ms ({} address(es) tried)",
                policy.deadline.as_millis(),
                order.len()
            ),
        ))),
    }
}

/// Moves the addresses with a warm pooled connection to the front, each
/// group keeping its order: a hit answers at once, so it should not wait
/// behind an attempt that may hang.
fn warm_first(order: &mut [SocketAddr], warm: impl Fn(SocketAddr) -> bool) {
    // Stable: `false` (warm) sorts before `true`.
    order.sort_by_key(|addr| !warm(*addr));
}

/// [`allowed_addresses`] by `deadline`; past it, a resolve timeout.
pub async fn resolve_within(
    deadline: Instant,
    target: &TargetAddr,
    resolver: &Resolver,
    gate: &impl Gate,
) -> Result<Vec<SocketAddr>, SessionError> {
    match tokio::time::timeout_at(deadline, allowed_addresses(target, resolver, gate)).await {
        Ok(result) => result,
        Err(_) => Err(SessionError::Resolve {
            host: target.to_string(),
            failure: ResolveFailure::new(
                ResolveKind::Timeout,
                "not resolved within the connect deadline",
            ),
        }),
    }
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
        .map_err(|failure| SessionError::Resolve {
            host: target.to_string(),
            failure,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_addresses_go_first_and_both_groups_keep_their_order() {
        let addr = |text: &str| text.parse::<SocketAddr>().expect("valid");
        let mut order = vec![
            addr("[2001:db8::1]:80"),
            addr("192.0.2.1:80"),
            addr("[2001:db8::2]:80"),
            addr("192.0.2.2:80"),
        ];
        let warm = [order[1], order[3]];
        warm_first(&mut order, |a| warm.contains(&a));
        assert_eq!(
            order,
            vec![
                addr("192.0.2.1:80"),
                addr("192.0.2.2:80"),
                addr("[2001:db8::1]:80"),
                addr("[2001:db8::2]:80"),
            ]
        );
    }
}
