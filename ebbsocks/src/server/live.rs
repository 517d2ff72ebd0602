//! Putting a new configuration in force without a restart. Everything a
//! reload may change is either read from the configuration snapshot when it
//! is needed (timeouts, the access log switch, UDP and BIND settings), or
//! is its own snapshot or gauge changed here in one step: the compiled
//! access rules, the users, the session limits and the connection limit.
//! Sessions already running keep what they started with.
//!
//! What may change at all (listen addresses may not, for one) is decided
//! before this runs, by `crate::reload`.

use std::sync::Arc;

use super::Services;
use crate::access::AccessError;
use crate::config::Config;
use crate::upstream::connect::ConnectPolicy;

impl Services {
    /// Puts `next` (validated, and holding the running values of every key
    /// that needs a restart) in force. On an error nothing has changed.
    pub fn apply_config(&self, next: Config) -> Result<(), AccessError> {
        let old = self.config();
        {
            // Held while the rules are built and both snapshots stored, so a
            // listening address recorded meanwhile is in the rules either way.
            let own = crate::stats::lock(&self.own_addresses);
            let rules = next.compile_access(&own)?;
            self.config.store(Arc::new(next));
            self.access.store(Arc::new(rules));
        }
        self.connect_policy
            .store(Arc::new(ConnectPolicy::from_config(&self.config())));
        let next = self.config();
        // Rebuilding the users draws fresh decoys; only do it for a change.
        if same(&old.auth.method, &next.auth.method) && same(&old.auth.users, &next.auth.users) {
            tracing::debug!("users unchanged");
        } else {
            self.auth.replace_users(&next.auth);
        }
        self.limits.set(
            next.access.max_sessions_per_client,
            next.access.max_sessions_per_user,
        );
        self.connection_limit.resize(next.server.max_connections);
        Ok(())
    }
}

/// Equal as configuration text (the config types need not be `PartialEq`).
fn same<T: serde::Serialize>(a: &T, b: &T) -> bool {
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
