//! Putting a [`Plan`] in force: the services' snapshots and limits
//! (`Services::apply_config`), the log level and the pool.

use super::plan::Plan;
use crate::logging::LogLevel;
use crate::server::fd_budget::FdBudget;
use crate::server::Services;

/// Puts `plan.next` in force. Returns notes for the report (a level that
/// RUST_LOG overrides, say); on an error nothing has changed.
pub(super) fn apply(
    services: &Services,
    log_level: Option<&LogLevel>,
    plan: &Plan,
) -> Result<Vec<String>, String> {
    let next = plan.next.clone();
    services.apply_config(next).map_err(|err| err.to_string())?;
    let changed = |key: &str| plan.changed.iter().any(|c| c == key);
    let mut notes = Vec::new();
    if changed("logging.level") {
        let level = &plan.next.logging.level;
        match log_level.map(|handle| handle.set(level)) {
            Some(Ok(true)) => {}
            Some(Ok(false)) => {
                notes.push("logging.level: RUST_LOG is set and decides the level".into())
            }
            Some(Err(err)) => notes.push(format!("logging.level: not applied: {err}")),
            None => notes.push(
                "logging.level: this process's log output was not set up by the server".into(),
            ),
        }
    }
    if changed("server.max_connections") {
        let budget = FdBudget::for_config(&plan.next);
        if let Some(shortfall) = open_files_limit().and_then(|limit| budget.check(limit)) {
            notes.push(format!("server.max_connections: {shortfall}"));
        }
    }
    if plan.changed.iter().any(|c| c.starts_with("server.pool.")) {
        // New limits apply to checkouts from now on; idle connections above
        // lowered limits are closed by a cleanup pass the pool starts.
        services.pool.reconfigure(plan.next.server.pool.clone());
    }
    Ok(notes)
}

/// The open-files soft limit in force (`None` when unknown or unlimited):
/// a larger `server.max_connections` may need more than it allows.
fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed in.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    (read && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}
