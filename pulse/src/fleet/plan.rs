//! When each spike starts: servers take turns, one spike every `stagger`,
//! so at most one server is spiking at a time when `stagger` is longer
//! than a spike.

use std::time::Duration;

use serde::Serialize;

/// One spike of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Index into the servers, in command-line order.
    pub server: usize,
    /// 0-based round: the server's how-manieth spike.
    pub round: u32,
    /// From the start of sampling.
    pub start: Duration,
}

/// What happened to one spike, for the summary and the chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpikeSpan {
    pub server: usize,
    pub round: u32,
    pub start_ms: u64,
    /// When its connections were closed.
    pub end_ms: u64,
    pub opened: usize,
}

/// Round-robin over `servers` for `rounds` rounds, after `baseline`.
pub fn plan(servers: usize, rounds: u32, baseline: Duration, stagger: Duration) -> Vec<Planned> {
    (0..rounds)
        .flat_map(|round| (0..servers).map(move |server| (round, server)))
        .enumerate()
        .map(|(i, (round, server))| Planned {
            server,
            round,
            start: baseline + stagger.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_take_turns_one_stagger_apart() {
        let p = plan(3, 2, Duration::from_secs(2), Duration::from_secs(10));
        let got: Vec<(usize, u32, u64)> = p
            .iter()
            .map(|s| (s.server, s.round, s.start.as_secs()))
            .collect();
        assert_eq!(
            got,
            [
                (0, 0, 2),
                (1, 0, 12),
                (2, 0, 22),
                (0, 1, 32),
                (1, 1, 42),
                (2, 1, 52)
            ]
        );
    }

    #[test]
    fn one_server_one_round_is_one_spike_after_the_baseline() {
        let p = plan(1, 1, Duration::from_millis(500), Duration::from_secs(10));
        assert_eq!(
            p,
            [Planned {
                server: 0,
                round: 0,
                start: Duration::from_millis(500)
            }]
        );
    }
}
