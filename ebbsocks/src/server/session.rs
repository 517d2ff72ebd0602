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
}

impl Session {
    /// Counts the session as started; call it just before the success reply.
    pub(super) fn start(stats: &Arc<Stats>, log: Option<Box<SessionLog>>) -> Self {
        stats.session_started();
        Self {
            stats: Some(stats.clone()),
            log,
        }
    }

    /// The session has just moved `up` and `down` more bytes: they go into
    /// the server-wide counters now, so those grow while sessions run. The
    /// totals given to [`Session::finish`] are for the access log only.
    pub(super) fn relayed(&self, up: u64, down: u64) {
        if let Some(stats) = &self.stats {
            stats.relayed(up, down);
        }
    }

    /// Counts the session as finished, having moved `up` and `down` bytes.
    pub(super) fn finish(mut self, up: u64, down: u64, outcome: &'static str) {
        self.record(up, down, outcome);
    }

    fn record(&mut self, up: u64, down: u64, outcome: &'static str) {
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
        self.record(0, 0, DROPPED);
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
        let session = Session::start(&stats, None);
        session.relayed(3, 4);
        session.finish(3, 4, "closed");
        let snap = stats.snapshot();
        assert_eq!((snap.sessions_total, snap.sessions_active), (1, 0));
        assert_eq!(snap.session_outcomes.len(), 1, "{snap:?}");
        assert_eq!(snap.session_outcomes.get("closed"), Some(&1));
        assert_eq!(snap.bytes_client_to_upstream, 3);
        assert_eq!(snap.bytes_upstream_to_client, 4);
    }

    #[test]
    fn bytes_count_while_the_session_runs_and_not_again_at_the_end() {
        let stats = Arc::new(Stats::new());
        let session = Session::start(&stats, None);
        session.relayed(100, 0);
        session.relayed(50, 40);
        let snap = stats.snapshot();
        assert_eq!(snap.sessions_active, 1, "still running");
        assert_eq!(
            (snap.bytes_client_to_upstream, snap.bytes_upstream_to_client),
            (150, 40)
        );
        session.finish(150, 40, "closed");
        let snap = stats.snapshot();
        assert_eq!(
            (snap.bytes_client_to_upstream, snap.bytes_upstream_to_client),
            (150, 40),
            "the totals at the end are for the access log"
        );
    }

    #[test]
    fn a_dropped_session_keeps_the_bytes_it_moved() {
        let stats = Arc::new(Stats::new());
        let session = Session::start(&stats, None);
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
