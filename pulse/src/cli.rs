//! Command-line arguments. Durations are seconds and may be fractional
//! (`--linger 0.2`), so short test runs use the same options as real ones.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::memory::HttpUrl;
use crate::socks::{Credentials, Target};

#[derive(Debug, Parser)]
#[command(
    name = "pulse",
    version,
    about = "Connection spikes with memory sampling, throughput and connection rate for SOCKS5 proxies and TCP servers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay big and small connection pulses and chart the server's memory.
    Spike(SpikeArgs),
    /// Spikes against several servers on this machine at staggered times,
    /// charting each process's RSS and their sum.
    Fleet(FleetArgs),
    /// Bulk transfer through the proxy and directly, same run, alternating.
    Throughput(ThroughputArgs),
    /// Short connections per second and their latency, proxy and direct.
    Rate(RateArgs),
    /// UDP datagrams per second and round-trip latency through a SOCKS5
    /// UDP association, against the same echo server directly.
    Udp(UdpArgs),
    /// The server's memory per idle UDP association (reads /proc/PID).
    UdpIdle(UdpIdleArgs),
    /// Stalled partial greetings against a legitimate client's CONNECT
    /// latency, and whether the server closes them at its handshake deadline.
    Slowloris(SlowlorisArgs),
    /// Run only the destination sink (accept and hold), e.g. in its own
    /// process when one process would run out of file descriptors.
    Sink(SinkArgs),
    /// Round trip of a small message between two processes on loopback,
    /// each side sleeping or spinning: the floor under per-hop latency.
    Pingpong(PingpongArgs),
    /// The echoing process of `pingpong` (started by it).
    #[command(hide = true)]
    PingpongEcho(PingpongEchoArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// TCP connect to the target and hold.
    Raw,
    /// SOCKS5 handshake and CONNECT to the destination, then hold.
    Socks,
}

#[derive(Debug, Args)]
pub struct SpikeArgs {
    /// Server to test (HOST:PORT). In raw mode it defaults to pulse's own sink.
    #[arg(long, value_parser = parse_target)]
    pub target: Option<Target>,
    #[arg(long, value_enum, default_value = "raw")]
    pub mode: Mode,
    /// CONNECT destination in socks mode; default: a sink pulse runs on 127.0.0.1:0.
    #[arg(long, value_parser = parse_target)]
    pub dest: Option<Target>,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Connections in a big pulse.
    #[arg(long, default_value_t = 9000)]
    pub big: usize,
    /// Number of big pulses (0 for a control run with small pulses only).
    #[arg(long, default_value_t = 3)]
    pub big_pulses: u32,
    /// Seconds between big pulses (and before the first small one).
    #[arg(long, value_parser = parse_secs, default_value = "5")]
    pub big_gap: Duration,
    /// Connections in a small pulse.
    #[arg(long, default_value_t = 1000)]
    pub small: usize,
    /// Number of small pulses, after the big ones.
    #[arg(long, default_value_t = 3)]
    pub small_pulses: u32,
    /// Seconds between small pulses.
    #[arg(long, value_parser = parse_secs, default_value = "20")]
    pub small_gap: Duration,
    /// Seconds each pulse's connections are held open.
    #[arg(long, value_parser = parse_secs, default_value = "4")]
    pub linger: Duration,
    /// Seconds of sampling before the first pulse.
    #[arg(long, value_parser = parse_secs, default_value = "2")]
    pub baseline: Duration,
    /// Seconds of sampling after the last pulse.
    #[arg(long, value_parser = parse_secs, default_value = "30")]
    pub tail: Duration,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Seconds allowed for one connection (TCP and SOCKS handshake).
    #[arg(long, value_parser = parse_secs, default_value = "10")]
    pub connect_timeout: Duration,
    /// Sample the server's memory from /proc/PID.
    #[arg(long, conflicts_with = "memory_url")]
    pub pid: Option<u32>,
    /// Sample the server's memory from an HTTP JSON endpoint with `rss_bytes`.
    #[arg(long, value_parser = parse_url)]
    pub memory_url: Option<HttpUrl>,
    /// Bearer token for --memory-url (ebbsocks's `api.token`).
    #[arg(long, requires = "memory_url")]
    pub memory_token: Option<String>,
    /// Milliseconds between memory samples.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_ms: u64,
    /// summary.json (or its directory) of a control run to compare with.
    #[arg(long)]
    pub control: Option<PathBuf>,
    /// Directory for timeline.json/.csv, summary.json and chart.svg.
    #[arg(long, default_value = "pulse-out")]
    pub out: PathBuf,
    /// Exit 0 even when connections failed (they are still counted).
    #[arg(long)]
    pub allow_errors: bool,
}

