//! Rules filed by who may match them: under each user they list, else
//! under their client ranges, else in one plain list. For the rules whose
//! destination needs no lookup (none given, or only the question "could an
//! address match?"), this keeps a request from walking them all.

use std::collections::{HashMap, HashSet};

use super::cidr::{family_bits, Cidr, PrefixTable};
use super::rule::{Asker, AskerMatchers};

#[derive(Debug, Default, Clone)]
pub struct AskerIndex {
    /// Rules without `users` or `clients`, leaving out any rule that asks
    /// exactly what an earlier one in the list asks: the earlier one
    /// matches whenever it would, so it can never be the first match.
    plain: Vec<u32>,
    by_user: HashMap<Box<str>, Vec<u32>>,
    by_client_v4: PrefixTable,
    by_client_v6: PrefixTable,
}

/// Collects rules in ascending order, then [`AskerIndexBuilder::finish`].
#[derive(Debug, Default)]
pub struct AskerIndexBuilder<'r> {
    index: AskerIndex,
    seen_plain: HashSet<&'r AskerMatchers>,
    client_ranges: Vec<(Cidr, u32)>,
}

impl<'r> AskerIndexBuilder<'r> {
    pub fn insert(&mut self, rule: u32, matchers: &'r AskerMatchers) {
        if let Some(users) = &matchers.users {
            for user in users.iter() {
                let list = self.index.by_user.entry(user.clone()).or_default();
                if list.last() != Some(&rule) {
                    list.push(rule);
                }
            }
        } else if let Some(clients) = &matchers.clients {
            let ranges = clients.iter().map(|cidr| (*cidr, rule));
            self.client_ranges.extend(ranges);
        } else if self.seen_plain.insert(matchers) {
            self.index.plain.push(rule);
        }
    }

    pub fn finish(self) -> AskerIndex {
        let mut index = self.index;
        let ranges = self.client_ranges;
        index.by_client_v4 = PrefixTable::build(false, ranges.iter().copied());
        index.by_client_v6 = PrefixTable::build(true, ranges);
        index
    }
}

impl AskerIndex {
    /// Calls `found` with every list holding rules that could match
    /// `asker` (each list ascending; the caller tests the matchers).
    pub fn lookup<'a>(&'a self, asker: &Asker<'_>, mut found: impl FnMut(&'a [u32])) {
        found(&self.plain);
        if let Some(list) = asker.user.and_then(|user| self.by_user.get(user)) {
            found(list);
        }
        let (v6, bits) = family_bits(asker.client);
        let table = if v6 {
            &self.by_client_v6
        } else {
            &self.by_client_v4
        };
        table.lookup(bits, found);
    }
}
