//! What a reload changes: the keys whose values differ between the running
//! configuration and the file, split into those that change in place and
//! those that need a restart, and the configuration to put in force (the
//! file's, with the running value kept for every key that needs a restart).
//!
//! Keys are compared as configuration text (serialized values), so a key
//! added to the model is covered without a line here: it changes in place
//! unless it is listed in [`RESTART_NEEDED`].

use std::path::Path;

use serde_json::{Map, Value};

use crate::config::Config;

/// Keys (and whole tables) that only take effect at startup, with why.
/// A listed table covers every key below it.
pub const RESTART_NEEDED: &[(&str, &str)] = &[
    ("server.listen", "the SOCKS listener is bound at startup"),
    ("server.reuse_port", "a socket option of the bound listener"),
    (
        "server.proxy_protocol",
        "read by the listener set up at startup",
    ),
    (
        "auth.max_failures_per_client",
        "the failed-login table is built at startup",
    ),
    (
        "auth.failure_window_secs",
        "the failed-login table is built at startup",
    ),
    (
        "auth.max_tracked_clients",
        "the failed-login table is built at startup",
    ),
    (
        "upstream.dns",
        "the resolver and its cache are built at startup",
    ),
    (
        "upstream.bind_address",
        "pooled connections are opened with the address set at startup",
    ),
    (
        "server.keepalive",
        "pooled connections are opened with the options set at startup",
    ),
    (
        "logging.access_log_flush_ms",
        "the log output is set up at startup",
    ),
    ("logging.format", "the log output is set up at startup"),
    ("api.enabled", "the API listener is bound at startup"),
    ("api.listen", "the API listener is bound at startup"),
    ("api.max_connections", "the API server is built at startup"),
    (
        "api.header_read_timeout_secs",
        "the API server is built at startup",
    ),
    (
        "memory",
        "allocator settings and purge thresholds are set at startup",
    ),
];

/// One reload's plan.
#[derive(Debug)]
pub struct Plan {
    /// What to put in force.
    pub next: Config,
    /// Keys whose new values take effect now.
    pub changed: Vec<String>,
    /// Keys whose new values wait for a restart.
    pub restart_needed: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.restart_needed.is_empty()
    }
}

/// Compares `running` with `loaded` (a file that passed validation). The
/// configuration to put in force is validated once more: keeping a running
/// value can make a combination invalid (a new `auth.method = "none"` with
/// the running non-loopback `server.listen`), and then nothing changes.
pub fn plan(running: &Config, loaded: &Config, origin: &Path) -> Result<Plan, String> {
    let old = serde_json::to_value(running).map_err(|e| e.to_string())?;
    let mut next = serde_json::to_value(loaded).map_err(|e| e.to_string())?;
    let mut differing = Vec::new();
    diff(&old, &next, "", &mut differing);
    let (restart, changed): (Vec<String>, Vec<String>) =
        differing.into_iter().partition(|key| needs_restart(key));
    for key in &restart {
        keep_running_value(&mut next, &old, key);
    }
    let next: Config = serde_json::from_value(next).map_err(|e| e.to_string())?;
    next.validate(origin).map_err(|err| {
        format!(
            "{err} (with the running value of {}, which needs a restart to change)",
            restart.join(", ")
        )
    })?;
    Ok(Plan {
        next,
        changed,
        restart_needed: restart,
    })
}

/// Whether `key` is or lies below one of [`RESTART_NEEDED`]'s entries.
pub fn needs_restart(key: &str) -> bool {
    restart_reason(key).is_some()
}

/// Why `key` needs a restart, if it does.
pub fn restart_reason(key: &str) -> Option<&'static str> {
    RESTART_NEEDED
        .iter()
        .find(|(listed, _)| is_within(key, listed))
        .map(|(_, why)| *why)
}

fn is_within(key: &str, table: &str) -> bool {
    key == table
        || key
            .strip_prefix(table)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Dotted keys whose values differ; tables are compared key by key, any
/// other value (arrays included: the user list, the rule list) as a whole.
fn diff(old: &Value, new: &Value, prefix: &str, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                let absent = Value::Null;
                let old = old.get(key).unwrap_or(&absent);
                let new = new.get(key).unwrap_or(&absent);
                diff(old, new, &path, out);
            }
        }
        (old, new) if old != new => out.push(prefix.to_owned()),
        _ => {}
    }
}

/// Sets `key` in `next` to its value in `old` (removing it where `old` has
/// none, as an unset optional key).
fn keep_running_value(next: &mut Value, old: &Value, key: &str) {
    let mut old = Some(old);
    let mut next = next;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        old = old.and_then(|value| value.get(part));
        let Value::Object(table) = next else { return };
        if parts.peek().is_none() {
            match old {
                Some(value) => {
                    table.insert(part.to_owned(), value.clone());
                }
                None => {
                    table.remove(part);
                }
            }
            return;
        }
        if old.is_none() && !table.contains_key(part) {
            // Nothing on either side: nothing to keep.
            return;
        }
        next = table
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
