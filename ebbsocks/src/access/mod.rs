//! Where a client may go: the rule set compiled from `[access]` into an
//! immutable value, and the pure functions that decide a request. No I/O
//! on the decision path (the interface addresses are read once, when
//! compiling with a proxy listening on `0.0.0.0` or `::`).
//!
//! The server asks twice: [`AccessRules::check_name`] before a requested
//! name is resolved (a deny that holds whatever the name resolves to, so a
//! refused name never reaches DNS), and [`AccessRules::check_addr`] for each
//! address it would connect to, send to or accept from. The connect goes
//! only to an address that passed.
//!
//! ```text
//! mod.rs      the interface: compile, check_name, check_addr, the decision
//! config.rs   [access] as written (serde)
//! compile.rs  config -> rules, with the errors a mistyped rule gets
//! rule.rs     one rule's matchers
//! index.rs    finding the first matching rule without testing them all
//! asker_index.rs  rules filed by user and client range
//! cidr.rs     address ranges and per-family prefix tables
//! names.rs    exact and wildcard names, and their index
//! ports.rs    ports and port ranges
//! private.rs  the non-public destination set (incl. IPv4 inside IPv6)
//! own.rs      the proxy's own listening addresses
//! any_peer.rs BIND's questions: "any peer" up front, and each peer
//! ```

mod any_peer;
mod asker_index;
mod cidr;
mod compile;
pub mod config;
mod index;
mod names;
mod own;
mod ports;
mod private;
mod rule;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::proto::Command;

/// Also the form of `server.proxy_protocol.trusted`.
pub(crate) use cidr::Cidr;
pub use config::{AccessConfig, Action, PrivateDestinations, RuleConfig};
pub use private::{embedded_ipv4, is_private};

use index::{Found, RuleIndex};
use own::OwnAddresses;
use rule::{Asker, DestinationMatch, Rule};

/// Who asks, and for what.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The client's address (of its TCP control connection).
    pub client: IpAddr,
    /// The authenticated user, if any.
    pub user: Option<&'a str>,
    pub command: Command,
}

/// The rules in force, bound to one subject: what the connect path asks.
#[derive(Debug, Clone, Copy)]
pub struct Bound<'a> {
    pub rules: &'a AccessRules,
    pub who: Subject<'a>,
}

/// A refusal and the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The rule's `name`, else `#<index>`; or one of the built-in labels
    /// `private_destinations`, `own_address`, `default`.
    pub rule: Arc<str>,
}

/// Why an `[access]` section cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AccessError {
    /// The offending key, such as `access.rules[2].destinations`.
    pub key: String,
    pub message: String,
}

/// The compiled rule set. Immutable: a reload builds a new one.
#[derive(Debug, Clone)]
pub struct AccessRules {
    rules: Box<[Rule]>,
    index: RuleIndex,
    default: Action,
    deny_private: bool,
    /// Empty when the proxy listens on loopback.
    own: OwnAddresses,
    labels: BuiltInLabels,
}

/// The built-in labels, allocated once so a denial costs a reference count.
#[derive(Debug, Clone)]
struct BuiltInLabels {
    private: Arc<str>,
    own: Arc<str>,
    default: Arc<str>,
}

impl Default for BuiltInLabels {
    fn default() -> Self {
        let [private, own, default] = compile::BUILT_IN_LABELS.map(Arc::from);
        Self {
            private,
            own,
            default,
        }
    }
}

impl Default for AccessRules {
    fn default() -> Self {
        Self::allow_all()
    }
}

impl AccessRules {
    /// Compiles `config`. `known_users` are the usernames of `[auth]`;
    /// `listen_is_loopback` settles `private_destinations = "auto"`; `own`
    /// are the proxy's own listening addresses (SOCKS and API), refused as
    /// destinations whatever the rules say when the proxy is not on
    /// loopback (an unspecified address stands for every local address).
    pub fn compile(
        config: &AccessConfig,
        known_users: &[&str],
        listen_is_loopback: bool,
        own: &[SocketAddr],
    ) -> Result<Self, AccessError> {
        let rules = compile::compile_rules(config, known_users)?;
        let deny_private = match config.private_destinations {
            PrivateDestinations::Deny => true,
            PrivateDestinations::Allow => false,
            PrivateDestinations::Auto => !listen_is_loopback,
        };
        let own = if listen_is_loopback {
            OwnAddresses::default()
        } else {
            OwnAddresses::new(own)
        };
        Ok(Self {
            index: RuleIndex::build(&rules),
            rules: rules.into_boxed_slice(),
            default: config.default,
            deny_private,
            own,
            labels: BuiltInLabels::default(),
        })
    }

