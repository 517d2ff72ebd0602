//! The experiment's shape: which pulses run in what order, and the phases
//! (baseline, connect, hold, close, gap, tail) recorded as time spans so the
//! summary and the chart can tell what the server was going through.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::sampler::Shared;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Baseline,
    Connect,
    Hold,
    Close,
    Gap,
    Tail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PulseKind {
    Big,
    Small,
}

/// One phase of the run, in milliseconds since the run started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseSpan {
    pub stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulse: Option<PulseKind>,
    /// 1-based number of the pulse within its kind; 0 outside pulses.
    #[serde(default)]
    pub index: u32,
    pub label: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

impl PhaseSpan {
    pub fn contains(&self, t_ms: u64) -> bool {
        (self.start_ms..=self.end_ms).contains(&t_ms)
    }
}

/// One pulse to run, and the pause after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub kind: PulseKind,
    pub index: u32,
    pub of: u32,
    pub size: usize,
    pub gap_after: Duration,
}

/// Big pulses first, then small ones, like the seed experiment. The gap
/// after the last big pulse is the big gap; the last pulse has none, the
/// tail follows it instead.
pub fn plan(big: (usize, u32, Duration), small: (usize, u32, Duration)) -> Vec<Step> {
    let mut steps = Vec::new();
    for (kind, (size, count, gap)) in [(PulseKind::Big, big), (PulseKind::Small, small)] {
        for index in 1..=count {
            steps.push(Step {
                kind,
                index,
                of: count,
                size,
                gap_after: gap,
            });
        }
    }
    if let Some(last) = steps.last_mut() {
        last.gap_after = Duration::ZERO;
    }
    steps
}

pub fn label(stage: Stage, pulse: Option<&Step>) -> String {
    let name = match stage {
        Stage::Baseline => "baseline",
        Stage::Connect => "connect",
        Stage::Hold => "hold",
        Stage::Close => "close",
        Stage::Gap => "gap",
        Stage::Tail => "tail",
    };
    match pulse {
        Some(s) => {
            let kind = match s.kind {
                PulseKind::Big => "big",
                PulseKind::Small => "small",
            };
            format!("{kind} {}/{} {name}", s.index, s.of)
        }
        None => name.to_string(),
    }
}

/// Records phases as the run enters them and tells the sampler the label.
#[derive(Debug)]
pub struct Phases {
    shared: Arc<Shared>,
    done: Vec<PhaseSpan>,
    current: Option<PhaseSpan>,
}

impl Phases {
    pub fn new(shared: Arc<Shared>) -> Phases {
        Phases {
            shared,
            done: Vec::new(),
            current: None,
        }
    }

    pub fn enter(&mut self, stage: Stage, pulse: Option<&Step>) {
        let now = self.shared.elapsed_ms();
        if let Some(mut cur) = self.current.take() {
            cur.end_ms = now;
            self.done.push(cur);
        }
        let label = label(stage, pulse);
        self.shared.set_phase(&label);
        self.current = Some(PhaseSpan {
            stage,
            pulse: pulse.map(|s| s.kind),
            index: pulse.map_or(0, |s| s.index),
            label,
            start_ms: now,
            end_ms: now,
        });
    }

    pub fn finish(mut self) -> Vec<PhaseSpan> {
        if let Some(mut cur) = self.current.take() {
            cur.end_ms = self.shared.elapsed_ms();
            self.done.push(cur);
        }
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_orders_pulses_and_gaps() {
        let s = Duration::from_secs;
        let steps = plan((9000, 2, s(5)), (1000, 2, s(20)));
        let shape: Vec<_> = steps
            .iter()
            .map(|p| (p.kind, p.index, p.gap_after))
            .collect();
        assert_eq!(
            shape,
            [
                (PulseKind::Big, 1, s(5)),
                (PulseKind::Big, 2, s(5)),
                (PulseKind::Small, 1, s(20)),
                (PulseKind::Small, 2, s(0)),
            ]
        );
        assert_eq!(label(Stage::Hold, Some(&steps[1])), "big 2/2 hold");
        // A control run: small pulses only.
        assert_eq!(plan((9000, 0, s(5)), (1000, 1, s(20))).len(), 1);
    }

    #[test]
    fn phases_are_contiguous() {
        let shared = Arc::new(Shared::new());
        let mut p = Phases::new(shared.clone());
        let step = plan((5, 1, Duration::ZERO), (0, 0, Duration::ZERO))[0];
        p.enter(Stage::Baseline, None);
        p.enter(Stage::Connect, Some(&step));
        assert_eq!(shared.phase(), "big 1/1 connect");
        p.enter(Stage::Tail, None);
        let spans = p.finish();
        assert_eq!(spans.len(), 3);
        assert!(spans.windows(2).all(|w| w[0].end_ms == w[1].start_ms));
        assert_eq!(spans[1].pulse, Some(PulseKind::Big));
    }
}
