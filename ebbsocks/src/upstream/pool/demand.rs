//! The warm-up policy, kept apart from sockets and locks so it can be read
//! (and tested) on its own: how many spare connections a destination has
//! earned, and when it has lost the right to any.
//!
//! **In demand.** A destination is in demand when its last
//! `warm_after_checkouts` checkouts all fell within one idle timeout. A
//! destination seen once is never in demand, so it never costs a spare.
//!
//! **How many.** An in-demand destination is worth as many spares as the
//! most sessions it had open at once (counting the one checking out)
//! during the current or the previous idle-timeout window, capped by
//! `max_idle_per_dest`. A steady one-at-a-time client earns one spare; a
//! page that opens six parallel connections earns up to six. The peak of
//! the previous window is remembered so that a burst keeps its spares for
//! one more window and then the figure decays.
//!
//! **Pauses.** A destination whose idle connections are found closed,
//! talking first (a banner) or broken, or whose spare connect failed, is
//! judged unsuited to pooling for a while: no spares for one idle timeout,
//! doubling with each further strike up to 16 timeouts. A hit (a spare that
//! was still good when a client took it) clears the strikes.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::PoolConfig;

/// The most checkouts the in-demand rule can ask for (a validation bound).
pub const MAX_WARM_AFTER_CHECKOUTS: usize = 16;

/// A pause lasts one idle timeout times 2^strikes-1, up to this many.
const MAX_PAUSE_FACTOR: u32 = 16;

/// The configuration the policy reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rule {
    pub(super) window: Duration,
    pub(super) warm_after: usize,
    pub(super) max_idle: usize,
}

impl Rule {
    pub(super) fn of(config: &PoolConfig) -> Self {
        Self {
            window: config.idle_timeout(),
            warm_after: config.warm_after_checkouts,
            max_idle: config.max_idle_per_dest,
        }
    }
}

/// One destination's recent demand.
#[derive(Debug)]
pub(super) struct Demand {
    /// The instants of the last checkouts, oldest first; at most
    /// `warm_after` of them (older ones cannot change the answer).
    recent: VecDeque<Instant>,
    /// Peak of sessions open at once in the current window.
    peak: usize,
    /// The same in the window before it.
    previous_peak: usize,
    window_start: Instant,
}

impl Demand {
    pub(super) fn new(now: Instant) -> Self {
        Self {
            recent: VecDeque::new(),
            peak: 0,
            previous_peak: 0,
            window_start: now,
        }
    }

    /// Records a checkout; `open` is the sessions to the destination open
    /// or connecting now, this one included.
    pub(super) fn checkout(&mut self, now: Instant, open: usize, rule: Rule) {
        self.roll(now, rule.window);
        self.recent.push_back(now);
        while self.recent.len() > rule.warm_after.max(1) {
            self.recent.pop_front();
        }
        self.peak = self.peak.max(open);
    }

    /// Whether the last `warm_after` checkouts fell within one window.
    pub(super) fn in_demand(&self, now: Instant, rule: Rule) -> bool {
        let n = rule.warm_after.max(1);
        self.recent.len() >= n
            && self
                .recent
                .get(self.recent.len() - n)
                .is_some_and(|&first| now.saturating_duration_since(first) <= rule.window)
    }

    /// Spares this destination has earned now: idle plus being opened
    /// should not exceed it.
    pub(super) fn target(&self, now: Instant, rule: Rule) -> usize {
        if !self.in_demand(now, rule) {
            return 0;
        }
        let age = now.saturating_duration_since(self.window_start);
        let peak = if age >= rule.window.saturating_mul(2) {
            0
        } else if age >= rule.window {
            self.peak
        } else {
            self.peak.max(self.previous_peak)
        };
        peak.min(rule.max_idle)
    }

    fn roll(&mut self, now: Instant, window: Duration) {
        let age = now.saturating_duration_since(self.window_start);
        if age >= window.saturating_mul(2) {
            self.previous_peak = 0;
            self.peak = 0;
            self.window_start = now;
        } else if age >= window {
            self.previous_peak = self.peak;
            self.peak = 0;
            self.window_start = now;
        }
    }
}

/// Why a destination was judged unsuited to pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PauseReason {
    /// An idle connection was found closed by the destination.
    ClosesIdle,
    /// The destination sent bytes first (a banner).
    SpeaksFirst,
    /// An idle connection had a socket error.
    Broken,
    /// A spare's connect failed.
    ConnectFailed,
}

impl PauseReason {
    pub(super) fn label(self) -> &'static str {
        match self {
            PauseReason::ClosesIdle => "closes_idle_connections",
            PauseReason::SpeaksFirst => "speaks_first",
            PauseReason::Broken => "idle_connection_error",
            PauseReason::ConnectFailed => "spare_connect_failed",
        }
    }
}

/// Warming suspended for a destination, with a back-off that grows with
/// each strike.
#[derive(Debug, Default)]
pub(super) struct Pause {
    until: Option<Instant>,
    reason: Option<PauseReason>,
    strikes: u32,
}

