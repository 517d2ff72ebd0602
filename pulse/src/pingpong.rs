//! The floor under any proxy's per-hop latency on this machine: the round
//! trip of a small message between two processes on loopback, with each side
//! either sleeping in a blocking read or spinning on a non-blocking one.
//!
//! Every extra round trip a proxy puts between a client and its destination
//! pays this wake-up at least twice. On a virtual machine whose idle vCPUs
//! halt at once, waking a sleeping process costs tens of microseconds, and
//! no proxy that sleeps while it waits can do better; the spinning figures
//! show what the wake-up itself costs.
//!
//! The echoing side runs in a child process (this same binary, hidden
//! subcommand `pingpong-echo`), so the wake-up crosses processes as it does
//! between a client and a proxy.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::cli::{PingpongArgs, PingpongEchoArgs};

/// No single read waits longer than this; a run always ends.
const READ_LIMIT: Duration = Duration::from_secs(10);
/// Round trips before measuring: caches, page faults, TCP state.
const WARMUP: usize = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub echo_spins: bool,
    pub client_spins: bool,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub payload_bytes: u64,
    pub round_trips: u64,
    pub cases: Vec<Case>,
}

/// Measures all four combinations of sleeping and spinning, one child each.
pub fn run(args: &PingpongArgs) -> anyhow::Result<Report> {
    let mut cases = Vec::new();
    for echo_spins in [false, true] {
        for client_spins in [false, true] {
            let rtts = one_case(args, echo_spins, client_spins).with_context(|| {
                format!("echo spins: {echo_spins}, client spins: {client_spins}")
            })?;
            cases.push(Case {
                echo_spins,
                client_spins,
                p50_us: quantile(&rtts, 0.5),
                p99_us: quantile(&rtts, 0.99),
                p999_us: quantile(&rtts, 0.999),
            });
        }
    }
    Ok(Report {
        payload_bytes: args.size,
        round_trips: args.count,
        cases,
    })
}

/// Sorted round-trip times in microseconds.
fn one_case(args: &PingpongArgs, echo_spins: bool, client_spins: bool) -> anyhow::Result<Vec<f64>> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the listener")?;
    let addr = listener.local_addr()?;
    let mut child = EchoChild::spawn(addr, echo_spins)?;
    let mut stream =
        accept_within(&listener, READ_LIMIT).context("waiting for the echo process")?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(client_spins)?;
    stream.set_read_timeout(Some(READ_LIMIT))?;
    let size = usize::try_from(args.size)?;
    let count = usize::try_from(args.count)?;
    let message = vec![0x5a; size];
    let mut back = vec![0; size];
    let mut rtts = Vec::with_capacity(count);
    for i in 0..WARMUP + count {
        let started = Instant::now();
        write_all(&mut stream, &message)?;
        read_exact(&mut stream, &mut back)?;
        if i >= WARMUP {
            rtts.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    drop(stream);
    child.wait()?;
    rtts.sort_by(f64::total_cmp);
    Ok(rtts)
}

/// The hidden `pingpong-echo` subcommand: echo until the peer closes.
pub fn echo(args: &PingpongEchoArgs) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(args.connect).context("connecting back to pulse")?;
    stream.set_nodelay(true)?;
    stream.set_nonblocking(args.spin)?;
    stream.set_read_timeout(Some(READ_LIMIT))?;
    let mut buf = [0u8; 4096];
    loop {
        let n = read_some(&mut stream, &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        write_all(&mut stream, &buf[..n])?;
    }
}

/// A child process running `pingpong-echo`; killed if it outlives its run.
struct EchoChild(Child);

impl EchoChild {
    fn spawn(addr: SocketAddr, spin: bool) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding pulse's own binary")?;
        let mut command = Command::new(exe);
        command.args(["pingpong-echo", "--connect", &addr.to_string()]);
        if spin {
            command.arg("--spin");
        }
        Ok(Self(command.spawn().context("starting the echo process")?))
    }

    fn wait(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READ_LIMIT;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait()? {
                anyhow::ensure!(status.success(), "echo process failed: {status}");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        anyhow::bail!("echo process did not exit after its peer closed")
    }
}

impl Drop for EchoChild {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn accept_within(listener: &TcpListener, limit: Duration) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((stream, _)) => return Ok(stream),
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
}

/// One read. On a non-blocking socket this spins until data arrives, never
/// longer than [`READ_LIMIT`]; on a blocking one the read timeout bounds it.
fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let deadline = Instant::now() + READ_LIMIT;
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::hint::spin_loop();
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match read_some(stream, &mut buf[got..])? {
            0 => return Err(ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    Ok(())
}

/// A small message fits the send buffer, but a non-blocking write may still
/// take part of it; the rest is retried until written.
fn write_all(stream: &mut TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    let deadline = Instant::now() + READ_LIMIT;
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::hint::spin_loop();
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn render_text(r: &Report) -> String {
    let mut out = format!(
        "loopback round trip of {} bytes between two processes, {} round trips per case\n\
         echo     client      p50 us     p99 us   p99.9 us\n",
        r.payload_bytes, r.round_trips
    );
    let side = |spins: bool| if spins { "spins" } else { "sleeps" };
    for c in &r.cases {
        out.push_str(&format!(
            "{:<8} {:<8} {:>9.1} {:>10.1} {:>10.1}\n",
            side(c.echo_spins),
            side(c.client_spins),
            c.p50_us,
            c.p99_us,
            c.p999_us
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 0.999), 100.0);
        assert_eq!(quantile(&[7.0], 0.5), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
