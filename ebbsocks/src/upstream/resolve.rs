//! Asynchronous name resolution. hickory speaks DNS from the runtime itself
//! (and reads /etc/hosts), so a lookup never parks a blocking thread. The
//! name servers come from /etc/resolv.conf unless `[upstream.dns]` names
//! some; timeouts and the cache's bounds come from `[upstream.dns]`.
//! Both address families are asked for at once, so that the connect step
//! can try them side by side (Happy Eyeballs).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolverConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, TokioResolver};

use crate::config::DnsConfig;
use crate::proto::TargetAddr;

#[derive(Debug, Clone)]
pub struct Resolver {
    inner: TokioResolver,
    /// Names answered without a lookup, before DNS and the hosts file
    /// (tests use them to give a name several addresses).
    fixed: Arc<HashMap<String, Vec<IpAddr>>>,
}

/// Why a name gave no address; each kind is counted apart and has its
/// reply code (see `error.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveKind {
    /// The name does not exist (NXDOMAIN).
    NotFound,
    /// The name exists but has no IPv4 or IPv6 address.
    NoAddresses,
    /// No answer in time: the name servers' timeouts, or the connect
    /// deadline passed while resolving.
    Timeout,
    /// No name server could be reached.
    Unavailable,
    /// The name servers answered with an error (SERVFAIL, REFUSED, a
    /// malformed answer).
    Failed,
}

/// A failed lookup: its kind, and the resolver's words for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveFailure {
    pub kind: ResolveKind,
    pub message: String,
}

impl ResolveFailure {
    pub fn new(kind: ResolveKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    fn from_hickory(err: &ResolveError) -> Self {
        let kind = match err.proto().map(|proto| proto.kind()) {
            Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => {
                match u16::from(*response_code) {
                    // NOERROR with no records: the name has other records only.
                    0 => ResolveKind::NoAddresses,
                    3 => ResolveKind::NotFound,
                    _ => ResolveKind::Failed,
                }
            }
            Some(ProtoErrorKind::Timeout) => ResolveKind::Timeout,
            Some(ProtoErrorKind::NoConnections | ProtoErrorKind::Io(_)) => ResolveKind::Unavailable,
            _ => ResolveKind::Failed,
        };
        Self::new(kind, err.to_string())
    }
}

impl fmt::Display for ResolveFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Resolver {
    /// The system's resolver configuration with the default
    /// `[upstream.dns]` settings.
    pub fn from_system() -> Self {
        Self::from_config(&DnsConfig::default())
    }

    /// Name servers from `config`, or from the system's resolv.conf when it
    /// names none; without a resolv.conf (a bare container) hickory's
    /// defaults, so names from the hosts file still resolve. Timeouts and
    /// cache bounds always come from `config`.
    pub fn from_config(config: &DnsConfig) -> Self {
        let provider = TokioConnectionProvider::default();
        let mut builder = if config.nameservers.is_empty() {
            match TokioResolver::builder_tokio() {
                Ok(builder) => builder,
                Err(err) => {
                    tracing::warn!(%err, "cannot read the system resolver configuration; using defaults");
                    TokioResolver::builder_with_config(ResolverConfig::default(), provider)
                }
            }
        } else {
            let mut servers = NameServerConfigGroup::new();
            for server in &config.nameservers {
                for protocol in [Protocol::Udp, Protocol::Tcp] {
                    servers.push(NameServerConfig::new(server.0, protocol));
                }
            }
            let resolv = ResolverConfig::from_parts(None, Vec::new(), servers);
            TokioResolver::builder_with_config(resolv, provider)
        };
        apply(builder.options_mut(), config);
        Self {
            inner: builder.build(),
            fixed: Arc::default(),
        }
    }

    /// Answers `name` with `addrs` (in that order) instead of looking it up.
    pub fn with_fixed(mut self, name: &str, addrs: Vec<IpAddr>) -> Self {
        Arc::make_mut(&mut self.fixed).insert(name.to_ascii_lowercase(), addrs);
        self
    }

