//! Tracing setup: a filter from the config (RUST_LOG wins when set), text or
//! JSON lines on stderr. The filter sits behind a reload layer, so a config
//! reload can change `logging.level` in place. Access-log lines are batched
//! per thread (`batch.rs`) unless `logging.access_log_flush_ms` is 0.

mod batch;

use std::io::{self, IsTerminal, Write};

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Layer, Registry};

pub use batch::{flush, flush_every, BATCH_BYTES};

use crate::config::{LogFormat, LoggingConfig};

/// The target of access-log lines (one per finished session).
pub const ACCESS_TARGET: &str = "ebbsocks::access";

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
/// With `access_log_flush_ms` above 0, access-log lines are batched: the
/// caller runs [`flush_every`] on its runtime and calls [`flush`] once the
/// server has stopped (`main` does both).
///
/// Returns the handle that changes the level, or `None` when a subscriber
/// was installed already (tests that start several servers keep the first).
pub fn init(config: &LoggingConfig) -> Option<LogLevel> {
    let from_env = EnvFilter::try_from_default_env();
    let from_env_ok = from_env.is_ok();
    let filter = from_env
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let writer = Stderr {
        batch_access: config.access_log_flush_ms > 0,
    };
    // Colour codes only for a person at a terminal, not in log files.
    let ansi = std::io::stderr().is_terminal();
    let output = match config.format {
        LogFormat::Text => fmt::layer().with_writer(writer).with_ansi(ansi).boxed(),
        LogFormat::Json => fmt::layer()
            .json()
            .with_writer(writer)
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

/// Stderr, with access-log lines batched when `batch_access` is set; every
/// other line is written at once.
#[derive(Debug, Clone, Copy)]
struct Stderr {
    batch_access: bool,
}

/// Where one event's line goes.
#[derive(Debug)]
enum LineWriter {
    Batched(batch::BatchWriter),
    Direct(io::Stderr),
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            LineWriter::Batched(batched) => batched.write(buf),
            LineWriter::Direct(stderr) => stderr.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            LineWriter::Batched(batched) => batched.write_all(buf),
            LineWriter::Direct(stderr) => stderr.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            LineWriter::Batched(batched) => batched.flush(),
            LineWriter::Direct(stderr) => stderr.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter::Direct(io::stderr())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter {
        if self.batch_access && meta.target() == ACCESS_TARGET {
            LineWriter::Batched(batch::BatchWriter)
        } else {
            LineWriter::Direct(io::stderr())
        }
    }
}
