//! ebbsocks: a SOCKS5 proxy (with SOCKS4/4a on the same port) for spiky
//! traffic, with a safe pool of pristine upstream connections and memory
//! that goes back to the OS after a spike.
//!
//! # Layout
//!
//! ```text
//! main.rs        CLI -> Config::load -> bind listeners -> server::serve
//! config.rs      TOML model, defaults, validation; secrets masked in Debug
//!                (config/auth_api.rs: the [auth] and [api] sections;
//!                config/proxy_protocol.rs: the trusted balancers)
//! error.rs       why a session failed; the one mapping to reply codes and reasons
//! logging/       tracing setup: filter, text or JSON; batch.rs writes the
//!                access log in per-thread batches (flushed on a timer and
//!                at shutdown)
//! access/        the [access] rule set, compiled; pure allow/deny decisions
//! auth/          argon2 password verification off the runtime's workers,
//!                decoys for unknown users, the failed-login budget per client
//! proto/         sans-IO SOCKS4/4a/5 messages and the PROXY protocol header:
//!                parse from bytes, encode to bytes
//! server/        accept loop, limits, shutdown; handshake.rs reads the request,
//!                conn.rs is one client's way through the server, bind/ serves
//!                BIND (listener, peer checks, then relayed like CONNECT),
//!                udp.rs the control side of UDP ASSOCIATE, session.rs counts
//!                every granted session to its end, limits.rs the per-client
//!                and per-user session limits, refusal.rs what a refusal
//!                records, fd_budget.rs the open-files check at startup,
//!                live.rs puts a reloaded config in force, connection_limit.rs
//!                is max_connections (resized in place), proxy_header.rs the
//!                PROXY header of trusted balancers before the handshake
//! upstream/      resolve (async DNS, failure kinds), connect (one deadline
//!                from resolving to connected), happy_eyeballs (the staggered
//!                race over a name's addresses), socket_options (nodelay,
//!                keepalive, outbound address of every session socket), pool
//!                of pristine connections
//! relay/         bidirectional relay in one task, no payload buffer idle or stalled;
//!                small reads go by recv/send, bulk directions by splice
//! udp/           UDP ASSOCIATE datagram path: checks, relaying, bounded
//!                per-association memory, one scratch buffer per worker thread
//! memory/        allocator settings, memory readings, purge after spikes
//! stats/         counters, latency histograms and the telemetry event ring,
//!                as JSON snapshots
//! metrics/       Prometheus metrics: a prometheus-client collector reading
//!                stats, the pool and memory at scrape time
//! api/           HTTP API (axum routes, served by hyper with a timer and a
//!                connection cap): thin routes over stats, pool and memory;
//!                dashboard/ the live page's files, metrics.rs serves /metrics
//! reload/        hot reload (SIGHUP, POST /api/reload): plan.rs compares the
//!                file with the running config, apply.rs puts it in force;
//!                the snapshots live in `server::Services` (server/live.rs)
//! ```
//!
//! Imports run one way: `server` uses `proto`, `access`, `auth`, `upstream`, `relay`,
//! `udp`, `memory` and `stats` (`udp` uses `proto`, `access`, `upstream`
//! and `stats`); `reload` uses `config`, `logging` and `server`; `metrics`
//! reads `stats`, the pool and `memory`; `api` reads those and `metrics`,
//! and asks `reload` to reload; `proto` knows nothing of the rest, and
//! nothing below `api` knows HTTP exists.

pub mod access;
pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod proto;
pub mod relay;
pub mod reload;
pub mod server;
pub mod stats;
pub mod udp;
pub mod upstream;
