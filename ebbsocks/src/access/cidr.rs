//! Address ranges: parsing `10.0.0.0/8`-style entries, and the prefix
//! tables that find every rule whose range holds an address without
//! looking at the rules whose ranges do not.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address range. IPv4 networks live in the low 32 bits of `network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub v6: bool,
    pub network: u128,
    pub len: u8,
}

impl Cidr {
    /// Parses `addr/len`, or a bare address as a single host. An IPv6
    /// range inside `::ffff:0:0/96` becomes the IPv4 range it stands for,
    /// since clients are compared as IPv4 and destinations also as the
    /// IPv4 address they embed. Errors say what is wrong, and for host
    /// bits set, which network was probably meant.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr_text, len_text) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("{text:?}: {addr_text:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len_text {
            None => max,
            Some(len) => len
                .parse::<u8>()
                .map_err(|_| format!("{text:?}: prefix length {len:?} is not a number"))?,
        };
        if len > max {
            return Err(format!(
                "{text:?}: prefix length {len} is longer than the {max} bits of the address"
            ));
        }
        let (v6, bits) = family_bits(addr);
        let network = network_of(bits, len, v6);
        if network != bits {
            let meant = Cidr { v6, network, len };
            return Err(format!(
                "{text:?} has host bits set; the network is \"{meant}\" \
                 (or write the address alone for a single host)"
            ));
        }
        let cidr = Cidr { v6, network, len };
        Ok(cidr.unmapped())
    }

    /// Whether `ip` lies in the range; IPv4 ranges never hold IPv6
    /// addresses and the other way round (callers unmap first).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (v6, bits) = family_bits(ip);
        v6 == self.v6 && network_of(bits, self.len, v6) == self.network
    }

    fn unmapped(self) -> Cidr {
        let mapped_prefix = u128::from(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0));
        if self.v6 && self.len >= 96 && self.network >> 32 == mapped_prefix >> 32 {
            return Cidr {
                v6: false,
                network: self.network & u128::from(u32::MAX),
                len: self.len - 96,
            };
        }
        self
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.v6 {
            write!(f, "{}/{}", Ipv6Addr::from(self.network), self.len)
        } else {
            write!(f, "{}/{}", Ipv4Addr::from(self.network as u32), self.len)
        }
    }
}

/// The address as (is IPv6, bits); IPv4 in the low 32 bits.
pub fn family_bits(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (true, u128::from(v6)),
    }
}

/// `bits` with everything after the first `len` bits of the family cleared.
fn network_of(bits: u128, len: u8, v6: bool) -> u128 {
    let width: u32 = if v6 { 128 } else { 32 };
    let host_bits = width - u32::from(len);
    if host_bits >= 128 {
        return 0;
    }
    bits & !((1u128 << host_bits) - 1)
}

/// For one address family: per prefix length present, the networks of
/// that length in sorted order, each with the rules (indices, ascending)
/// that list it. A lookup masks the address once per length and binary
/// searches, so its cost follows the number of distinct lengths (at most
/// 33 or 129), not the number of rules.
#[derive(Debug, Default, Clone)]
pub struct PrefixTable {
    v6: bool,
    levels: Vec<Level>,
}

#[derive(Debug, Clone)]
struct Level {
    len: u8,
    networks: Vec<(u128, Vec<u32>)>,
}

impl PrefixTable {
    /// `entries`: (range, rule index) for this family, in any order.
    pub fn build(v6: bool, entries: impl IntoIterator<Item = (Cidr, u32)>) -> PrefixTable {
        let mut flat: Vec<(u8, u128, u32)> = entries
            .into_iter()
            .filter(|(cidr, _)| cidr.v6 == v6)
            .map(|(cidr, rule)| (cidr.len, cidr.network, rule))
            .collect();
        flat.sort_unstable();
        flat.dedup();
        let mut levels: Vec<Level> = Vec::new();
        for (len, network, rule) in flat {
            if levels.last().is_none_or(|level| level.len != len) {
                levels.push(Level {
                    len,
                    networks: Vec::new(),
                });
            }
            let Some(level) = levels.last_mut() else {
                continue;
            };
            match level.networks.last_mut() {
                Some((last, rules)) if *last == network => rules.push(rule),
                _ => level.networks.push((network, vec![rule])),
            }
        }
        PrefixTable { v6, levels }
    }

    /// Calls `found` with the rule list of every range that holds `bits`
    /// (an address of this table's family, as from [`family_bits`]).
    pub fn lookup<'a>(&'a self, bits: u128, mut found: impl FnMut(&'a [u32])) {
        for level in &self.levels {
            let network = network_of(bits, level.len, self.v6);
            if let Ok(at) = level
                .networks
                .binary_search_by_key(&network, |(net, _)| *net)
            {
                found(&level.networks[at].1);
            }
        }
    }
}