    /// Allows everything (tests and benchmarks that are not about access).
    pub fn allow_all() -> Self {
        Self {
            rules: Box::new([]),
            index: RuleIndex::default(),
            default: Action::Allow,
            deny_private: false,
            own: OwnAddresses::default(),
            labels: BuiltInLabels::default(),
        }
    }

    /// Before resolving `name`: `Err` when every address it could resolve
    /// to would be refused by the same rule. A name that spells an address
    /// is not looked up, so it is decided as that address at once.
    pub fn check_name(&self, who: &Subject<'_>, name: &str, port: u16) -> Result<(), Denial> {
        if let Ok(ip) = name.parse::<IpAddr>() {
            return self.check_addr(who, Some(name), SocketAddr::new(ip, port));
        }
        let name = names::normalize(name);
        let asker = asker(who, port);
        match self.index.first_for_name(&self.rules, &asker, &name) {
            // Only the address can tell whether this rule applies.
            Some(Found {
                how: DestinationMatch::Cidr,
                ..
            }) => Ok(()),
            Some(found) => match self.rule(found).action {
                Action::Deny => Err(self.denial_by(found)),
                Action::Allow => Ok(()),
            },
            None => match self.default {
                Action::Deny => Err(Denial {
                    rule: self.labels.default.clone(),
                }),
                Action::Allow => Ok(()),
            },
        }
    }

    /// For one address the proxy would use; `name` is the requested name
    /// when the address came from resolving one.
    pub fn check_addr(
        &self,
        who: &Subject<'_>,
        name: Option<&str>,
        addr: SocketAddr,
    ) -> Result<(), Denial> {
        let name = name.map(names::normalize);
        let asker = asker(who, addr.port());
        let found = self
            .index
            .first_for_address(&self.rules, &asker, name.as_deref(), addr.ip());
        self.decide(found, addr)
    }

    /// The outcome for `addr` once the first matching rule is known. A deny
    /// rule refuses; otherwise the own-address guard, then the private set
    /// apply (an allow that matched by address range and port opens the
    /// former). Only an allow that matched the address through one of its
    /// ranges opens the private set: an allow by name would let anyone who
    /// controls that name's DNS point it at 169.254.169.254 (rebinding).
    fn decide(&self, found: Option<Found>, addr: SocketAddr) -> Result<(), Denial> {
        let explicit_address = match found {
            Some(found) if self.rule(found).action == Action::Deny => {
                return Err(self.denial_by(found));
            }
            Some(found) => found.how == DestinationMatch::Cidr,
            None => false,
        };
        // The proxy's own ports open only to an allow that names both the
        // address range and the port: a broad `10.0.0.0/8` allow must not
        // quietly let clients chain the proxy through itself.
        let explicit_port = found.is_some_and(|found| self.rule(found).asker.ports.is_some());
        let explicit_address = match found {
            Some(_) => explicit_address,
            None if self.default == Action::Deny => {
                return Err(Denial {
                    rule: self.labels.default.clone(),
                });
            }
            None => false,
        };
        if self.own.contains(addr) && !(explicit_address && explicit_port) {
            return Err(Denial {
                rule: self.labels.own.clone(),
            });
        }
        if self.deny_private && !explicit_address && is_private(addr.ip()) {
            return Err(Denial {
                rule: self.labels.private.clone(),
            });
        }
        Ok(())
    }

    fn rule(&self, found: Found) -> &Rule {
        &self.rules[found.rule as usize]
    }

    fn denial_by(&self, found: Found) -> Denial {
        Denial {
            rule: self.rule(found).label.clone(),
        }
    }
}

fn asker<'a>(who: &Subject<'a>, port: u16) -> Asker<'a> {
    Asker {
        client: who.client.to_canonical(),
        user: who.user,
        command: who.command,
        port,
    }
}
