//! Putting a [`Plan`] in force: the services' snapshots and limits
//! (`Services::apply_config`), the log level and the pool.

use super::plan::Plan;
use crate::config::PoolConfig;
use crate::logging::LogLevel;
use crate::server::fd_budget::FdBudget;
use crate::server::Services;

/// Whether a reload changes `[server.pool]` in place. The pool is built with
/// its settings at startup; once it can take new ones (a `reconfigure`
/// call), [`apply_pool`] makes that call and this turns true. While false,
/// pool keys are reported as needing a restart and `apply_pool` is never
/// reached.
pub(super) const POOL_IN_PLACE: bool = false;

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
    if POOL_IN_PLACE && plan.changed.iter().any(|c| c.starts_with("server.pool.")) {
        apply_pool(services, &plan.next.server.pool);
    }
    Ok(notes)
}

/// The one place a reload applies `[server.pool]`: `services.pool` takes
/// `next` for the connections it opens and keeps from now on. Wiring it is
/// `services.pool.reconfigure(next.clone())` here and [`POOL_IN_PLACE`]
/// set to true.
fn apply_pool(services: &Services, next: &PoolConfig) {
    tracing::warn!(
        running = ?services.pool.config(),
        wanted = ?next,
        "the pool cannot take new settings in place; they apply at the next start"
    );
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