#[derive(Debug, Args)]
pub struct FleetArgs {
    /// A SOCKS5 server to spike (HOST:PORT); repeat once per server.
    #[arg(long = "target", value_parser = parse_target, required = true)]
    pub targets: Vec<Target>,
    /// The process id of each --target, in the same order, for its RSS
    /// from /proc/PID.
    #[arg(long = "pid", required = true)]
    pub pids: Vec<u32>,
    /// CONNECT destination; default: a sink pulse runs on 127.0.0.1:0.
    #[arg(long, value_parser = parse_target)]
    pub dest: Option<Target>,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Connections in each spike.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u64).range(1..))]
    pub size: u64,
    /// Spikes per server; servers take turns (1, 2, 3, 1, 2, 3, ...).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Seconds between the starts of two consecutive spikes.
    #[arg(long, value_parser = parse_secs, default_value = "10")]
    pub stagger: Duration,
    /// Seconds each spike's connections are held open.
    #[arg(long, value_parser = parse_secs, default_value = "4")]
    pub linger: Duration,
    /// Seconds of sampling before the first spike.
    #[arg(long, value_parser = parse_secs, default_value = "2")]
    pub baseline: Duration,
    /// Seconds of sampling after the last spike ends.
    #[arg(long, value_parser = parse_secs, default_value = "15")]
    pub tail: Duration,
    /// Connection attempts in flight at once, per spike.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Seconds allowed for one connection (TCP and SOCKS handshake).
    #[arg(long, value_parser = parse_secs, default_value = "10")]
    pub connect_timeout: Duration,
    /// Milliseconds between memory samples.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_ms: u64,
    /// Directory for fleet.json, fleet.csv and fleet.svg.
    #[arg(long, default_value = "pulse-fleet")]
    pub out: PathBuf,
    /// Exit 0 even when connections failed (they are still counted).
    #[arg(long)]
    pub allow_errors: bool,
}

#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// RFC 1929 username (with --pass).
    #[arg(long, requires = "pass")]
    pub user: Option<String>,
    /// RFC 1929 password (with --user).
    #[arg(long, requires = "user")]
    pub pass: Option<String>,
}

impl AuthArgs {
    pub fn credentials(&self) -> Option<Credentials> {
        match (&self.user, &self.pass) {
            (Some(u), Some(p)) => Some(Credentials {
                user: u.clone(),
                pass: p.clone(),
            }),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    Upload,
    Download,
    Both,
}

#[derive(Debug, Args)]
pub struct ThroughputArgs {
    /// The SOCKS5 proxy (HOST:PORT).
    #[arg(long, value_parser = parse_target)]
    pub proxy: Target,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Parallel stream counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub streams: Vec<usize>,
    #[arg(long, value_enum, default_value = "both")]
    pub direction: Direction,
    /// Bytes per run, split over its streams (suffixes K, M, G, KiB, MiB, GiB).
    #[arg(long, value_parser = parse_size, default_value = "256MiB")]
    pub bytes: u64,
    /// Run for this many seconds instead of a byte count.
    #[arg(long, value_parser = parse_secs)]
    pub seconds: Option<Duration>,
    /// Rounds; each measures proxy and direct, in alternating order.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Seconds allowed for one run.
    #[arg(long, value_parser = parse_secs, default_value = "60")]
    pub timeout: Duration,
    #[arg(long, value_parser = parse_secs, default_value = "10")]
    pub connect_timeout: Duration,
    /// Directory for throughput.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub allow_errors: bool,
}

#[derive(Debug, Args)]
pub struct RateArgs {
    /// The SOCKS5 proxy (HOST:PORT).
    #[arg(long, value_parser = parse_target)]
    pub proxy: Target,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Concurrency levels to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub concurrency: Vec<usize>,
    /// Seconds per round and path.
    #[arg(long, value_parser = parse_secs, default_value = "3")]
    pub seconds: Duration,
    /// Connections per round and path instead of a duration.
    #[arg(long)]
    pub count: Option<u64>,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Bytes echoed on each connection.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub payload: u32,
    /// Seconds allowed for one connection's whole exchange.
    #[arg(long, value_parser = parse_secs, default_value = "5")]
    pub timeout: Duration,
    /// Directory for rate.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub allow_errors: bool,
}

#[derive(Debug, Args)]
pub struct UdpArgs {
    /// The SOCKS5 proxy (HOST:PORT).
    #[arg(long, value_parser = parse_target)]
    pub proxy: Target,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Concurrent flows to measure (each its own socket and association).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub concurrency: Vec<usize>,
    /// Seconds per round and path.
    #[arg(long, value_parser = parse_secs, default_value = "3")]
    pub seconds: Duration,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Payload bytes per datagram (at least 8: a sequence number leads).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(8..=65000))]
    pub size: u64,
    /// Seconds to wait for an echo before counting the datagram lost.
    #[arg(long, value_parser = parse_secs, default_value = "1")]
    pub timeout: Duration,
    /// Where pulse's UDP echo server binds.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub echo_bind: SocketAddr,
    /// Directory for udp.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub allow_errors: bool,
}

