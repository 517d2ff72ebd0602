//! The configuration file: a TOML model with defaults, strict parsing
//! (`deny_unknown_fields`) and a validation pass whose errors name the file,
//! the key and the problem.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::access::AccessConfig;

mod auth_api;
mod proxy_protocol;
mod upstream;
pub use auth_api::{ApiConfig, AuthConfig, AuthMethod, UserConfig};
pub use proxy_protocol::{ProxyProtocolConfig, TrustedSources};
pub use upstream::{AddressFamily, DnsConfig, KeepaliveConfig, NameServer, UpstreamConfig};

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
    pub upstream: UpstreamConfig,
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
    /// Once one side of a session has finished sending (half-close), close
    /// the session after this long without a byte in either direction; 0
    /// turns the timeout off.
    pub half_close_timeout_secs: u64,
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
    /// Set SO_REUSEPORT on the SOCKS listener, so that several processes
    /// can listen on one address and the kernel spreads connections.
    pub reuse_port: bool,
    pub pool: PoolConfig,
    pub keepalive: KeepaliveConfig,
    pub proxy_protocol: ProxyProtocolConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 1080)),
            max_connections: 10_000,
            handshake_timeout_secs: 10,
            idle_timeout_secs: 0,
            half_close_timeout_secs: 60,
            shutdown_grace_secs: 10,
            allow_open_proxy: false,
            external_address: None,
            bind_timeout_secs: 60,
            udp_idle_timeout_secs: 300,
            max_udp_associations: 1000,
            reuse_port: false,
            pool: PoolConfig::default(),
            keepalive: KeepaliveConfig::default(),
            proxy_protocol: ProxyProtocolConfig::default(),
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

    pub fn half_close_timeout(&self) -> Option<Duration> {
        (self.half_close_timeout_secs > 0)
            .then(|| Duration::from_secs(self.half_close_timeout_secs))
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
    /// A CONNECT's whole way to its upstream, pooled or not: resolving the
    /// name and every connection attempt (and a BIND's resolving). Also the
    /// limit of each pre-connect.
    pub connect_timeout_ms: u64,
    /// Checkouts within `idle_timeout_secs` that make a destination in
    /// demand, and so worth spare connections.
    pub warm_after_checkouts: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            max_idle_per_dest: 4,
            max_total_idle: 100,
            idle_timeout_secs: 90,
            connect_timeout_ms: 5000,
            warm_after_checkouts: 2,
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
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The longest `logging.access_log_flush_ms`: lines may wait no longer.
pub const MAX_ACCESS_LOG_FLUSH_MS: u64 = 60_000;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// A tracing filter directive such as `info` or `ebbsocks=debug`.
    pub level: String,
    pub format: LogFormat,
    /// One line per finished session.
    pub access_log: bool,
    /// Access-log lines are batched per thread and written this many
    /// milliseconds after the first of a batch (and at shutdown); 0 writes
    /// each line at once.
    pub access_log_flush_ms: u64,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
            access_log: true,
            access_log_flush_ms: 100,
        }
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
            let most = crate::upstream::pool::MAX_WARM_AFTER_CHECKOUTS;
            if !(1..=most).contains(&pool.warm_after_checkouts) {
                return Err(invalid(
                    "server.pool.warm_after_checkouts",
                    format!("must be between 1 and {most}"),
                ));
            }
        }
        if server.bind_timeout_secs == 0 {
            return Err(invalid(
                "server.bind_timeout_secs",
                "must be at least 1 second".into(),
            ));
        }
        if let Err(message) = server.proxy_protocol.trusted_sources() {
            return Err(invalid("server.proxy_protocol.trusted", message));
        }
        self.validate_auth(origin)?;
        self.validate_upstream(origin)?;
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
        self.validate_api(origin)?;
        if let Err(err) = self.logging.level.parse::<tracing_subscriber::EnvFilter>() {
            return Err(invalid(
                "logging.level",
                format!("not a valid filter: {err}"),
            ));
        }
        if self.logging.access_log_flush_ms > MAX_ACCESS_LOG_FLUSH_MS {
            return Err(invalid(
                "logging.access_log_flush_ms",
                format!("must be at most {MAX_ACCESS_LOG_FLUSH_MS} (one minute)"),
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
}

#[cfg(test)]
mod tests;
