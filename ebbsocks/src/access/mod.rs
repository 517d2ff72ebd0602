//! Where a client may go: the rule set compiled from `[access]` into an
//! immutable value, and the pure functions that decide a request. No I/O.
//!
//! The server asks twice: [`AccessRules::check_name`] before a requested
//! name is resolved (a deny that holds whatever the name resolves to, so a
//! refused name never reaches DNS), and [`AccessRules::check_addr`] for each
//! address it would connect to, send to or accept from. The connect goes
//! only to an address that passed.

pub mod config;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::proto::Command;

pub use config::{AccessConfig, Action, PrivateDestinations, RuleConfig};

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
#[derive(Debug, Clone, Default)]
pub struct AccessRules {}

impl AccessRules {
    /// Compiles `config`. `known_users` are the usernames of `[auth]`;
    /// `listen_is_loopback` settles `private_destinations = "auto"`; `own`
    /// are the proxy's own listening addresses (SOCKS and API), refused as
    /// destinations when the proxy is not on loopback.
    pub fn compile(
        config: &AccessConfig,
        known_users: &[&str],
        listen_is_loopback: bool,
        own: &[SocketAddr],
    ) -> Result<Self, AccessError> {
        let _ = (config, known_users, listen_is_loopback, own);
        Ok(Self {})
    }

    /// Allows everything (tests and benchmarks that are not about access).
    pub fn allow_all() -> Self {
        Self {}
    }

    /// Before resolving `name`: `Err` when every address it could resolve
    /// to would be refused by the same rule.
    pub fn check_name(&self, who: &Subject<'_>, name: &str, port: u16) -> Result<(), Denial> {
        let _ = (who, name, port);
        Ok(())
    }

    /// For one address the proxy would use; `name` is the requested name
    /// when the address came from resolving one.
    pub fn check_addr(
        &self,
        who: &Subject<'_>,
        name: Option<&str>,
        addr: SocketAddr,
    ) -> Result<(), Denial> {
        let _ = (who, name, addr);
        Ok(())
    }
}