#[derive(Debug, Args)]
pub struct UdpIdleArgs {
    /// The SOCKS5 proxy (HOST:PORT).
    #[arg(long, value_parser = parse_target)]
    pub proxy: Target,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// The proxy's process id, for /proc/PID/status.
    #[arg(long)]
    pub pid: u32,
    /// Associations to open and hold.
    #[arg(long, default_value_t = 2000)]
    pub count: usize,
    /// Send one echo through each association before it idles.
    #[arg(long)]
    pub touch: bool,
    /// Seconds to let memory settle before each reading.
    #[arg(long, value_parser = parse_secs, default_value = "2")]
    pub settle: Duration,
    /// Seconds allowed to open (and touch) one association.
    #[arg(long, value_parser = parse_secs, default_value = "10")]
    pub timeout: Duration,
    #[arg(long, default_value = "127.0.0.1:0")]
    pub echo_bind: SocketAddr,
    /// Directory for udp_idle.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub allow_errors: bool,
}

#[derive(Debug, Args)]
pub struct SlowlorisArgs {
    /// The SOCKS5 proxy (HOST:PORT).
    #[arg(long, value_parser = parse_target)]
    pub proxy: Target,
    /// Credentials of the legitimate client (the stalled ones never get that far).
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Connections that send a partial greeting and stall.
    #[arg(long, default_value_t = 4000)]
    pub stalled: usize,
    /// The server's handshake deadline (ebbsocks: server.handshake_timeout_secs).
    #[arg(long = "handshake-deadline-secs", value_parser = parse_secs, default_value = "10")]
    pub handshake_deadline: Duration,
    /// Seconds after the deadline within which a close still counts as on time.
    #[arg(long, value_parser = parse_secs, default_value = "2")]
    pub slack: Duration,
    /// Legitimate CONNECTs per phase (before, during, after the attack); the
    /// phase during stops early when the first stalled connection nears the deadline.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub samples: u64,
    /// Stalled connections being opened at once.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Largest accepted ratio of CONNECT latency during the attack to before
    /// it (p50 and p99).
    #[arg(long, default_value_t = 2.0)]
    pub max_ratio: f64,
    /// Seconds allowed for one connect (legitimate or stalled) to open.
    #[arg(long, value_parser = parse_secs, default_value = "5")]
    pub timeout: Duration,
    /// Directory for slowloris.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit 0 even when a check failed (it is still reported).
    #[arg(long)]
    pub allow_errors: bool,
}

#[derive(Debug, Args)]
pub struct SinkArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct PingpongArgs {
    /// Measured round trips per case (after 1000 unmeasured ones).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub count: u64,
    /// Bytes per message.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub size: u64,
    /// Directory for pingpong.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PingpongEchoArgs {
    #[arg(long)]
    pub connect: SocketAddr,
    /// Spin on non-blocking reads instead of sleeping in blocking ones.
    #[arg(long)]
    pub spin: bool,
}

pub fn parse_target(s: &str) -> Result<Target, String> {
    Target::parse(s)
}

fn parse_url(s: &str) -> Result<HttpUrl, String> {
    s.parse()
}

/// Non-negative, possibly fractional seconds.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=1e7).contains(&v) {
        return Err(format!("`{s}`: seconds must be between 0 and 10000000"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// A byte count with an optional binary suffix: `4096`, `64K`, `256MiB`, `1G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size"))?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}`")),
    };
    let bytes = n * mult;
    if !(1.0..=1e15).contains(&bytes) {
        return Err(format!("`{s}`: size out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values() {
        assert_eq!(parse_secs("0.2").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_secs("5").unwrap(), Duration::from_secs(5));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("NaN").is_err());
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn spike_defaults_mirror_the_seed_experiment() {
        let cli = Cli::try_parse_from(["pulse", "spike", "--target", "127.0.0.1:1080"]).unwrap();
        let Command::Spike(a) = cli.command else {
            panic!("not spike")
        };
        assert_eq!(
            (a.big, a.big_pulses, a.small, a.small_pulses),
            (9000, 3, 1000, 3)
        );
        assert_eq!(a.linger, Duration::from_secs(4));
        assert_eq!(a.mode, Mode::Raw);
        assert!(a.auth.credentials().is_none());
    }

    #[test]
    fn rejects_conflicting_or_half_options() {
        let half = Cli::try_parse_from(["pulse", "spike", "--user", "u"]);
        assert!(half.is_err());
        let both = Cli::try_parse_from([
            "pulse",
            "spike",
            "--pid",
            "1",
            "--memory-url",
            "http://127.0.0.1:1/api/memory",
        ]);
        assert!(both.is_err());
        let ok = Cli::try_parse_from([
            "pulse",
            "rate",
            "--proxy",
            "127.0.0.1:1080",
            "--concurrency",
            "1,8,64",
        ]);
        let Command::Rate(r) = ok.unwrap().command else {
            panic!("not rate")
        };
        assert_eq!(r.concurrency, [1, 8, 64]);
    }
}
