//! The numbers a reader wants from a spike run, computed from the timeline
//! alone so they can be recomputed and tested on synthetic data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sampler::Sample;
use super::schedule::{PhaseSpan, PulseKind, Stage};
use crate::stats::{median_u64, ratio};

/// Seconds after the last big pulse ended at which memory is reported.
pub const CHECKPOINTS_S: [u64; 4] = [2, 5, 15, 30];

/// The window at the end of the tail whose median is the "final" RSS.
const FINAL_WINDOW_MS: u64 = 5_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub after_s: u64,
    /// The first sample at or after the checkpoint; none if the run ended first.
    pub t_ms: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub rss_anon_bytes: Option<u64>,
    pub phase: Option<String>,
}

/// Memory figures derived from samples and phases.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// Median RSS during the baseline phase.
    pub baseline_rss_bytes: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub peak_at_ms: Option<u64>,
    /// Connections open at the busiest sample.
    pub max_open: usize,
    /// When the last big pulse's connections had all been closed.
    pub last_big_end_ms: Option<u64>,
    pub after_last_big: Vec<Checkpoint>,
    /// Median RSS while the last small pulse held its connections.
    pub small_steady_rss_bytes: Option<u64>,
    /// Median RSS over the last seconds of the tail.
    pub final_rss_bytes: Option<u64>,
    /// (peak - baseline) / connections in a big pulse.
    pub per_connection_bytes: Option<f64>,
}

/// How this run compares with a control run (e.g. a fresh server that only
/// saw small pulses). Ratios near 1 mean the spikes left nothing behind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Control {
    pub path: PathBuf,
    pub small_steady_rss_bytes: Option<u64>,
    pub final_rss_bytes: Option<u64>,
    pub small_steady_ratio: Option<f64>,
    pub final_ratio: Option<f64>,
}

/// What summary.json holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub target: String,
    pub mode: String,
    pub dest: Option<String>,
    pub memory_source: Option<String>,
    pub big: usize,
    pub big_pulses: u32,
    pub small: usize,
    pub small_pulses: u32,
    pub linger_s: f64,
    pub samples: usize,
    #[serde(flatten)]
    pub memory: Memory,
    pub control: Option<Control>,
    pub connections_attempted: u64,
    pub connection_errors_total: u64,
    pub connection_errors: BTreeMap<String, u64>,
    pub sample_errors: BTreeMap<String, u64>,
}

fn rss_in<'a>(samples: &'a [Sample], keep: impl Fn(&Sample) -> bool + 'a) -> Vec<u64> {
    samples
        .iter()
        .filter(|s| keep(s))
        .filter_map(|s| s.rss_bytes)
        .collect()
}

pub fn memory(samples: &[Sample], phases: &[PhaseSpan], big: usize) -> Memory {
    let mut m = Memory {
        max_open: samples.iter().map(|s| s.open).max().unwrap_or(0),
        ..Memory::default()
    };
    let baseline: Vec<u64> = phases
        .iter()
        .filter(|p| p.stage == Stage::Baseline)
        .flat_map(|p| rss_in(samples, |s| p.contains(s.t_ms)))
        .collect();
    m.baseline_rss_bytes =
        median_u64(&baseline).or_else(|| samples.iter().find_map(|s| s.rss_bytes));

    if let Some(peak) = samples
        .iter()
        .filter(|s| s.rss_bytes.is_some())
        .max_by_key(|s| s.rss_bytes)
    {
        m.peak_rss_bytes = peak.rss_bytes;
        m.peak_at_ms = Some(peak.t_ms);
    }

    m.last_big_end_ms = phases
        .iter()
        .filter(|p| p.stage == Stage::Close && p.pulse == Some(PulseKind::Big))
        .map(|p| p.end_ms)
        .max();
    if let Some(end) = m.last_big_end_ms {
        m.after_last_big = CHECKPOINTS_S
            .iter()
            .map(|&after_s| {
                let at = end + after_s * 1000;
                let s = samples
                    .iter()
                    .find(|s| s.t_ms >= at && s.rss_bytes.is_some());
                Checkpoint {
                    after_s,
                    t_ms: s.map(|s| s.t_ms),
                    rss_bytes: s.and_then(|s| s.rss_bytes),
                    rss_anon_bytes: s.and_then(|s| s.rss_anon_bytes),
                    phase: s.map(|s| s.phase.clone()),
                }
            })
            .collect();
        if big > 0 {
            if let (Some(peak), Some(base)) = (m.peak_rss_bytes, m.baseline_rss_bytes) {
                m.per_connection_bytes = Some(peak.saturating_sub(base) as f64 / big as f64);
            }
        }
    }

    let last_small_hold = phases
        .iter()
        .filter(|p| p.stage == Stage::Hold && p.pulse == Some(PulseKind::Small))
        .max_by_key(|p| p.index);
    m.small_steady_rss_bytes =
        last_small_hold.and_then(|p| median_u64(&rss_in(samples, |s| p.contains(s.t_ms))));

    m.final_rss_bytes = match phases.iter().find(|p| p.stage == Stage::Tail) {
        Some(tail) => {
            let from = tail
                .end_ms
                .saturating_sub(FINAL_WINDOW_MS)
                .max(tail.start_ms);
            median_u64(&rss_in(samples, |s| {
                s.t_ms >= from && s.t_ms <= tail.end_ms
            }))
        }
        None => None,
    }
    .or_else(|| samples.iter().rev().find_map(|s| s.rss_bytes));
    m
}

/// Reads a control run's summary.json (or the directory holding it).
pub fn load_control(path: &Path) -> Result<Memory, String> {
    let file = if path.is_dir() {
        path.join("summary.json")
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let s: Summary = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a pulse summary: {e}", file.display()))?;
    Ok(s.memory)
}

pub fn compare(this: &Memory, control: &Memory, path: &Path) -> Control {
    let f = |x: Option<u64>| x.map(|v| v as f64);
    Control {
        path: path.to_path_buf(),
        small_steady_rss_bytes: control.small_steady_rss_bytes,
        final_rss_bytes: control.final_rss_bytes,
        small_steady_ratio: ratio(
            f(this.small_steady_rss_bytes),
            f(control.small_steady_rss_bytes),
        ),
        final_ratio: ratio(f(this.final_rss_bytes), f(control.final_rss_bytes)),
    }
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
