//! Tracing setup: a filter from the config (RUST_LOG wins when set), text or
//! JSON lines on stderr. The filter sits behind a reload layer, so a config
//! reload can change `logging.level` in place.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Layer, Registry};

use crate::config::{LogFormat, LoggingConfig};

/// Changes the level filter of the installed subscriber.
#[derive(Debug, Clone)]
pub struct LogLevel {
    handle: reload::Handle<EnvFilter, Registry>,
    /// Set when RUST_LOG chose the filter: the file's level does not apply.
    from_env: bool,
}

impl LogLevel {
    /// Installs `level` (a tracing filter directive) as the filter. With
    /// RUST_LOG set, nothing changes and `Ok(false)` says so.
    pub fn set(&self, level: &str) -> Result<bool, String> {
        if self.from_env {
            return Ok(false);
        }
        let filter = EnvFilter::try_new(level).map_err(|err| err.to_string())?;
        self.handle
            .reload(filter)
            .map(|()| true)
            .map_err(|err| err.to_string())
    }
}

/// Installs the global subscriber. `level` was validated with the config.
/// Returns the handle that changes the level, or `None` when a subscriber
/// was installed already (tests that start several servers keep the first).
pub fn init(config: &LoggingConfig) -> Option<LogLevel> {
    let from_env = EnvFilter::try_from_default_env();
    let from_env_ok = from_env.is_ok();
    let filter = from_env
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    // Colour codes only for a person at a terminal, not in log files.
    let ansi = std::io::stderr().is_terminal();
    let output = match config.format {
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init();
    installed.ok().map(|()| LogLevel {
        handle,
        from_env: from_env_ok,
    })
}
