use super::*;

const MIB: u64 = 1 << 20;

fn span(
    stage: Stage,
    pulse: Option<PulseKind>,
    index: u32,
    start_ms: u64,
    end_ms: u64,
) -> PhaseSpan {
    PhaseSpan {
        stage,
        pulse,
        index,
        label: format!("{stage:?}"),
        start_ms,
        end_ms,
    }
}

/// Baseline, one big pulse of 1000, a gap, one small pulse, a long tail.
fn phases() -> Vec<PhaseSpan> {
    use PulseKind::{Big, Small};
    vec![
        span(Stage::Baseline, None, 0, 0, 1000),
        span(Stage::Connect, Some(Big), 1, 1000, 1500),
        span(Stage::Hold, Some(Big), 1, 1500, 3500),
        span(Stage::Close, Some(Big), 1, 3500, 3600),
        span(Stage::Gap, None, 0, 3600, 8600),
        span(Stage::Connect, Some(Small), 1, 8600, 8700),
        span(Stage::Hold, Some(Small), 1, 8700, 10700),
        span(Stage::Close, Some(Small), 1, 10700, 10750),
        span(Stage::Tail, None, 0, 10750, 45000),
    ]
}

/// RSS in MiB at time t: a step-shaped spike that ebbs in stages.
fn rss_mib(t: u64) -> u64 {
    match t {
        0..=999 => 10,
        3000 => 110,
        1000..=3599 => 100,
        3600..=5599 => 80,
        5600..=8599 => 50,
        8600..=10749 => 32,
        10750..=39999 => 20,
        _ => 18,
    }
}

fn samples(until_ms: u64) -> Vec<Sample> {
    (0..=until_ms)
        .step_by(100)
        .map(|t| Sample {
            t_ms: t,
            open: if (1000..3600).contains(&t) { 1000 } else { 0 },
            rss_bytes: Some(rss_mib(t) * MIB),
            rss_anon_bytes: Some(rss_mib(t) * MIB / 2),
            phase: String::new(),
            detail: BTreeMap::new(),
        })
        .collect()
}

#[test]
fn baseline_peak_and_cost() {
    let m = memory(&samples(45000), &phases(), 1000);
    assert_eq!(m.baseline_rss_bytes, Some(10 * MIB));
    assert_eq!(m.peak_rss_bytes, Some(110 * MIB));
    assert_eq!(m.peak_at_ms, Some(3000));
    assert_eq!(m.max_open, 1000);
    assert_eq!(m.last_big_end_ms, Some(3600));
    assert_eq!(m.per_connection_bytes, Some(100.0 * MIB as f64 / 1000.0));
}

#[test]
fn checkpoints_after_last_big_pulse() {
    let m = memory(&samples(45000), &phases(), 1000);
    let got: Vec<_> = m
        .after_last_big
        .iter()
        .map(|c| (c.after_s, c.t_ms, c.rss_bytes.map(|b| b / MIB)))
        .collect();
    assert_eq!(
        got,
        [
            (2, Some(5600), Some(50)),
            (5, Some(8600), Some(32)),
            (15, Some(18600), Some(20)),
            (30, Some(33600), Some(20)),
        ]
    );
}

#[test]
fn steady_state_and_final() {
    let m = memory(&samples(45000), &phases(), 1000);
    assert_eq!(m.small_steady_rss_bytes, Some(32 * MIB));
    // Median of the tail's last 5 s (40000..=45000).
    assert_eq!(m.final_rss_bytes, Some(18 * MIB));
}

#[test]
fn a_short_run_leaves_late_checkpoints_empty() {
    let m = memory(&samples(20000), &phases(), 1000);
    assert_eq!(m.after_last_big[2].rss_bytes, Some(20 * MIB));
    assert_eq!(m.after_last_big[3].t_ms, None);
    assert_eq!(m.after_last_big[3].rss_bytes, None);
}

#[test]
fn control_run_without_big_pulses() {
    let p: Vec<_> = phases()
        .into_iter()
        .filter(|p| p.pulse != Some(PulseKind::Big))
        .collect();
    let m = memory(&samples(45000), &p, 9000);
    assert_eq!(m.last_big_end_ms, None);
    assert!(m.after_last_big.is_empty());
    assert_eq!(m.per_connection_bytes, None);
    assert_eq!(m.small_steady_rss_bytes, Some(32 * MIB));
}

#[test]
fn ratio_to_a_control_loaded_from_disk() {
    let this = memory(&samples(45000), &phases(), 1000);
    let control = Summary {
        memory: Memory {
            small_steady_rss_bytes: Some(16 * MIB),
            final_rss_bytes: Some(18 * MIB),
            ..Memory::default()
        },
        ..Summary::default()
    };
    let dir = std::env::temp_dir().join(format!("pulse-control-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_vec(&control).unwrap(),
    )
    .unwrap();
    let loaded = load_control(&dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let c = compare(&this, &loaded, &dir);
    assert_eq!(c.small_steady_ratio, Some(2.0));
    assert_eq!(c.final_ratio, Some(1.0));
    assert!(load_control(Path::new("/nonexistent/summary.json")).is_err());
}

#[test]
fn no_memory_source_means_no_memory_figures() {
    let mut s = samples(45000);
    for x in &mut s {
        x.rss_bytes = None;
    }
    let m = memory(&s, &phases(), 1000);
    assert_eq!(m.baseline_rss_bytes, None);
    assert_eq!(m.peak_rss_bytes, None);
    assert_eq!(m.per_connection_bytes, None);
    assert_eq!(m.max_open, 1000);
}
