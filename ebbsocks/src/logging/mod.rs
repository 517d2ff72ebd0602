//! Tracing setup: a filter from the config (RUST_LOG wins when set), text or
//! JSON lines on stderr. Access-log lines are batched per thread
//! (`batch.rs`) unless `logging.access_log_flush_ms` is 0.

mod batch;

use std::io::{self, IsTerminal, Write};

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

pub use batch::{flush, flush_every, BATCH_BYTES};

use crate::config::{LogFormat, LoggingConfig};

/// The target of access-log lines (one per finished session).
pub const ACCESS_TARGET: &str = "ebbsocks::access";

/// Installs the global subscriber. `level` was validated with the config.
/// With `access_log_flush_ms` above 0, access-log lines are batched: the
/// caller runs [`flush_every`] on its runtime and calls [`flush`] once the
/// server has stopped (`main` does both).
pub fn init(config: &LoggingConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = Stderr {
        batch_access: config.access_log_flush_ms > 0,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // Colour codes only for a person at a terminal, not in log files.
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A second init (tests that start several servers) keeps the first.
    drop(installed);
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
