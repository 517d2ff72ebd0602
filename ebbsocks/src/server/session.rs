//! A granted session's place in the counters and the access log.

use std::sync::Arc;

use super::conn::SessionLog;
use crate::stats::Stats;

/// Why a session ended when the future holding it was dropped before it
/// finished: only a forced shutdown (or the runtime ending) does that.
pub(super) const DROPPED: &str = "shutdown";

/// A session counted as started. It is counted as finished exactly once,
/// with an outcome and its access-log line: by [`Session::finish`], or by
/// its `Drop` when the future holding it is dropped first (a forced shutdown
/// between the success reply and the relay), so `sessions_active` cannot
/// drift whatever await point a shutdown lands on.
pub(super) struct Session {
    /// `None` once finished.
    stats: Option<Arc<Stats>>,
    /// Boxed: only present with the access log on.
    log: Option<Box<SessionLog>>,
    /// Bytes already added to the server-wide counters: (up, down).
    counted: (u64, u64),
}

impl Session {
    /// Counts the session as started; call it just before the success reply.
    pub(super) fn start(stats: &Arc<Stats>, log: Option<Box<SessionLog>>) -> Self {
        stats.session_started();
        Self {
            stats: Some(stats.clone()),
            log,
            counted: (0, 0),
        }
    }

    /// The session has moved `up` and `down` bytes in all so far: adds what
    /// was not counted yet to the server-wide byte counters.
    pub(super) fn relayed(&mut self, up: u64, down: u64) {
        let Some(stats) = &self.stats else {
            return;
        };
        let (counted_up, counted_down) = self.counted;
        if (up, down) != self.counted {
            stats.relayed(
                up.saturating_sub(counted_up),
                down.saturating_sub(counted_down),
            );
            self.counted = (up.max(counted_up), down.max(counted_down));
        }
    }

    /// Counts the session as finished, having moved `up` and `down` bytes.
    pub(super) fn finish(mut self, up: u64, down: u64, outcome: &'static str) {
        self.record(up, down, outcome);
    }

    fn record(&mut self, up: u64, down: u64, outcome: &'static str) {
        self.relayed(up, down);
        let Some(stats) = self.stats.take() else {
            return;
        };
        stats.session_finished(outcome);
        if let Some(log) = self.log.take() {
            log.write(up, down, outcome);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // What was counted as it moved is what the session moved.
        let (up, down) = self.counted;
        self.record(up, down, DROPPED);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_dropped_unfinished_is_counted_as_finished() {
        let stats = Arc::new(Stats::new());
        drop(Session::start(&stats, None));
        let snap = stats.snapshot();
        assert_eq!((snap.sessions_total, snap.sessions_active), (1, 0));
        assert_eq!(snap.session_outcomes.get(DROPPED), Some(&1));
    }

    #[test]
    fn a_finished_session_is_counted_once() {
        let stats = Arc::new(Stats::new());
        Session::start(&stats, None).finish(3, 4, "closed");
        let snap = stats.snapshot();
        assert_eq!((snap.sessions_total, snap.sessions_active), (1, 0));
        assert_eq!(snap.session_outcomes.len(), 1, "{snap:?}");
        assert_eq!(snap.session_outcomes.get("closed"), Some(&1));
        assert_eq!(snap.bytes_client_to_upstream, 3);
        assert_eq!(snap.bytes_upstream_to_client, 4);
    }

    #[test]
    fn bytes_are_counted_while_the_session_runs_and_once_in_all() {
        let stats = Arc::new(Stats::new());
        let mut session = Session::start(&stats, None);
        session.relayed(100, 0);
        session.relayed(100, 0); // nothing new: nothing added
        session.relayed(150, 40);
        let snap = stats.snapshot();
        assert_eq!(snap.sessions_active, 1, "still running");
        assert_eq!(
            (snap.bytes_client_to_upstream, snap.bytes_upstream_to_client),
            (150, 40)
        );
        session.finish(200, 40, "closed");
        let snap = stats.snapshot();
        assert_eq!(
            (snap.bytes_client_to_upstream, snap.bytes_upstream_to_client),
            (200, 40),
            "the end adds only the rest"
        );
    }

    #[test]
    fn a_dropped_session_keeps_the_bytes_it_moved() {
        let stats = Arc::new(Stats::new());
        let mut session = Session::start(&stats, None);
        session.relayed(7, 9);
        drop(session);
        let snap = stats.snapshot();
        assert_eq!(snap.session_outcomes.get(DROPPED), Some(&1));
        assert_eq!(
            (snap.bytes_client_to_upstream, snap.bytes_upstream_to_client),
            (7, 9)
        );
    }
}
