//! `[server.proxy_protocol]`: the load balancers whose connections start
//! with a PROXY protocol header naming the real client. Its check is part
//! of [`Config::validate`](super::Config::validate).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::access::Cidr;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyProtocolConfig {
    /// Addresses or CIDR ranges of the balancers. A connection from one of
    /// them must start with a PROXY header (version 1 or 2); a connection
    /// from anywhere else must not. Empty: the PROXY protocol is off.
    pub trusted: Vec<String>,
}

impl ProxyProtocolConfig {
    /// The trusted ranges, or `None` when the PROXY protocol is off. The
    /// error names the entry that is not an address or range.
    pub fn trusted_sources(&self) -> Result<Option<TrustedSources>, String> {
        if self.trusted.is_empty() {
            return Ok(None);
        }
        let ranges = self
            .trusted
            .iter()
            .map(|entry| Cidr::parse(entry))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(TrustedSources { ranges }))
    }
}

/// The compiled `trusted` list. A handful of balancers: a linear scan.
#[derive(Debug, Clone)]
pub struct TrustedSources {
    ranges: Vec<Cidr>,
}

impl TrustedSources {
    /// Whether a connection from `ip` must carry a PROXY header. An
    /// IPv4-mapped IPv6 peer (a listener on `[::]`) counts as its IPv4
    /// address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.ranges.iter().any(|range| range.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(trusted: &[&str]) -> ProxyProtocolConfig {
        ProxyProtocolConfig {
            trusted: trusted.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn an_empty_list_turns_the_protocol_off() {
        assert!(config(&[]).trusted_sources().expect("valid").is_none());
    }

    #[test]
    fn ranges_and_single_addresses_match_their_members_only() {
        let trusted = config(&["10.1.0.0/16", "192.0.2.7", "2001:db8::/32"])
            .trusted_sources()
            .expect("valid")
            .expect("on");
        assert!(trusted.contains(ip("10.1.200.3")));
        assert!(!trusted.contains(ip("10.2.0.1")));
        assert!(trusted.contains(ip("192.0.2.7")));
        assert!(!trusted.contains(ip("192.0.2.8")));
        assert!(trusted.contains(ip("2001:db8:1::5")));
        assert!(!trusted.contains(ip("2001:db9::5")));
        // A dual-stack listener sees IPv4 balancers as mapped addresses.
        assert!(trusted.contains(ip("::ffff:10.1.0.9")));
    }

    #[test]
    fn a_bad_entry_is_named() {
        let err = config(&["127.0.0.1/32", "balancer.local"])
            .trusted_sources()
            .expect_err("not an address");
        assert!(err.contains("balancer.local"), "{err}");
    }
}
