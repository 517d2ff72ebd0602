//! Hot reload: SIGHUP, or `POST /api/reload`, re-reads the configuration
//! file and puts what may change without a restart in force; a change that
//! needs a restart is reported and otherwise ignored. A file that does not
//! load keeps the running configuration. Every reload is logged, recorded
//! in the telemetry feed and counted by outcome (`reloads` in
//! `/api/stats`).
//!
//! `plan.rs` decides what changes, `apply.rs` puts it in force; the
//! snapshots themselves live in `server::Services`.

mod apply;
pub mod plan;

use std::path::PathBuf;
use std::sync::{Arc, Weak};

use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Secret};
use crate::logging::LogLevel;
use crate::server::Services;
use crate::stats::Severity;

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Sighup,
    Api,
}

impl Trigger {
    pub const fn label(self) -> &'static str {
        match self {
            Trigger::Sighup => "sighup",
            Trigger::Api => "api",
        }
    }
}

/// How a reload ended; also its counter label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The file was valid: what it changes in place is in force.
    Applied,
    /// The file was valid and says what runs already.
    Unchanged,
    /// The file could not be used; the running configuration stays.
    Rejected,
}

impl Outcome {
    pub const fn label(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Unchanged => "unchanged",
            Outcome::Rejected => "rejected",
        }
    }
}

/// A key whose new value waits for a restart.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RestartNeeded {
    pub key: String,
    pub reason: &'static str,
}

/// What one reload did, as logged and as answered by `POST /api/reload`.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    pub outcome: Outcome,
    pub trigger: Trigger,
    /// The file read (absent when the server runs on the embedded default).
    pub file: Option<PathBuf>,
    /// Keys whose new values are in force.
    pub changed: Vec<String>,
    pub restart_needed: Vec<RestartNeeded>,
    /// Things worth knowing that are not errors.
    pub notes: Vec<String>,
    /// Why the file was rejected: file, key and problem.
    pub error: Option<String>,
}

/// Re-reads the configuration file into a running server.
#[derive(Debug)]
pub struct Reloader {
    path: Option<PathBuf>,
    services: Arc<Services>,
    log_level: Option<LogLevel>,
    /// One reload at a time: each compares with what the last one left.
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// `path` is the file the server started from (`None`: the embedded
    /// default, which a reload cannot re-read); `log_level` changes the
    /// level (`None` when the server did not install the log output).
    pub fn new(
        path: Option<PathBuf>,
        services: Arc<Services>,
        log_level: Option<LogLevel>,
    ) -> Arc<Self> {
        Arc::new(Self {
            path,
            services,
            log_level,
            one_at_a_time: tokio::sync::Mutex::new(()),
        })
    }

    /// The API token in force now.
    pub fn api_token(&self) -> Option<Secret> {
        self.services.config().api.token.clone()
    }

    /// Reads the file and puts it in force; logs, records and counts the
    /// outcome. Changes are made in one synchronous step after the last
    /// await, so a caller that gives up (an API client that disconnects)
    /// either changed everything or nothing.
    pub async fn reload(&self, trigger: Trigger) -> ReloadReport {
        let _one = self.one_at_a_time.lock().await;
        let mut report = ReloadReport {
            outcome: Outcome::Rejected,
            trigger,
            file: self.path.clone(),
            changed: Vec::new(),
            restart_needed: Vec::new(),
            notes: Vec::new(),
            error: None,
        };
        if let Err(error) = self.try_reload(&mut report).await {
            report.outcome = Outcome::Rejected;
            report.error = Some(error);
            // Nothing changed, whatever the comparison had found.
            report.changed.clear();
            report.restart_needed.clear();
            report.notes.clear();
        }
        self.record(&report);
        report
    }

    async fn try_reload(&self, report: &mut ReloadReport) -> Result<(), String> {
        let Some(path) = self.path.clone() else {
            return Err("the server runs on the embedded default configuration \
                        (started without --config): there is no file to re-read"
                .into());
        };
        // Reading a file blocks; keep it off the runtime's workers.
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path))
            .await
            .map_err(|err| format!("reading the configuration failed: {err}"))?
            .map_err(|err| err.to_string())?;
        let origin = self.path.as_deref().unwrap_or(std::path::Path::new(""));
        let plan = plan::plan(&self.services.config(), &loaded, origin)?;
        report.changed.clone_from(&plan.changed);
        report.restart_needed = plan
            .restart_needed
            .iter()
            .map(|key| RestartNeeded {
                key: key.clone(),
                reason: plan::restart_reason(key).unwrap_or("needs a restart"),
            })
            .collect();
        if plan.is_empty() {
            report.outcome = Outcome::Unchanged;
            return Ok(());
        }
        report.notes = apply::apply(&self.services, self.log_level.as_ref(), &plan)?;
        report.outcome = Outcome::Applied;
        Ok(())
    }

    fn record(&self, report: &ReloadReport) {
        self.services.stats.reload_finished(report.outcome.label());
        let restart: Vec<&str> = report
            .restart_needed
            .iter()
            .map(|r| r.key.as_str())
            .collect();
        let file = report.file.as_ref().map(|f| f.display().to_string());
        let trigger = report.trigger.label();
        let (severity, message) = match report.outcome {
            Outcome::Rejected => {
                let error = report.error.as_deref().unwrap_or("");
                tracing::error!(trigger, %error, "configuration reload rejected; the running configuration stays");
                (Severity::Error, "configuration reload rejected")
            }
            Outcome::Unchanged => {
                tracing::info!(trigger, "configuration reloaded: nothing changed");
                (Severity::Info, "configuration unchanged")
            }
            Outcome::Applied => {
                tracing::info!(trigger, changed = ?report.changed, "configuration reloaded");
                (Severity::Info, "configuration reloaded")
            }
        };
        if !restart.is_empty() {
            tracing::warn!(keys = ?restart, "configuration changes that need a restart were not applied");
        }
        for note in &report.notes {
            tracing::warn!(%note, "configuration reload");
        }
        let severity = if severity == Severity::Info && !restart.is_empty() {
            Severity::Warning
        } else {
            severity
        };
        self.services.telemetry.record(
            severity,
            "config",
            message,
            json!({
                "trigger": trigger,
                "file": file,
                "changed": report.changed,
                "restart_needed": restart,
                "notes": report.notes,
                "error": report.error,
            }),
        );
    }
}

/// Reloads on every SIGHUP until `stop` is cancelled or the reloader is
/// gone. The handler is installed before this returns, so a SIGHUP sent
/// once the server says it listens never takes the default action (exit).
pub fn watch_sighup(reloader: &Arc<Reloader>, stop: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    let reloader: Weak<Reloader> = Arc::downgrade(reloader);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                received = hangups.recv() => {
                    if received.is_none() {
                        return;
                    }
                }
            }
            let Some(reloader) = reloader.upgrade() else {
                return;
            };
            tracing::info!("SIGHUP received: reloading the configuration");
            reloader.reload(Trigger::Sighup).await;
        }
    });
    Ok(())
}
