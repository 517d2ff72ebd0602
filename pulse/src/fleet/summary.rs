//! What a fleet run found: each server's memory at rest, at its peak and
//! at the end, each spike's peak and the ebb after it, and the same for the
//! servers' sum. The figure the run exists for is the peak of the sum
//! against the sum of the peaks: the box needs the first, not the second,
//! when spikes take turns and memory ebbs in between.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::plan::SpikeSpan;
use super::sampler::FleetSample;
use crate::stats::fmt_mib;

/// Seconds after a spike's close at which its server's RSS is reported.
pub const EBB_AFTER_S: u64 = 5;

#[derive(Debug, Clone, Serialize)]
pub struct ServerSummary {
    pub target: String,
    pub pid: u32,
    /// At the first sample, before any spike.
    pub baseline_rss_bytes: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    /// At the last sample, after the tail.
    pub final_rss_bytes: Option<u64>,
    pub max_open: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SpikeSummary {
    pub server: usize,
    pub round: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    pub opened: usize,
    /// The server's highest RSS while the spike's connections were open.
    pub peak_rss_bytes: Option<u64>,
    /// The server's RSS [`EBB_AFTER_S`] seconds after the spike closed.
    pub rss_after_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FleetSummary {
    pub servers: Vec<ServerSummary>,
    pub spikes: Vec<SpikeSummary>,
    pub sum_baseline_rss_bytes: Option<u64>,
    /// The highest sum of the servers' RSS at one tick.
    pub sum_peak_rss_bytes: Option<u64>,
    /// What the box would need if every server peaked at once.
    pub sum_of_peaks_rss_bytes: Option<u64>,
    pub sum_final_rss_bytes: Option<u64>,
    pub size: u64,
    pub rounds: u32,
    pub stagger_s: f64,
    pub linger_s: f64,
    pub samples: usize,
    pub connections_attempted: u64,
    pub connection_errors_total: u64,
    pub connection_errors: BTreeMap<String, u64>,
    pub sample_errors: BTreeMap<String, u64>,
}

/// The first reading of `server` at or after `t_ms`.
fn reading_at(samples: &[FleetSample], server: usize, t_ms: u64) -> Option<u64> {
    samples
        .iter()
        .find(|s| s.t_ms >= t_ms)
        .and_then(|s| s.rss_bytes.get(server).copied().flatten())
}

/// Per-server and sum figures; `targets` are (name, pid) in server order.
pub fn servers(samples: &[FleetSample], targets: &[(String, u32)]) -> Vec<ServerSummary> {
    targets
        .iter()
        .enumerate()
        .map(|(i, (target, pid))| {
            let rss = |s: &FleetSample| s.rss_bytes.get(i).copied().flatten();
            ServerSummary {
                target: target.clone(),
                pid: *pid,
                baseline_rss_bytes: samples.first().and_then(rss),
                peak_rss_bytes: samples.iter().filter_map(rss).max(),
                final_rss_bytes: samples.last().and_then(rss),
                max_open: samples
                    .iter()
                    .filter_map(|s| s.open.get(i).copied())
                    .max()
                    .unwrap_or(0),
            }
        })
        .collect()
}

pub fn spikes(samples: &[FleetSample], spans: &[SpikeSpan]) -> Vec<SpikeSummary> {
    spans
        .iter()
        .map(|span| SpikeSummary {
            server: span.server,
            round: span.round,
            start_ms: span.start_ms,
            end_ms: span.end_ms,
            opened: span.opened,
            peak_rss_bytes: samples
                .iter()
                .filter(|s| (span.start_ms..=span.end_ms).contains(&s.t_ms))
                .filter_map(|s| s.rss_bytes.get(span.server).copied().flatten())
                .max(),
            rss_after_bytes: reading_at(samples, span.server, span.end_ms + EBB_AFTER_S * 1000),
        })
        .collect()
}

/// (baseline, peak of the sum, sum of the peaks, final) of the servers' RSS.
pub fn sums(
    samples: &[FleetSample],
    servers: &[ServerSummary],
) -> (Option<u64>, Option<u64>, Option<u64>, Option<u64>) {
    (
        samples.first().and_then(FleetSample::sum_rss),
        samples.iter().filter_map(FleetSample::sum_rss).max(),
        servers.iter().map(|s| s.peak_rss_bytes).sum(),
        samples.last().and_then(FleetSample::sum_rss),
    )
}

pub fn render_text(
    s: &FleetSummary,
    error_lines: &[String],
    files: &[std::path::PathBuf],
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "fleet: {} servers, {} spikes of {} connections, {:.1} s apart, held {:.1} s ({} samples)",
        s.servers.len(),
        s.spikes.len(),
        s.size,
        s.stagger_s,
        s.linger_s,
        s.samples
    );
    let _ = writeln!(
        o,
        "{:<4} {:<22} {:>8} {:>12} {:>12} {:>12}",
        "", "target", "pid", "baseline", "peak", "final"
    );
    for (i, v) in s.servers.iter().enumerate() {
        let _ = writeln!(
            o,
            "{:<4} {:<22} {:>8} {:>12} {:>12} {:>12}",
            i + 1,
            v.target,
            v.pid,
            fmt_mib(v.baseline_rss_bytes),
            fmt_mib(v.peak_rss_bytes),
            fmt_mib(v.final_rss_bytes)
        );
    }
    let _ = writeln!(
        o,
        "{:<4} {:<22} {:>8} {:>12} {:>12} {:>12}",
        "sum",
        "",
        "",
        fmt_mib(s.sum_baseline_rss_bytes),
        fmt_mib(s.sum_peak_rss_bytes),
        fmt_mib(s.sum_final_rss_bytes)
    );
    let _ = writeln!(
        o,
        "peak of the sum {} against a sum of peaks of {}",
        fmt_mib(s.sum_peak_rss_bytes),
        fmt_mib(s.sum_of_peaks_rss_bytes)
    );
    for k in &s.spikes {
        let _ = writeln!(
            o,
            "spike server {} round {}: {} open, peak {}, {} s after close {}",
            k.server + 1,
            k.round + 1,
            k.opened,
            fmt_mib(k.peak_rss_bytes),
            EBB_AFTER_S,
            fmt_mib(k.rss_after_bytes)
        );
    }
    let _ = writeln!(
        o,
        "connections: {} attempted, {} failed",
        s.connections_attempted, s.connection_errors_total
    );
    for line in error_lines {
        let _ = writeln!(o, "  {line}");
    }
    for (message, n) in &s.sample_errors {
        let _ = writeln!(o, "  memory read failed {n}x: {message}");
    }
    for f in files {
        let _ = writeln!(o, "wrote {}", f.display());
    }
    o
}

/// One row per sample: time, then per server open and RSS, then the sum.
pub fn csv(samples: &[FleetSample], servers: usize) -> String {
    let mut o = String::from("t_ms");
    for i in 1..=servers {
        let _ = write!(o, ",open_{i},rss_bytes_{i}");
    }
    o.push_str(",sum_rss_bytes\n");
    let cell = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for s in samples {
        let _ = write!(o, "{}", s.t_ms);
        for i in 0..servers {
            let open = s.open.get(i).copied().unwrap_or(0);
            let rss = s.rss_bytes.get(i).copied().flatten();
            let _ = write!(o, ",{open},{}", cell(rss));
        }
        let _ = writeln!(o, ",{}", cell(s.sum_rss()));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_ms: u64, rss: [u64; 2]) -> FleetSample {
        FleetSample {
            t_ms,
            open: vec![0, 0],
            rss_bytes: rss.iter().map(|&b| Some(b)).collect(),
        }
    }

    /// Two servers peaking at different times: the box needed 14, not 18.
    #[test]
    fn peak_of_the_sum_is_below_the_sum_of_peaks_when_spikes_take_turns() {
        let samples = [
            sample(0, [2, 2]),
            sample(1000, [10, 2]),
            sample(2000, [3, 2]),
            sample(3000, [3, 8]),
            sample(9000, [3, 3]),
        ];
        let targets = [("a".to_string(), 1), ("b".to_string(), 2)];
        let servers = servers(&samples, &targets);
        assert_eq!(servers[0].peak_rss_bytes, Some(10));
        assert_eq!(servers[1].baseline_rss_bytes, Some(2));
        assert_eq!(servers[1].final_rss_bytes, Some(3));
        assert_eq!(
            sums(&samples, &servers),
            (Some(4), Some(12), Some(18), Some(6))
        );
        let spans = [SpikeSpan {
            server: 0,
            round: 0,
            start_ms: 500,
            end_ms: 1500,
            opened: 5,
        }];
        let spike = &spikes(&samples, &spans)[0];
        assert_eq!(spike.peak_rss_bytes, Some(10));
        // 5 s after the close at 1.5 s: the sample at 9 s.
        assert_eq!(spike.rss_after_bytes, Some(3));
    }

    #[test]
    fn csv_has_a_column_pair_per_server_and_the_sum() {
        let mut s = sample(200, [1, 2]);
        s.rss_bytes[1] = None;
        let text = csv(&[sample(0, [1, 2]), s], 2);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "t_ms,open_1,rss_bytes_1,open_2,rss_bytes_2,sum_rss_bytes"
        );
        assert_eq!(lines[1], "0,0,1,0,2,3");
        assert_eq!(lines[2], "200,0,1,0,,");
    }
}
