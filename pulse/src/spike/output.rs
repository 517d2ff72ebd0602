//! Files a spike run leaves behind and the summary it prints.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::chart;
use super::sampler::Sample;
use super::schedule::PhaseSpan;
use super::summary::Summary;
use crate::stats::{fmt_bytes, fmt_mib, fmt_ratio};

/// What timeline.json holds: every sample and every phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timeline {
    pub target: String,
    pub mode: String,
    pub memory_source: Option<String>,
    pub sample_ms: u64,
    pub phases: Vec<PhaseSpan>,
    pub samples: Vec<Sample>,
}

pub fn csv(samples: &[Sample]) -> String {
    let mut out = String::from("time_ms,open_connections,rss_bytes,rss_anon_bytes,phase\n");
    let opt = |v: Option<u64>| v.map_or_else(String::new, |v| v.to_string());
    for s in samples {
        // Labels are ours ("big 1/3 hold"): no commas or quotes to escape.
        let _ = writeln!(
            out,
            "{},{},{},{},{}",
            s.t_ms,
            s.open,
            opt(s.rss_bytes),
            opt(s.rss_anon_bytes),
            s.phase
        );
    }
    out
}

/// Writes timeline.json, timeline.csv, summary.json and chart.svg; returns
/// their paths.
pub fn write(dir: &Path, timeline: &Timeline, summary: &Summary) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let title = format!(
        "pulse spike: {} ({}), {} x {} big, {} x {} small",
        summary.target,
        summary.mode,
        summary.big_pulses,
        summary.big,
        summary.small_pulses,
        summary.small
    );
    let files = [
        ("timeline.json", serde_json::to_string_pretty(timeline)?),
        ("timeline.csv", csv(&timeline.samples)),
        ("summary.json", serde_json::to_string_pretty(summary)?),
        (
            "chart.svg",
            chart::render(&title, &timeline.samples, &timeline.phases, &summary.memory),
        ),
    ];
    let mut written = Vec::new();
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The human summary printed at the end of a run.
/// `error_lines` are the failure counts in words (see `FailCounts::lines`).
pub fn render_text(s: &Summary, error_lines: &[String], files: &[PathBuf]) -> String {
    let m = &s.memory;
    let mut o = String::new();
    let _ = writeln!(o, "pulse spike against {} ({})", s.target, s.mode);
    if let Some(dest) = &s.dest {
        let _ = writeln!(o, "  destination        {dest}");
    }
    let _ = writeln!(
        o,
        "  pulses             {} x {} big, {} x {} small, held {:.1} s each",
        s.big_pulses, s.big, s.small_pulses, s.small, s.linger_s
    );
    let _ = writeln!(
        o,
        "  memory samples     {} from {}",
        s.samples,
        s.memory_source
            .as_deref()
            .unwrap_or("nowhere (no --pid or --memory-url)")
    );
    let _ = writeln!(o, "  baseline RSS       {}", fmt_mib(m.baseline_rss_bytes));
    let peak_at = m
        .peak_at_ms
        .map_or_else(String::new, |t| format!(" at {:.1} s", t as f64 / 1000.0));
    let _ = writeln!(
        o,
        "  peak RSS           {}{peak_at}",
        fmt_mib(m.peak_rss_bytes)
    );
    let _ = writeln!(o, "  most open          {} connections", m.max_open);
    if let Some(c) = m.per_connection_bytes {
        let _ = writeln!(
            o,
            "  per connection     {}  ((peak - baseline) / {})",
            fmt_bytes(c),
            s.big
        );
    }
    if let Some(end) = m.last_big_end_ms {
        let _ = writeln!(
            o,
            "  after the last big pulse (ended at {:.1} s):",
            end as f64 / 1000.0
        );
        for c in &m.after_last_big {
            let phase = c
                .phase
                .as_deref()
                .map_or_else(String::new, |p| format!("  ({p})"));
            let what = match c.t_ms {
                Some(_) => fmt_mib(c.rss_bytes),
                None => "- (run ended first)".into(),
            };
            let _ = writeln!(o, "    +{:<3} s           {what}{phase}", c.after_s);
        }
    }
    let _ = writeln!(
        o,
        "  small steady state {}  (median during the last small pulse's hold)",
        fmt_mib(m.small_steady_rss_bytes)
    );
    let _ = writeln!(
        o,
        "  final RSS          {}  (median of the tail's last 5 s)",
        fmt_mib(m.final_rss_bytes)
    );
    if let Some(c) = &s.control {
        let _ = writeln!(
            o,
            "  vs control         steady {} ({} in control), final {} ({} in control)",
            fmt_ratio(c.small_steady_ratio),
            fmt_mib(c.small_steady_rss_bytes),
            fmt_ratio(c.final_ratio),
            fmt_mib(c.final_rss_bytes)
        );
    }
    let _ = writeln!(o, "  connections tried  {}", s.connections_attempted);
    if s.connection_errors_total == 0 {
        let _ = writeln!(o, "  connection errors  none");
    } else {
        let _ = writeln!(
            o,
            "  connection errors  {} by kind:",
            s.connection_errors_total
        );
        for line in error_lines {
            let _ = writeln!(o, "  {line}");
        }
    }
    for (msg, n) in &s.sample_errors {
        let _ = writeln!(o, "  memory read failed {n} x: {msg}");
    }
    for f in files {
        let _ = writeln!(o, "  wrote {}", f.display());
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fail::{FailCounts, FailKind};
    use std::collections::BTreeMap;

    #[test]
    fn csv_leaves_missing_readings_empty() {
        let s = [
            Sample {
                t_ms: 0,
                open: 0,
                rss_bytes: Some(10),
                rss_anon_bytes: None,
                phase: "baseline".into(),
                detail: BTreeMap::new(),
            },
            Sample {
                t_ms: 200,
                open: 5,
                rss_bytes: None,
                rss_anon_bytes: None,
                phase: "big 1/3 hold".into(),
                detail: BTreeMap::new(),
            },
        ];
        assert_eq!(
            csv(&s),
            "time_ms,open_connections,rss_bytes,rss_anon_bytes,phase\n0,0,10,,baseline\n200,5,,,big 1/3 hold\n"
        );
    }

    #[test]
    fn text_lists_errors_by_kind() {
        let mut fails = FailCounts::default();
        fails.add_n(FailKind::SocksReply(5), 2);
        fails.add(FailKind::Timeout);
        let s = Summary {
            target: "127.0.0.1:1080".into(),
            connection_errors_total: fails.total(),
            connection_errors: fails.to_map(),
            ..Summary::default()
        };
        let text = render_text(&s, &fails.lines(), &[]);
        assert!(text.contains("connection errors  3 by kind"));
        let two = text.find("socks reply 0x05 (connection refused)").unwrap();
        assert!(two < text.find("timeout").unwrap(), "most frequent first");
    }
}
