//! Unit tests of the access rules, and the helpers they share: compiling a
//! rule set from TOML, asking it, and a linear first-match reference.

mod check_name;
mod cross_check;
mod egress;
mod matchers;
mod validation;

use std::net::{IpAddr, SocketAddr};

use super::rule::DestinationMatch;
use super::*;

/// Users `[auth]` knows in these tests.
const USERS: [&str; 3] = ["alice", "bob", "carol"];

/// Compiles `[access]` written as TOML (top-level keys, `[[rules]]`),
/// on a loopback listener with no own addresses.
fn rules(toml_text: &str) -> AccessRules {
    rules_with(toml_text, true, &[])
}

fn rules_with(toml_text: &str, listen_is_loopback: bool, own: &[SocketAddr]) -> AccessRules {
    let config = parse(toml_text);
    match AccessRules::compile(&config, &USERS, listen_is_loopback, own) {
        Ok(rules) => rules,
        Err(err) => panic!("{}: {}", err.key, err.message),
    }
}

fn parse(toml_text: &str) -> AccessConfig {
    toml::from_str(toml_text).unwrap_or_else(|err| panic!("test TOML: {err}"))
}

/// The compile error for `toml_text`, as `key: message`.
fn compile_error(toml_text: &str) -> String {
    match AccessRules::compile(&parse(toml_text), &USERS, true, &[]) {
        Ok(_) => panic!("should not compile:\n{toml_text}"),
        Err(err) => format!("{}: {}", err.key, err.message),
    }
}

/// A CONNECT from `client` without a user.
fn anon(client: &str) -> Subject<'static> {
    Subject {
        client: ip(client),
        user: None,
        command: Command::Connect,
    }
}

fn as_user(client: &str, user: &'static str) -> Subject<'static> {
    Subject {
        user: Some(user),
        ..anon(client)
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse()
        .unwrap_or_else(|_| panic!("{text:?} is not an address"))
}

fn sock(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or_else(|_| panic!("{text:?} is not a socket address"))
}

/// "allow", or the label of the refusal.
fn outcome(result: Result<(), Denial>) -> String {
    match result {
        Ok(()) => "allow".into(),
        Err(denial) => denial.rule.to_string(),
    }
}

/// `check_addr` for an address (no name), as [`outcome`].
fn addr_outcome(rules: &AccessRules, who: &Subject<'_>, addr: &str) -> String {
    outcome(rules.check_addr(who, None, sock(addr)))
}

/// `check_addr` for an address resolved from `name`, as [`outcome`].
fn named_outcome(rules: &AccessRules, who: &Subject<'_>, name: &str, addr: &str) -> String {
    outcome(rules.check_addr(who, Some(name), sock(addr)))
}

fn name_outcome(rules: &AccessRules, who: &Subject<'_>, name: &str, port: u16) -> String {
    outcome(rules.check_name(who, name, port))
}

/// The definition the indexed lookups must agree with: every rule in
/// order, each tested in full.
mod linear {
    use super::super::index::Found;
    use super::*;

    pub fn first_for_address(
        rules: &AccessRules,
        who: &Subject<'_>,
        name: Option<&str>,
        addr: SocketAddr,
    ) -> Option<Found> {
        let name = name.map(names::normalize);
        let asker = super::super::asker(who, addr.port());
        (0u32..).zip(&*rules.rules).find_map(|(at, rule)| {
            if !rule.matches_asker(&asker) {
                return None;
            }
            let how = rule.destination_match(name.as_deref(), Some(addr.ip()))?;
            Some(Found { rule: at, how })
        })
    }

    /// `Some(Err)` only when certain; `Ok` otherwise, as `check_name`.
    pub fn check_name(
        rules: &AccessRules,
        who: &Subject<'_>,
        name: &str,
        port: u16,
    ) -> Result<(), Denial> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            let addr = SocketAddr::new(ip, port);
            return rules.decide(first_for_address(rules, who, Some(name), addr), addr);
        }
        let name = names::normalize(name);
        let asker = super::super::asker(who, port);
        for rule in &*rules.rules {
            if !rule.matches_asker(&asker) {
                continue;
            }
            let by_name = rule.destination_match(Some(&name), None);
            let could_by_address = rule
                .destinations
                .as_ref()
                .is_some_and(|d| !d.cidrs.is_empty());
            match by_name {
                Some(DestinationMatch::Any | DestinationMatch::Name) => {
                    return match rule.action {
                        Action::Deny => Err(Denial {
                            rule: rule.label.clone(),
                        }),
                        Action::Allow => Ok(()),
                    };
                }
                _ if could_by_address => return Ok(()),
                _ => {}
            }
        }
        match rules.default {
            Action::Deny => Err(Denial {
                rule: "default".into(),
            }),
            Action::Allow => Ok(()),
        }
    }
}
