//! Username/password verification against argon2 PHC hashes from the config.
//!
//! Argon2 is deliberately slow (tens of milliseconds of CPU), so verification
//! runs on the blocking pool behind a semaphore sized to the CPU count: a
//! burst of logins can neither stall the runtime's workers nor fan out into
//! hundreds of threads.

use std::collections::HashMap;
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

use crate::config::{AuthConfig, AuthMethod};

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

/// The configured users, ready for verification.
#[derive(Debug)]
pub struct Authenticator {
    method: AuthMethod,
    /// username -> PHC string (validated at config load).
    users: HashMap<String, String>,
    /// Verified against when the user is unknown, so an unknown user costs
    /// the same time as a wrong password and names cannot be probed.
    decoy_hash: String,
    permits: Arc<Semaphore>,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Self {
        let users = config
            .users
            .iter()
            .map(|u| (u.username.clone(), u.password_hash.expose().to_owned()))
            .collect();
        // A fixed, valid hash of a random-looking string nobody is told.
        let decoy_hash = "$argon2id$v=19$m=19456,t=2,p=1$ZWJic29ja3NkZWNveQ$\
                          0L9pJLX4BQe3nLQd9QCEG1cBTF1UGn6tM0Cq5mGxWmM"
            .to_owned();
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            method: config.method,
            users,
            decoy_hash,
            permits: Arc::new(Semaphore::new(cpus)),
        }
    }

    pub fn requires_password(&self) -> bool {
        self.method == AuthMethod::Userpass
    }

    /// True when `username` exists and `password` matches its hash.
    pub async fn verify(&self, username: &[u8], password: &[u8]) -> bool {
        let known = std::str::from_utf8(username)
            .ok()
            .and_then(|name| self.users.get(name));
        let phc = known.unwrap_or(&self.decoy_hash).clone();
        let password = password.to_vec();
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let matched = tokio::task::spawn_blocking(move || verify_blocking(&phc, &password))
            .await
            .unwrap_or(false);
        matched && known.is_some()
    }
}

/// argon2's verifier compares digests in constant time.
fn verify_blocking(phc: &str, password: &[u8]) -> bool {
    PasswordHash::new(phc)
        .map(|hash| Argon2::default().verify_password(password, &hash).is_ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, UserConfig};

    fn authenticator(password: &str) -> Authenticator {
        let hash = hash_password(password).expect("hashing works");
        Authenticator::new(&AuthConfig {
            method: AuthMethod::Userpass,
            users: vec![UserConfig {
                username: "alice".into(),
                password_hash: Secret::new(hash),
            }],
        })
    }

    #[tokio::test]
    async fn right_password_passes_and_wrong_ones_fail() {
        let auth = authenticator("correct horse");
        assert!(auth.verify(b"alice", b"correct horse").await);
        assert!(!auth.verify(b"alice", b"wrong").await);
        assert!(!auth.verify(b"bob", b"correct horse").await);
        assert!(!auth.verify(b"\xff\xfe", b"correct horse").await);
    }

    #[test]
    fn hashes_are_phc_strings_and_garbage_is_rejected() {
        let hash = hash_password("pw").expect("hashing works");
        assert!(hash.starts_with("$argon2id$"));
        assert!(parse_hash(&hash).is_ok());
        assert!(parse_hash("plaintext").is_err());
        assert!(parse_hash("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
    }

    #[test]
    fn the_decoy_hash_is_well_formed() {
        let auth = authenticator("x");
        assert!(parse_hash(&auth.decoy_hash).is_ok());
    }
}
