//! The `[upstream]` section (how the proxy reaches destinations: Happy
//! Eyeballs, outbound address, DNS) and `[server.keepalive]` (TCP keepalive
//! on both legs of every session). Their checks are part of
//! [`Config::validate`].

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError};

/// `[upstream]`: how a CONNECT reaches its destination.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// The local address outbound connections are made from (multi-homed
    /// hosts). Destinations of the other address family are not tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_address: Option<IpAddr>,
    /// Happy Eyeballs (RFC 8305): the pause before the next address is
    /// tried while earlier attempts are still pending.
    pub attempt_delay_ms: u64,
    /// Addresses of one destination tried at most.
    pub max_addresses: usize,
    /// Which family a name with both IPv4 and IPv6 addresses is tried in
    /// first.
    pub prefer_family: AddressFamily,
    pub dns: DnsConfig,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            bind_address: None,
            attempt_delay_ms: 250,
            max_addresses: 8,
            prefer_family: AddressFamily::Ipv6,
            dns: DnsConfig::default(),
        }
    }
}

impl UpstreamConfig {
    pub fn attempt_delay(&self) -> Duration {
        Duration::from_millis(self.attempt_delay_ms)
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    Ipv4,
    #[default]
    Ipv6,
}

/// `[upstream.dns]`: the resolver. Name servers, search domains and `ndots`
/// come from /etc/resolv.conf, and /etc/hosts is read, unless
/// `nameservers` is set.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Name servers to ask instead of those in /etc/resolv.conf; empty =
    /// the system's.
    pub nameservers: Vec<NameServer>,
    /// How long one query to one name server may take.
    pub timeout_ms: u64,
    /// How many times a query is sent before the lookup fails.
    pub attempts: usize,
    /// Answers cached at most (least recently used go first).
    pub cache_size: usize,
    /// Cached answers are kept at most this long, whatever their TTL.
    pub max_ttl_secs: u64,
    /// "No such name" answers are cached at most this long.
    pub negative_max_ttl_secs: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout_ms: 2000,
            attempts: 2,
            cache_size: 1024,
            max_ttl_secs: 300,
            negative_max_ttl_secs: 30,
        }
    }
}

impl DnsConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// A name server: an IP address (port 53) or `address:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NameServer(pub SocketAddr);

impl TryFrom<String> for NameServer {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Self(addr));
        }
        match text.parse::<IpAddr>() {
            Ok(ip) => Ok(Self(SocketAddr::new(ip, 53))),
            Err(_) => Err(format!("{text:?} is not an IP address or an address:port")),
        }
    }
}

impl From<NameServer> for String {
    fn from(server: NameServer) -> Self {
        server.0.to_string()
    }
}

/// `[server.keepalive]`: TCP keepalive on the client's and the upstream
/// connection of every session, and on pooled connections. A peer that
/// vanished (a host that lost power, a NAT that dropped the mapping) is
/// found after `idle_secs + interval_secs * count`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KeepaliveConfig {
    pub enabled: bool,
    /// Seconds without traffic before the first probe.
    pub idle_secs: u64,
    /// Seconds between unanswered probes.
    pub interval_secs: u64,
    /// Unanswered probes before the connection is dropped.
    pub count: u32,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            idle_secs: 60,
            interval_secs: 15,
            count: 4,
        }
    }
}

impl Config {
    pub(super) fn validate_upstream(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: origin.to_owned(),
            key: key.to_owned(),
            message,
        };
        let upstream = &self.upstream;
        if upstream.max_addresses == 0 {
            return Err(invalid(
                "upstream.max_addresses",
                "must be at least 1".into(),
            ));
        }
        if let Some(ip) = upstream.bind_address {
            if ip.is_unspecified() || ip.is_multicast() {
                return Err(invalid(
                    "upstream.bind_address",
                    format!("{ip} is not a local unicast address"),
                ));
            }
        }
        let dns = &upstream.dns;
        if dns.timeout_ms == 0 {
            return Err(invalid(
                "upstream.dns.timeout_ms",
                "must be at least 1 ms".into(),
            ));
        }
        if dns.attempts == 0 {
            return Err(invalid(
                "upstream.dns.attempts",
                "must be at least 1".into(),
            ));
        }
        let keepalive = &self.server.keepalive;
        if keepalive.enabled {
            // Linux refuses 0 and anything above these (TCP_KEEPIDLE and
            // TCP_KEEPINTVL: 32767 s, TCP_KEEPCNT: 127).
            for (key, value, max) in [
                ("server.keepalive.idle_secs", keepalive.idle_secs, 32767),
                (
                    "server.keepalive.interval_secs",
                    keepalive.interval_secs,
                    32767,
                ),
                ("server.keepalive.count", u64::from(keepalive.count), 127),
            ] {
                if !(1..=max).contains(&value) {
                    return Err(invalid(key, format!("must be between 1 and {max}")));
                }
            }
        }
        Ok(())
    }
}
