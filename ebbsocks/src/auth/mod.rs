//! Username/password verification against argon2 PHC hashes from the config.
//!
//! Argon2 is deliberately slow (tens of milliseconds of CPU and ~19 MiB with
//! the default parameters), so verification runs on the blocking pool
//! behind a semaphore sized to the CPU count. The permit travels into the
//! blocking closure: when the handshake deadline drops a login, its hash
//! still runs to the end and keeps its permit, so abandoned logins cannot
//! pile up blocking threads and argon2 memory beyond the CPU count.
//!
//! An unknown user is verified against a decoy with the parameters of a
//! real user (`decoy.rs`), so it costs what a wrong password costs; failed
//! logins are budgeted per client address (`throttle.rs`).

mod decoy;
mod throttle;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

use crate::config::{AuthConfig, AuthMethod};
use crate::stats::limiter::EventLimiter;
use decoy::Decoys;
use throttle::FailureThrottle;

/// Checks that `phc` is a well-formed argon2 PHC string.
pub fn parse_hash(phc: &str) -> Result<(), String> {
    let hash = PasswordHash::new(phc).map_err(|e| e.to_string())?;
    match hash.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => Ok(()),
        other => Err(format!("algorithm {other:?} is not argon2")),
    }
}

/// Hashes `password` with argon2id and a random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| e.to_string())
}

/// The outcome of a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Unknown user or wrong password (the two are not told apart).
    Rejected,
    /// The client used up its budget of failed logins; nothing was checked.
    Throttled,
}

/// The configured users, ready for verification.
#[derive(Debug)]
pub struct Authenticator {
    /// Swapped whole by a reload; a login checks against the snapshot it
    /// started with.
    users: ArcSwap<Users>,
    throttle: FailureThrottle,
    /// Limits the log lines about throttled clients.
    throttle_logs: EventLimiter,
    permits: Arc<Semaphore>,
    hashing: Arc<HashGauge>,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_permits(config, cpus)
    }

    /// Like [`Authenticator::new`], with at most `permits` hashes at once.
    pub fn with_permits(config: &AuthConfig, permits: usize) -> Self {
        Self {
            users: ArcSwap::from_pointee(Users::new(config)),
            throttle: FailureThrottle::new(
                config.max_failures_per_client,
                config.failure_window(),
                config.max_tracked_clients,
            ),
            throttle_logs: EventLimiter::new(5, Duration::from_secs(10)),
            permits: Arc::new(Semaphore::new(permits.max(1))),
            hashing: Arc::default(),
        }
    }

    pub fn requires_password(&self) -> bool {
        self.users.load().method == AuthMethod::Userpass
    }

    /// Takes the method and users of `config` for logins that start from
    /// now on (a reload). The failed-login budgets are kept as they are.
    pub fn replace_users(&self, config: &AuthConfig) {
        self.users.store(Arc::new(Users::new(config)));
    }

    /// Checks `username`/`password` for a client at `client`.
    pub async fn verify(&self, client: IpAddr, username: &[u8], password: &[u8]) -> Verdict {
        let attempt = match self.throttle.begin(client) {
            Ok(attempt) => attempt,
            Err(throttled) => {
                self.log_throttled(client, throttled.first);
                return Verdict::Throttled;
            }
        };
        let users = self.users.load_full();
        let known = std::str::from_utf8(username)
            .ok()
            .and_then(|name| users.by_name.get(name));
        let phc = match known {
            Some(phc) => phc.clone(),
            None => users.decoys.for_name(username).to_owned(),
        };
        let matched = self.check(phc, password.to_vec()).await;
        let accepted = matched && known.is_some();
        attempt.finish(accepted);
        if accepted {
            Verdict::Accepted
        } else {
            Verdict::Rejected
        }
    }

    /// Runs argon2 on the blocking pool, at most `permits` at a time.
    async fn check(&self, phc: String, password: Vec<u8>) -> bool {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return false;
        };
        let gauge = self.hashing.clone();
        let hashing = tokio::task::spawn_blocking(move || {
            // Held by the work, not by the caller's future (see module docs).
            let _permit = permit;
            let _running = gauge.enter();
            verify_blocking(&phc, &password)
        });
        hashing.await.unwrap_or(false)
    }

    fn log_throttled(&self, client: IpAddr, first: bool) {
        if !first {
            tracing::debug!(%client, "login refused: failed-login budget used up");
            return;
        }
        if let Some(suppressed) = self.throttle_logs.admit() {
            tracing::warn!(
                %client,
                suppressed_before = suppressed,
                "too many failed logins; refusing this client's logins until its window ends"
            );
        }
    }
}

/// The method and users of one configuration.
#[derive(Debug)]
struct Users {
    method: AuthMethod,
    /// username -> PHC string (validated at config load).
    by_name: HashMap<String, String>,
    decoys: Decoys,
}

impl Users {
    fn new(config: &AuthConfig) -> Self {
        Self {
            method: config.method,
            by_name: config
                .users
                .iter()
                .map(|u| (u.username.clone(), u.password_hash.expose().to_owned()))
                .collect(),
            decoys: Decoys::new(config.users.iter().map(|u| u.password_hash.expose())),
        }
    }
}

/// How many hashes run now and the most that ever ran at once.
#[derive(Debug, Default)]
struct HashGauge {
    running: AtomicUsize,
    peak: AtomicUsize,
}

impl HashGauge {
    fn enter(self: &Arc<Self>) -> HashRunning {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        HashRunning(self.clone())
    }
}

struct HashRunning(Arc<HashGauge>);

impl Drop for HashRunning {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// argon2's verifier compares digests in constant time.
fn verify_blocking(phc: &str, password: &[u8]) -> bool {
    PasswordHash::new(phc)
        .map(|hash| Argon2::default().verify_password(password, &hash).is_ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;
