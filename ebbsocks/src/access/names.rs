//! Host name entries: exact names (`example.com`) and wildcards
//! (`*.corp.example`: any name below `corp.example`, at any depth, but not
//! `corp.example` itself). Compared without case and without trailing dots.

use std::borrow::Cow;
use std::collections::HashMap;

/// One name entry of a rule, normalised (lowercase, no trailing dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    Exact(Box<str>),
    /// Holds the parent: `*.corp.example` is stored as `corp.example`.
    Below(Box<str>),
}

impl NamePattern {
    /// Parses a destination entry that is not an address. Names are ASCII
    /// (write internationalised names in their `xn--` form); labels hold
    /// letters, digits, `-` and `_`; `*` may only be the whole first label.
    pub fn parse(text: &str) -> Result<NamePattern, String> {
        let lower = text.to_ascii_lowercase();
        let name = lower.trim_end_matches('.');
        let (below, rest) = match name.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        if name == "*" {
            return Err(format!(
                "{text:?}: a wildcard needs a parent name, such as \"*.example.com\"; \
                 leave `destinations` out to match every destination"
            ));
        }
        if rest.contains('*') {
            return Err(format!(
                "{text:?}: `*` may only stand alone as the first label, as in \"*.example.com\""
            ));
        }
        if text.contains(':') {
            return Err(format!(
                "{text:?} is neither an address, a CIDR nor a host name \
                 (ports belong in `ports`)"
            ));
        }
        check_host_name(rest).map_err(|why| format!("{text:?} is not a valid host name: {why}"))?;
        let owned: Box<str> = rest.into();
        Ok(if below {
            NamePattern::Below(owned)
        } else {
            NamePattern::Exact(owned)
        })
    }

    /// Whether the normalised request name `name` matches. The index in
    /// [`NameIndex`] answers the same for many patterns at once; this is
    /// the reference it is tested against.
    #[cfg(test)]
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(exact) => name == &**exact,
            NamePattern::Below(parent) => name
                .strip_suffix(&**parent)
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(|head| !head.is_empty()),
        }
    }
}

fn check_host_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters");
    }
    let mut last = "";
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 characters");
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if !label.chars().all(allowed) {
            return Err("labels may only hold letters, digits, '-' and '_'");
        }
        last = label;
    }
    // No top-level domain is all digits: this is a mistyped address.
    if last.chars().all(|c| c.is_ascii_digit()) {
        return Err("it looks like an IP address but is not one");
    }
    Ok(())
}

/// A requested name as rules compare it: lowercase, trailing dots removed,
/// and a non-ASCII name in its IDNA (`xn--`) form, which is what the
/// resolver looks up, so `BÜCHER.example` cannot slip past a rule for
/// `xn--bcher-kva.example`. Borrows when nothing changes.
pub fn normalize(name: &str) -> Cow<'_, str> {
    let trimmed = name.trim_end_matches('.');
    if !trimmed.is_ascii() {
        let ascii = match hickory_resolver::Name::from_utf8(trimmed) {
            Ok(idna) => idna.to_ascii(),
            // The resolver will refuse it too; compare it as it is.
            Err(_) => trimmed.to_string(),
        };
        let lower = ascii.to_lowercase();
        return Cow::Owned(lower.trim_end_matches('.').to_owned());
    }
    if trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(trimmed.to_ascii_lowercase())
    } else {
        Cow::Borrowed(trimmed)
    }
}

/// Rules by the names they list: exact names in one map, wildcards in
/// another keyed by their parent. A lookup costs one probe for the name and
/// one per parent suffix (`a.b.example` probes `b.example` and `example`).
#[derive(Debug, Default, Clone)]
pub struct NameIndex {
    exact: HashMap<Box<str>, Vec<u32>>,
    below: HashMap<Box<str>, Vec<u32>>,
}

impl NameIndex {
    /// Adds `rule` under `pattern`; rules must be added in ascending order.
    pub fn insert(&mut self, pattern: &NamePattern, rule: u32) {
        let (map, key) = match pattern {
            NamePattern::Exact(name) => (&mut self.exact, name),
            NamePattern::Below(parent) => (&mut self.below, parent),
        };
        let rules = map.entry(key.clone()).or_default();
        if rules.last() != Some(&rule) {
            rules.push(rule);
        }
    }

    /// Calls `found` with each rule list whose pattern matches the
    /// normalised `name`.
    pub fn lookup<'a>(&'a self, name: &str, mut found: impl FnMut(&'a [u32])) {
        if let Some(rules) = self.exact.get(name) {
            found(rules);
        }
        if self.below.is_empty() {
            return;
        }
        // A parent only counts with a non-empty label in front of it.
        for (at, _) in name.match_indices('.').filter(|(at, _)| *at > 0) {
            if let Some(rules) = self.below.get(&name[at + 1..]) {
                found(rules);
            }
        }
    }
}
