//! ebbsocks: a SOCKS5 proxy (with SOCKS4/4a on the same port) for spiky
//! traffic, with a safe pool of pristine upstream connections and memory
//! that goes back to the OS after a spike.
//!
//! # Layout
//!
//! ```text
//! config.rs      TOML model, defaults, validation; secrets masked in Debug
//! auth.rs        argon2 password verification off the runtime's workers
//! relay/         bidirectional relay in one task, no payload buffer while idle
//! memory/        allocator settings, memory readings, purge after spikes
//! stats/         counters and the telemetry event ring, as JSON snapshots
//! ```

pub mod auth;
pub mod config;
pub mod memory;
pub mod relay;
pub mod stats;
