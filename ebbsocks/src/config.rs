//! The configuration file: a TOML model with defaults, strict parsing
//! (`deny_unknown_fields`) and a validation pass whose errors name the file,
//! the key and the problem.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::access::AccessConfig;

/// The commented default configuration. `ebbsocks` with no arguments runs on
/// exactly this text, and `ebbsocks default-config` prints it, so the two can
/// never drift apart.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default_config.toml");

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: key `{key}`: {message}")]
    Invalid {
        file: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub logging: LoggingConfig,
    pub api: ApiConfig,
    pub memory: MemoryConfig,
    pub access: AccessConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the SOCKS listener binds.
    pub listen: SocketAddr,
    /// Client connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// From accept until the request is complete.
    pub handshake_timeout_secs: u64,
    /// Close a relayed session after this long without a byte in either
    /// direction; 0 turns the timeout off.
    pub idle_timeout_secs: u64,
    /// On SIGINT/SIGTERM, how long live sessions may drain before they are closed.
    pub shutdown_grace_secs: u64,
    /// Permit listening on a non-loopback address without authentication.
    pub allow_open_proxy: bool,
    /// The address clients reach this host at, advertised in BIND and UDP
    /// ASSOCIATE replies instead of the local one (hosts behind NAT).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_address: Option<IpAddr>,
    /// How long a BIND waits for its one inbound connection.
    pub bind_timeout_secs: u64,
    /// Close a UDP association after this long without a datagram either
    /// way; 0 = only when its TCP control connection closes.
    pub udp_idle_timeout_secs: u64,
    /// UDP associations open at once; more are refused.
    pub max_udp_associations: usize,
    pub pool: PoolConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 1080)),
            max_connections: 10_000,
            handshake_timeout_secs: 10,
            idle_timeout_secs: 0,
            shutdown_grace_secs: 10,
            allow_open_proxy: false,
            external_address: None,
            bind_timeout_secs: 60,
            udp_idle_timeout_secs: 300,
            max_udp_associations: 1000,
            pool: PoolConfig::default(),
        }
    }
}

impl ServerConfig {
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }

    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout_secs > 0).then(|| Duration::from_secs(self.idle_timeout_secs))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn bind_timeout(&self) -> Duration {
        Duration::from_secs(self.bind_timeout_secs)
    }

    pub fn udp_idle_timeout(&self) -> Option<Duration> {
        (self.udp_idle_timeout_secs > 0).then(|| Duration::from_secs(self.udp_idle_timeout_secs))
    }
}

/// `[server.pool]`: warm pristine upstream connections per destination.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    pub enabled: bool,
    pub max_idle_per_dest: usize,
    pub max_total_idle: usize,
    pub idle_timeout_secs: u64,
    /// Applies to every upstream connect, pooled or not.
    pub connect_timeout_ms: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_idle_per_dest: 4,
            max_total_idle: 100,
            idle_timeout_secs: 90,
            connect_timeout_ms: 5000,
        }
    }
}

impl PoolConfig {
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

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

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// A tracing filter directive such as `info` or `ebbsocks=debug`.
    pub level: String,
    pub format: LogFormat,
    /// One line per finished session.
    pub access_log: bool,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
            access_log: true,
        }
    }
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

/// `[memory]`: how eagerly freed memory goes back to the OS.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryConfig {
    /// jemalloc: dirty pages older than this are purged by background threads.
    pub dirty_decay_ms: u64,
    /// jemalloc: 0 releases purged pages at once instead of keeping them "muzzy".
    pub muzzy_decay_ms: u64,
    /// Run an explicit purge when open connections fell by at least this
    /// fraction of their recent peak (0 turns it off).
    pub purge_drop_fraction: f64,
    /// Log connection count and memory whenever the count crosses a multiple of this.
    pub log_step: usize,
    /// Turn transparent huge pages off for the process.
    pub disable_thp: bool,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            dirty_decay_ms: 1000,
            muzzy_decay_ms: 0,
            purge_drop_fraction: 0.5,
            log_step: 500,
            disable_thp: true,
        }
    }
}

