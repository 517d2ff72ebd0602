//! What happens when the access rules refuse something: a counter per rule,
//! one access-log line naming the rule, and a rate-limited telemetry event.
//! CONNECT, BIND's inbound peer and UDP datagrams all come through here.

use std::net::SocketAddr;

use super::limits::LimitHit;
use super::Services;
use crate::access::{Denial, Subject};
use crate::stats::Severity;

impl Services {
    /// Records a refusal of `destination` (a name or an address, as the
    /// client asked for it or as the peer came in) for `who`, connected
    /// from `peer`. The caller sends the reply; nothing has touched the
    /// network for this destination.
    pub(super) fn note_denial(
        &self,
        peer: SocketAddr,
        who: &Subject<'_>,
        destination: &dyn std::fmt::Display,
        denial: &Denial,
    ) {
        self.stats.access_denied(&denial.rule);
        if self.config().logging.access_log {
            tracing::info!(
                target: "ebbsocks::access",
                client = %peer,
                user = who.user.unwrap_or("-"),
                command = who.command.name(),
                destination = %destination,
                rule = %denial.rule,
                outcome = "denied",
                "refused by access rules"
            );
        }
        if let Some(suppressed) = self.denial_events.admit() {
            self.telemetry.record(
                Severity::Warning,
                "access",
                "request refused by access rules",
                serde_json::json!({
                    "client": peer.ip().to_string(),
                    "user": who.user,
                    "command": who.command.name(),
                    "destination": destination.to_string(),
                    "rule": &*denial.rule,
                    "suppressed_before": suppressed,
                }),
            );
        }
    }

    /// Records a request refused by a session limit (the caller replies).
    pub(super) fn note_session_limit(&self, peer: SocketAddr, user: Option<&str>, hit: LimitHit) {
        self.stats.session_limit_refused(hit.reason());
        if let Some(suppressed) = self.limit_events.admit() {
            tracing::warn!(client = %peer, user = user.unwrap_or("-"), limit = hit.reason(), suppressed_before = suppressed, "session limit reached; request refused");
            self.telemetry.record(
                Severity::Warning,
                "limits",
                "session limit reached; request refused",
                serde_json::json!({
                    "client": peer.ip().to_string(),
                    "user": user,
                    "limit": hit.reason(),
                    "suppressed_before": suppressed,
                }),
            );
        }
    }
}
