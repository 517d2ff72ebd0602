//! ebbsocks: a SOCKS5 proxy (with SOCKS4/4a on the same port) for spiky
//! traffic, with a safe pool of pristine upstream connections and memory
//! that goes back to the OS after a spike.
//!
//! # Layout
//!
//! ```text
//! config.rs      TOML model, defaults, validation; secrets masked in Debug
//! auth.rs        argon2 password verification off the runtime's workers
//! proto/         sans-IO SOCKS4/4a/5 messages: parse from bytes, encode to bytes
//! stats/         counters and the telemetry event ring, as JSON snapshots
//! upstream/      connections to destinations: pool of pristine connections
//! ```

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod logging;
pub mod memory;
pub mod proto;
pub mod relay;
pub mod server;
pub mod stats;
pub mod upstream;
