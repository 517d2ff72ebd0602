//! `[access]` in the configuration file: the rule language as written.
//! [`super::AccessRules::compile`] turns it into the value the hot path reads.

use serde::{Deserialize, Serialize};

/// `[access]`: who may reach which destinations, and session limits.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Whether loopback, private, link-local and similar destinations are
    /// refused unless a rule allows them by address.
    pub private_destinations: PrivateDestinations,
    /// What happens when no rule matches.
    pub default: Action,
    /// Concurrent sessions from one client address; 0 = unlimited.
    pub max_sessions_per_client: usize,
    /// Concurrent sessions of one authenticated user; 0 = unlimited.
    pub max_sessions_per_user: usize,
    /// Ordered; the first rule that matches decides.
    pub rules: Vec<RuleConfig>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PrivateDestinations {
    /// Deny when `server.listen` is not a loopback address, else allow.
    #[default]
    Auto,
    Deny,
    Allow,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Allow,
    Deny,
}

/// One `[[access.rules]]` entry. Every matcher is optional; a rule without
/// matchers matches every request.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Shown in logs and counters; the rule's index when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub action: Action,
    /// Usernames from `[auth]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<String>>,
    /// Client address CIDRs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<Vec<String>>,
    /// CIDRs, exact names, and wildcard names (`*.corp.example`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations: Option<Vec<String>>,
    /// Ports ("22") and inclusive ranges ("8000-8100").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<String>>,
    /// "connect", "bind", "udp".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
}