    /// The socket addresses `target` stands for: a fixed answer in its
    /// order, else the IPv4 ones first (so a caller that takes only the
    /// first, like a UDP datagram, behaves as before IPv6 answers were
    /// asked for), each family in the resolver's order.
    pub async fn resolve(&self, target: &TargetAddr) -> Result<Vec<SocketAddr>, ResolveFailure> {
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
            .map_err(|err| ResolveFailure::from_hickory(&err))?;
        let mut addrs: Vec<SocketAddr> =
            lookup.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        if addrs.is_empty() {
            return Err(ResolveFailure::new(
                ResolveKind::NoAddresses,
                "no addresses",
            ));
        }
        // Stable: each family keeps the resolver's order.
        addrs.sort_by_key(|addr| addr.is_ipv6());
        Ok(addrs)
    }
}

fn apply(options: &mut ResolverOpts, config: &DnsConfig) {
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    options.timeout = config.timeout();
    options.attempts = config.attempts;
    options.cache_size = config.cache_size;
    options.positive_max_ttl = Some(Duration::from_secs(config.max_ttl_secs));
    options.negative_max_ttl = Some(Duration::from_secs(config.negative_max_ttl_secs));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NameServer;
    use tokio::net::UdpSocket;

    /// A name server on loopback that answers every query with `rcode` and
    /// no records, or never answers (`None`).
    async fn fake_name_server(rcode: Option<u8>) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                if let Some(rcode) = rcode {
                    let _ = socket
                        .send_to(&empty_answer(&buf[..len], rcode), from)
                        .await;
                }
            }
        });
        addr
    }

    /// The answer to `query` with response code `rcode` and no records: the
    /// query's ID and question, QR and RD/RA set.
    fn empty_answer(query: &[u8], rcode: u8) -> Vec<u8> {
        // The question: QNAME's labels up to the root, then QTYPE, QCLASS.
        let mut end = 12;
        while query[end] != 0 {
            end += 1 + usize::from(query[end]);
        }
        end += 1 + 4;
        let mut answer = query[..2].to_vec();
        answer.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1, 0, 0, 0, 0, 0, 0]);
        answer.extend_from_slice(&query[12..end]);
        answer
    }

    fn resolver_at(server: SocketAddr) -> Resolver {
        Resolver::from_config(&DnsConfig {
            nameservers: vec![NameServer(server)],
            timeout_ms: 300,
            attempts: 1,
            ..DnsConfig::default()
        })
    }

    #[tokio::test]
    async fn failures_are_told_apart_by_kind() {
        let cases = [
            (Some(3), ResolveKind::NotFound),
            (Some(0), ResolveKind::NoAddresses),
            (Some(2), ResolveKind::Failed),
            (None, ResolveKind::Timeout),
        ];
        for (rcode, kind) in cases {
            let resolver = resolver_at(fake_name_server(rcode).await);
            let target = TargetAddr::Domain("nothing-here.test".into(), 80);
            let lookup = tokio::time::timeout(Duration::from_secs(10), resolver.resolve(&target));
            let failure = lookup
                .await
                .expect("the lookup ends within its timeouts")
                .expect_err("no address");
            assert_eq!(failure.kind, kind, "rcode {rcode:?}: {failure}");
        }
    }

    #[tokio::test]
    async fn localhost_has_both_families_ipv4_first() {
        let resolver = Resolver::from_system();
        let addrs = resolver
            .resolve(&TargetAddr::Domain("localhost".into(), 80))
            .await
            .expect("localhost resolves");
        let v4: SocketAddr = "127.0.0.1:80".parse().expect("valid");
        let v6: SocketAddr = "[::1]:80".parse().expect("valid");
        assert!(addrs.contains(&v4) && addrs.contains(&v6), "{addrs:?}");
        assert!(addrs[0].is_ipv4(), "{addrs:?}");
    }

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
