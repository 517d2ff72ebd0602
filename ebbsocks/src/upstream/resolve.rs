//! Asynchronous name resolution. hickory speaks DNS from the runtime itself
//! (and reads /etc/hosts), so a lookup never parks a blocking thread.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_resolver::config::ResolverConfig;
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::TokioResolver;

use crate::proto::TargetAddr;

#[derive(Debug, Clone)]
pub struct Resolver {
    inner: TokioResolver,
    /// Names answered without a lookup, before DNS and the hosts file
    /// (tests use them to give a name several addresses).
    fixed: Arc<HashMap<String, Vec<IpAddr>>>,
}

impl Resolver {
    /// Uses the system's resolv.conf and hosts file; without a resolv.conf
    /// (a bare container) it falls back to hickory's defaults so names from
    /// the hosts file still resolve.
    pub fn from_system() -> Self {
        let inner = match TokioResolver::builder_tokio() {
            Ok(builder) => builder.build(),
            Err(err) => {
                tracing::warn!(%err, "cannot read the system resolver configuration; using defaults");
                TokioResolver::builder_with_config(
                    ResolverConfig::default(),
                    TokioConnectionProvider::default(),
                )
                .build()
            }
        };
        Self {
            inner,
            fixed: Arc::default(),
        }
    }

    /// Answers `name` with `addrs` (in that order) instead of looking it up.
    pub fn with_fixed(mut self, name: &str, addrs: Vec<IpAddr>) -> Self {
        Arc::make_mut(&mut self.fixed).insert(name.to_ascii_lowercase(), addrs);
        self
    }

    /// The socket addresses `target` stands for, in the order to try them.
    pub async fn resolve(&self, target: &TargetAddr) -> Result<Vec<SocketAddr>, String> {
        let (host, port) = match target {
            TargetAddr::Ip(addr) => return Ok(vec![*addr]),
            TargetAddr::Domain(host, port) => (host, *port),
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Some(ips) = self.fixed.get(&host.to_ascii_lowercase()) {
            return Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
        }
        let lookup = self
            .inner
            .lookup_ip(host.as_str())
            .await
            .map_err(|err| err.to_string())?;
        let addrs: Vec<SocketAddr> = lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        if addrs.is_empty() {
            return Err("no addresses".into());
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ip_targets_need_no_lookup() {
        let resolver = Resolver::from_system();
        let v6: SocketAddr = "[::1]:8080".parse().expect("valid");
        assert_eq!(resolver.resolve(&TargetAddr::Ip(v6)).await, Ok(vec![v6]));
        let literal = TargetAddr::Domain("127.0.0.1".into(), 80);
        assert_eq!(
            resolver.resolve(&literal).await,
            Ok(vec!["127.0.0.1:80".parse().expect("valid")])
        );
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback() {
        let resolver = Resolver::from_system();
        let addrs = resolver
            .resolve(&TargetAddr::Domain("localhost".into(), 80))
            .await
            .expect("localhost resolves");
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80),
            "{addrs:?}"
        );
    }
}