impl Pause {
    pub(super) fn active(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }

    /// The reason, while the pause lasts.
    pub(super) fn reason(&self, now: Instant) -> Option<PauseReason> {
        self.reason.filter(|_| self.active(now))
    }

    pub(super) fn remaining(&self, now: Instant) -> Duration {
        self.until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }

    /// A strike: pauses warming for `window` times 2^(strikes-1), capped,
    /// and returns how long; `None` if a pause was already running, which
    /// then stays as it is (several stale connections found at once are
    /// one verdict, not several).
    pub(super) fn strike(
        &mut self,
        now: Instant,
        window: Duration,
        reason: PauseReason,
    ) -> Option<Duration> {
        if self.active(now) {
            return None;
        }
        self.strikes = self.strikes.saturating_add(1);
        let factor = 1u32
            .checked_shl(self.strikes - 1)
            .unwrap_or(u32::MAX)
            .min(MAX_PAUSE_FACTOR);
        let length = window.saturating_mul(factor);
        self.until = Some(now + length);
        self.reason = Some(reason);
        Some(length)
    }

    /// A spare served a client: the destination keeps connections after
    /// all.
    pub(super) fn clear_strikes(&mut self) {
        self.strikes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(30);

    fn rule(warm_after: usize, max_idle: usize) -> Rule {
        Rule {
            window: WINDOW,
            warm_after,
            max_idle,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_checkout_is_not_demand_two_within_the_window_are() {
        let r = rule(2, 4);
        let mut d = Demand::new(Instant::now());
        d.checkout(Instant::now(), 1, r);
        assert_eq!(d.target(Instant::now(), r), 0, "seen once");
        tokio::time::advance(WINDOW).await;
        d.checkout(Instant::now(), 1, r);
        assert_eq!(d.target(Instant::now(), r), 1, "exactly one window apart");
        tokio::time::advance(WINDOW + Duration::from_millis(1)).await;
        d.checkout(Instant::now(), 1, r);
        assert_eq!(
            d.target(Instant::now(), r),
            0,
            "the previous one is too old"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_target_follows_the_peak_and_the_cap() {
        let r = rule(2, 4);
        let mut d = Demand::new(Instant::now());
        for open in 1..=3 {
            d.checkout(Instant::now(), open, r);
        }
        assert_eq!(d.target(Instant::now(), r), 3);
        d.checkout(Instant::now(), 9, r);
        assert_eq!(
            d.target(Instant::now(), r),
            4,
            "capped by max_idle_per_dest"
        );
        // The next window remembers the burst, the one after forgets it.
        tokio::time::advance(WINDOW + Duration::from_millis(1)).await;
        d.checkout(Instant::now(), 1, r);
        assert_eq!(
            d.target(Instant::now(), r),
            0,
            "the last checkout is too old"
        );
        d.checkout(Instant::now(), 1, r);
        assert_eq!(d.target(Instant::now(), r), 4, "the previous window's peak");
        tokio::time::advance(WINDOW).await;
        d.checkout(Instant::now(), 1, r);
        assert_eq!(d.target(Instant::now(), r), 1, "the burst has decayed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_higher_threshold_needs_more_checkouts() {
        let r = rule(3, 4);
        let mut d = Demand::new(Instant::now());
        d.checkout(Instant::now(), 1, r);
        d.checkout(Instant::now(), 1, r);
        assert_eq!(d.target(Instant::now(), r), 0);
        d.checkout(Instant::now(), 1, r);
        assert_eq!(d.target(Instant::now(), r), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_double_per_strike_and_clear_on_a_hit() {
        let mut p = Pause::default();
        let now = Instant::now();
        assert!(!p.active(now));
        assert_eq!(p.strike(now, WINDOW, PauseReason::ClosesIdle), Some(WINDOW));
        assert_eq!(p.reason(now), Some(PauseReason::ClosesIdle));
        // A second verdict during the pause is the same strike.
        assert_eq!(p.strike(now, WINDOW, PauseReason::SpeaksFirst), None);
        assert_eq!(p.reason(now), Some(PauseReason::ClosesIdle));
        let later = now + WINDOW;
        assert!(!p.active(later));
        assert_eq!(p.reason(later), None);
        let second = p.strike(later, WINDOW, PauseReason::ClosesIdle);
        assert_eq!(second, Some(WINDOW * 2));
        let mut t = later + WINDOW * 2;
        for _ in 0..10 {
            let length = p.strike(t, WINDOW, PauseReason::SpeaksFirst).unwrap();
            assert!(length <= WINDOW * MAX_PAUSE_FACTOR);
            t += length;
        }
        assert_eq!(p.strike(t, WINDOW, PauseReason::Broken), Some(WINDOW * 16));
        p.clear_strikes();
        let t = t + WINDOW * 16;
        assert_eq!(p.strike(t, WINDOW, PauseReason::Broken), Some(WINDOW));
    }
}
