//! The `[auth]` and `[api]` sections: who may use the proxy, and how the
//! HTTP API is reached and bounded. Their checks are part of
//! [`Config::validate`].

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError, Secret};

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    #[default]
    None,
    Userpass,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub method: AuthMethod,
    /// Failed logins one client address (IPv6: its /64) may make per
    /// window before its logins are refused unchecked; 0 = no limit.
    pub max_failures_per_client: u32,
    /// The window starts at a client's first attempt.
    pub failure_window_secs: u64,
    /// Client addresses the failure table holds at most.
    pub max_tracked_clients: usize,
    pub users: Vec<UserConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            method: AuthMethod::None,
            max_failures_per_client: 10,
            failure_window_secs: 60,
            max_tracked_clients: 10_000,
            users: Vec::new(),
        }
    }
}

impl AuthConfig {
    pub fn failure_window(&self) -> Duration {
        Duration::from_secs(self.failure_window_secs)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub username: String,
    /// An argon2 PHC string, as printed by `ebbsocks hash-password`.
    pub password_hash: Secret,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Bearer token; required when `listen` is not a loopback address.
    pub token: Option<Secret>,
    /// API connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// A connection that has not sent a complete request head this long
    /// after connecting (or after its previous response) is closed.
    pub header_read_timeout_secs: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            token: None,
            max_connections: 32,
            header_read_timeout_secs: 10,
        }
    }
}

impl ApiConfig {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }
}

impl Config {
    pub(super) fn validate_auth(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: origin.to_owned(),
            key: key.to_owned(),
            message,
        };
        let auth = &self.auth;
        if auth.method == AuthMethod::Userpass && auth.users.is_empty() {
            return Err(invalid(
                "auth.users",
                "auth.method is \"userpass\" but no users are configured".into(),
            ));
        }
        if auth.max_failures_per_client > 0 {
            if auth.failure_window_secs == 0 {
                return Err(invalid(
                    "auth.failure_window_secs",
                    "must be at least 1 second when max_failures_per_client is set".into(),
                ));
            }
            if auth.max_tracked_clients == 0 {
                return Err(invalid(
                    "auth.max_tracked_clients",
                    "must be at least 1 when max_failures_per_client is set".into(),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for user in &auth.users {
            // RFC 1929 carries each field in at most 255 bytes.
            if user.username.is_empty() || user.username.len() > 255 {
                return Err(invalid(
                    "auth.users.username",
                    format!("{:?} must be 1 to 255 bytes long", user.username),
                ));
            }
            if !seen.insert(user.username.as_str()) {
                return Err(invalid(
                    "auth.users.username",
                    format!("{:?} appears more than once", user.username),
                ));
            }
            if let Err(err) = crate::auth::parse_hash(user.password_hash.expose()) {
                return Err(invalid(
                    "auth.users.password_hash",
                    format!(
                        "user {:?}: not an argon2 PHC string ({err}); create one with \
                         `ebbsocks hash-password`",
                        user.username
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn validate_api(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: origin.to_owned(),
            key: key.to_owned(),
            message,
        };
        if self.api.enabled && !self.api.listen.ip().is_loopback() && self.api.token.is_none() {
            return Err(invalid(
                "api.token",
                format!(
                    "required because api.listen ({}) is not a loopback address",
                    self.api.listen
                ),
            ));
        }
        if matches!(&self.api.token, Some(token) if token.expose().is_empty()) {
            return Err(invalid("api.token", "must not be empty".into()));
        }
        if self.api.max_connections == 0 {
            return Err(invalid("api.max_connections", "must be at least 1".into()));
        }
        if self.api.header_read_timeout_secs == 0 {
            return Err(invalid(
                "api.header_read_timeout_secs",
                "must be at least 1 second".into(),
            ));
        }
        Ok(())
    }
}
