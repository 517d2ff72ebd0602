//! One compiled rule and what it takes to match it. The index in
//! `index.rs` decides which rules to look at and matches destinations in
//! bulk; the destination tests here do the same for one rule and are the
//! reference the index is checked against (so they exist in tests only).

use std::net::IpAddr;
use std::sync::Arc;

use super::cidr::Cidr;
use super::names::NamePattern;
use super::ports::PortSet;
use super::private::embedded_ipv4;
use super::Action;
use crate::proto::Command;

#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule's `name`, else `#<index>`.
    pub label: Arc<str>,
    pub action: Action,
    pub asker: AskerMatchers,
    pub destinations: Option<Destinations>,
}

/// Every matcher but `destinations`. Comparable, so the index can tell
/// when a later rule asks exactly what an earlier one does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AskerMatchers {
    pub users: Option<Box<[Box<str>]>>,
    pub clients: Option<Box<[Cidr]>>,
    pub ports: Option<PortSet>,
    pub commands: Option<CommandSet>,
}

/// Who asks and for which port: everything a rule tests besides the
/// destination. `client` is already unmapped (IPv4-mapped -> IPv4).
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub client: IpAddr,
    pub user: Option<&'a str>,
    pub command: Command,
    pub port: u16,
}

/// How a rule's `destinations` matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationMatch {
    /// The rule has no `destinations`: it matches wherever the request goes.
    Any,
    /// A name entry matched the requested name.
    Name,
    /// A CIDR entry holds the address (an explicit address allow).
    Cidr,
}

impl Rule {
    /// Whether every matcher other than `destinations` matches.
    pub fn matches_asker(&self, asker: &Asker<'_>) -> bool {
        self.asker.matches(asker)
    }
}

impl AskerMatchers {
    pub fn matches(&self, asker: &Asker<'_>) -> bool {
        self.commands
            .is_none_or(|commands| commands.contains(asker.command))
            && self
                .ports
                .as_ref()
                .is_none_or(|ports| ports.contains(asker.port))
            && self.users.as_ref().is_none_or(|users| {
                asker
                    .user
                    .is_some_and(|user| users.iter().any(|u| &**u == user))
            })
            && self
                .clients
                .as_ref()
                .is_none_or(|clients| clients.iter().any(|cidr| cidr.contains(asker.client)))
    }
}

impl Rule {
    /// How `destinations` matches the normalised `name` and the address;
    /// `None` when it does not. A CIDR hit wins over a name hit, since the
    /// address is what gets connected to.
    #[cfg(test)]
    pub fn destination_match(
        &self,
        name: Option<&str>,
        addr: Option<IpAddr>,
    ) -> Option<DestinationMatch> {
        let Some(destinations) = &self.destinations else {
            return Some(DestinationMatch::Any);
        };
        if addr.is_some_and(|addr| destinations.holds_address(addr)) {
            return Some(DestinationMatch::Cidr);
        }
        if name.is_some_and(|name| destinations.names.iter().any(|p| p.matches(name))) {
            return Some(DestinationMatch::Name);
        }
        None
    }
}

/// A rule's `destinations`, split by kind.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    pub cidrs: Vec<Cidr>,
    pub names: Vec<NamePattern>,
}

impl Destinations {
    /// Whether a range holds `addr`, or an IPv4 address that `addr` embeds
    /// (so `deny 169.254.0.0/16` also refuses `64:ff9b::a9fe:a9fe`).
    #[cfg(test)]
    pub fn holds_address(&self, addr: IpAddr) -> bool {
        addresses_to_match(addr)
            .into_iter()
            .flatten()
            .any(|ip| self.cidrs.iter().any(|cidr| cidr.contains(ip)))
    }
}

/// The addresses a destination is compared as: itself, and for IPv6 any
/// IPv4 address it embeds.
pub fn addresses_to_match(addr: IpAddr) -> [Option<IpAddr>; 3] {
    match addr {
        IpAddr::V4(_) => [Some(addr), None, None],
        IpAddr::V6(v6) => {
            let [a, b] = embedded_ipv4(v6);
            [Some(addr), a.map(IpAddr::V4), b.map(IpAddr::V4)]
        }
    }
}

/// A set of SOCKS commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandSet(u8);

impl CommandSet {
    pub const EMPTY: CommandSet = CommandSet(0);

    /// Parses a config word: `connect`, `bind` or `udp`.
    pub fn word(word: &str) -> Option<Command> {
        match word {
            "connect" => Some(Command::Connect),
            "bind" => Some(Command::Bind),
            "udp" => Some(Command::UdpAssociate),
            _ => None,
        }
    }

    pub fn with(self, command: Command) -> CommandSet {
        CommandSet(self.0 | 1 << command.as_u8())
    }

    pub fn contains(self, command: Command) -> bool {
        self.0 & (1 << command.as_u8()) != 0
    }
}
