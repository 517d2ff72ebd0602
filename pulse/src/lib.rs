//! pulse: a load tool for SOCKS proxies and plain TCP servers.
//!
//! It answers three questions about a server it does not need to know
//! anything about:
//!
//! - `spike`: does memory come back to the OS after a connection spike? It
//!   replays big pulses of connections, then small ones, while sampling the
//!   server's memory, and charts the result.
//! - `fleet`: can several spiky servers share one box? Spikes against each
//!   of several servers in turn, charting each process's RSS and their sum.
//! - `throughput`: how much bulk transfer does the proxy cost against a direct
//!   connection to the same destination, measured in the same run?
//! - `rate`: how many short connections per second, and at what latency?
//! - `udp`: datagrams per second and round-trip latency through a SOCKS5
//!   UDP association against the same echo server directly; `udp-idle`:
//!   the server's memory per idle association.
//! - `slowloris`: do stalled partial greetings slow a legitimate client's
//!   CONNECT, and does the server close them at its handshake deadline?
//! - `pingpong`: what does one cross-process wake-up cost on this machine,
//!   the floor under any proxy's per-hop latency?
//!
//! # Layout
//!
//! ```text
//! cli.rs          clap arguments and value parsers (durations, sizes, lists)
//! socks.rs        SOCKS5 client: greeting, RFC 1929 auth, CONNECT, replies
//! dial.rs         one outbound stream, direct or through the proxy, with a timeout
//! fail.rs         failure kinds (refused, timeout, socks reply X, ...) and counts
//! fdlimit.rs      raise RLIMIT_NOFILE, check a run fits under it
//! servers.rs      destinations pulse runs itself: sink, discard, source, echo
//! stats.rs        medians and human formatting of bytes and rates
//! memory/         reading a server's memory: /proc/PID or an HTTP JSON endpoint
//! spike/          the spike experiment: schedule, sampler, summary, chart, output
//! fleet/          staggered spikes against several servers: plan, sampler,
//!                 summary, chart (reuses spike/'s pulses)
//! sampling.rs     the sampling thread spike/ and fleet/ share: fixed ticks, bounded errors
//! svg.rs          what both charts draw alike: layout, ticks, time axis, polylines
//! throughput.rs   bulk transfer, proxy against direct
//! rate.rs         connection rate and latency percentiles, proxy against direct
//! udp/            UDP ASSOCIATE flows and echo (flow.rs), rate and latency
//!                 (mod.rs), memory per idle association (idle.rs)
//! pingpong.rs     loopback round trip between two processes, sleeping or spinning
//! slowloris.rs    stalled partial greetings: legit CONNECT latency, closes at the deadline
//! test_proxy.rs   (tests only) a minimal SOCKS5 proxy for end-to-end tests
//! ```
//!
//! pulse deliberately does not depend on the ebbsocks crate: a tool that
//! measures a server should not share that server's protocol code or bugs.

pub mod cli;
pub mod dial;
pub mod fail;
pub mod fdlimit;
pub mod fleet;
pub mod memory;
pub mod pingpong;
pub mod rate;
pub mod sampling;
pub mod servers;
pub mod slowloris;
pub mod socks;
pub mod spike;
pub mod stats;
pub(crate) mod svg;
pub mod throughput;
pub mod udp;

#[cfg(test)]
mod test_proxy;