/// A string that never appears in logs or `Debug` output.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// The embedded default.
    pub fn embedded_default() -> Self {
        Self::from_toml(DEFAULT_CONFIG_TOML, Path::new("<embedded default>"))
            .expect("the embedded default configuration is valid")
    }

    /// Parses and validates `text`; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|err| ConfigError::Parse {
            file: origin.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks what types alone cannot: ranges, combinations, hashes.
    pub fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            file: origin.to_owned(),
            key: key.to_owned(),
            message,
        };
        let server = &self.server;
        if server.max_connections == 0 {
            return Err(invalid(
                "server.max_connections",
                "must be at least 1".into(),
            ));
        }
        if server.handshake_timeout_secs == 0 {
            return Err(invalid(
                "server.handshake_timeout_secs",
                "must be at least 1 second".into(),
            ));
        }
        let pool = &server.pool;
        if pool.connect_timeout_ms == 0 {
            return Err(invalid(
                "server.pool.connect_timeout_ms",
                "must be at least 1 ms".into(),
            ));
        }
        if pool.enabled {
            if pool.max_idle_per_dest == 0 {
                return Err(invalid(
                    "server.pool.max_idle_per_dest",
                    "must be at least 1 when the pool is enabled".into(),
                ));
            }
            if pool.max_total_idle < pool.max_idle_per_dest {
                return Err(invalid(
                    "server.pool.max_total_idle",
                    format!(
                        "{} is below max_idle_per_dest ({})",
                        pool.max_total_idle, pool.max_idle_per_dest
                    ),
                ));
            }
            if pool.idle_timeout_secs == 0 {
                return Err(invalid(
                    "server.pool.idle_timeout_secs",
                    "must be at least 1 second when the pool is enabled".into(),
                ));
            }
        }
        if server.bind_timeout_secs == 0 {
            return Err(invalid(
                "server.bind_timeout_secs",
                "must be at least 1 second".into(),
            ));
        }
        self.validate_auth(origin)?;
        self.compile_access(&[])
            .map_err(|err| ConfigError::Invalid {
                file: origin.to_owned(),
                key: err.key,
                message: err.message,
            })?;
        if !server.listen.ip().is_loopback()
            && self.auth.method == AuthMethod::None
            && !server.allow_open_proxy
        {
            return Err(invalid(
                "server.listen",
                format!(
                    "{} is not a loopback address and auth.method is \"none\": anyone who can \
                     reach it could use this proxy. Set auth.method = \"userpass\", or set \
                     server.allow_open_proxy = true if an open proxy is really intended",
                    server.listen
                ),
            ));
        }
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
        if let Err(err) = self.logging.level.parse::<tracing_subscriber::EnvFilter>() {
            return Err(invalid(
                "logging.level",
                format!("not a valid filter: {err}"),
            ));
        }
        let memory = &self.memory;
        if !(0.0..=1.0).contains(&memory.purge_drop_fraction) {
            return Err(invalid(
                "memory.purge_drop_fraction",
                "must be between 0 and 1".into(),
            ));
        }
        if memory.log_step == 0 {
            return Err(invalid("memory.log_step", "must be at least 1".into()));
        }
        Ok(())
    }

    /// The `[access]` rule set of this configuration; `own` are the
    /// listening addresses actually bound (SOCKS and API), which the rules
    /// refuse as destinations when the proxy is not on loopback.
    pub fn compile_access(
        &self,
        own: &[SocketAddr],
    ) -> Result<crate::access::AccessRules, crate::access::AccessError> {
        let users: Vec<&str> = self
            .auth
            .users
            .iter()
            .map(|u| u.username.as_str())
            .collect();
        crate::access::AccessRules::compile(
            &self.access,
            &users,
            self.server.listen.ip().is_loopback(),
            own,
        )
    }

    fn validate_auth(&self, origin: &Path) -> Result<(), ConfigError> {
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
}

#[cfg(test)]
mod tests;
