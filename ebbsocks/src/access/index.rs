//! Finding the first matching rule without testing every rule.
//!
//! Each rule is filed by its destinations: under every range it lists (one
//! prefix table per address family), under every name it lists, or, with
//! no destinations, by who may match it (`asker_index.rs`: its users, else
//! its client ranges, else one plain list). A request collects the lists its name, address and
//! client fall into: ascending rule indices, each already known to match
//! on the destination. Walking each list up to the best match
//! found so far and testing only the remaining matchers (users, clients,
//! ports, commands) gives the same answer as a first-match scan of every
//! rule, at a cost that follows the candidates rather than the rule count.

use std::net::IpAddr;

use super::asker_index::{AskerIndex, AskerIndexBuilder};
use super::cidr::{family_bits, PrefixTable};
use super::names::NameIndex;
use super::rule::{addresses_to_match, Asker, DestinationMatch, Rule};

#[derive(Debug, Default, Clone)]
pub struct RuleIndex {
    /// Rules without `destinations`.
    anywhere: AskerIndex,
    /// Rules with at least one CIDR destination (the ones a name alone
    /// cannot settle), for `first_for_name`.
    with_ranges: AskerIndex,
    names: NameIndex,
    v4: PrefixTable,
    v6: PrefixTable,
}

/// The first matching rule and how its destination matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub rule: u32,
    pub how: DestinationMatch,
}

impl RuleIndex {
    pub fn build(rules: &[Rule]) -> RuleIndex {
        let mut names = NameIndex::default();
        let mut anywhere = AskerIndexBuilder::default();
        let mut with_ranges = AskerIndexBuilder::default();
        let mut ranges = Vec::new();
        for (at, rule) in (0u32..).zip(rules) {
            let Some(destinations) = &rule.destinations else {
                anywhere.insert(at, &rule.asker);
                continue;
            };
            for pattern in &destinations.names {
                names.insert(pattern, at);
            }
            if !destinations.cidrs.is_empty() {
                with_ranges.insert(at, &rule.asker);
            }
            ranges.extend(destinations.cidrs.iter().map(|cidr| (*cidr, at)));
        }
        RuleIndex {
            anywhere: anywhere.finish(),
            with_ranges: with_ranges.finish(),
            names,
            v4: PrefixTable::build(false, ranges.iter().copied()),
            v6: PrefixTable::build(true, ranges),
        }
    }

    /// The first rule matching `asker`, the normalised `name` (if any) and
    /// the address `addr`.
    pub fn first_for_address(
        &self,
        rules: &[Rule],
        asker: &Asker<'_>,
        name: Option<&str>,
        addr: IpAddr,
    ) -> Option<Found> {
        let mut walk = Walk::new(rules, asker);
        self.anywhere
            .lookup(asker, |list| walk.visit(list, DestinationMatch::Any));
        if let Some(name) = name {
            self.names
                .lookup(name, |list| walk.visit(list, DestinationMatch::Name));
        }
        for ip in addresses_to_match(addr).into_iter().flatten() {
            let (v6, bits) = family_bits(ip);
            let table = if v6 { &self.v6 } else { &self.v4 };
            table.lookup(bits, |list| walk.visit(list, DestinationMatch::Cidr));
        }
        walk.best
    }

    /// Before resolving: the first rule that matches `asker` and either
    /// matches the name or could match some address. `how` is `Cidr` when
    /// the winner is a rule that only an address can settle.
    pub fn first_for_name(&self, rules: &[Rule], asker: &Asker<'_>, name: &str) -> Option<Found> {
        let mut walk = Walk::new(rules, asker);
        self.anywhere
            .lookup(asker, |list| walk.visit(list, DestinationMatch::Any));
        self.names
            .lookup(name, |list| walk.visit(list, DestinationMatch::Name));
        // A range rule ties with a name hit on the same rule: the name
        // settles it, so range rules only count strictly before the best.
        self.with_ranges.lookup(asker, |list| {
            walk.visit_before(list, DestinationMatch::Cidr)
        });
        walk.best
    }
}

/// The bounded first-match walk over candidate lists.
struct Walk<'r, 'a> {
    rules: &'r [Rule],
    asker: &'r Asker<'a>,
    best: Option<Found>,
}

impl<'r, 'a> Walk<'r, 'a> {
    fn new(rules: &'r [Rule], asker: &'r Asker<'a>) -> Self {
        Walk {
            rules,
            asker,
            best: None,
        }
    }

    /// Looks at `list` (ascending) up to the best so far. Reaching the best
    /// itself through a range upgrades how it matched to `Cidr`: the
    /// address is in one of its ranges.
    fn visit(&mut self, list: &[u32], how: DestinationMatch) {
        for &rule in list {
            if let Some(best) = &mut self.best {
                if rule > best.rule {
                    return;
                }
                if rule == best.rule {
                    if how == DestinationMatch::Cidr {
                        best.how = DestinationMatch::Cidr;
                    }
                    return;
                }
            }
            if self.rules[rule as usize].matches_asker(self.asker) {
                self.best = Some(Found { rule, how });
                return;
            }
        }
    }

    /// Like [`Walk::visit`], but a rule equal to the best changes nothing.
    fn visit_before(&mut self, list: &[u32], how: DestinationMatch) {
        let end = self.best.map_or(list.len(), |best| {
            list.partition_point(|&rule| rule < best.rule)
        });
        self.visit(&list[..end], how);
    }
}
