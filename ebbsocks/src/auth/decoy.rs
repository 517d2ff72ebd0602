//! Decoy hashes: what an unknown username is verified against, so that it
//! costs exactly what a wrong password for a real user costs.
//!
//! Argon2's cost is set by the parameters in each PHC string (memory,
//! passes, lanes, and a little by salt and output length). A fixed decoy
//! would run one cost while a user whose hash was made with other
//! parameters runs another, and the difference names the real users. So
//! each configured user gets a decoy with exactly that user's parameters
//! (fresh random salt and digest of the same lengths, which no password
//! matches in practice), and an unknown name is verified against the decoy of the
//! user it maps to. The mapping is a hash of the name keyed with the
//! configured hashes: stable for a name across attempts and restarts (so
//! repeating a probe reveals nothing new), and unpredictable without the
//! secret hashes. With one parameter set for all users, as
//! `ebbsocks hash-password` produces, every path costs the same.

use std::hash::{DefaultHasher, Hash, Hasher};

use argon2::password_hash::{Output, PasswordHash, SaltString};
use rand_core::RngCore;

/// A valid argon2id hash with the crate's default parameters, for when no
/// user is configured (verification then never runs in practice).
const FALLBACK: &str = "$argon2id$v=19$m=19456,t=2,p=1$ZWJic29ja3NkZWNveQ$\
                        0L9pJLX4BQe3nLQd9QCEG1cBTF1UGn6tM0Cq5mGxWmM";

#[derive(Debug)]
pub(super) struct Decoys {
    /// One per configured user, in config order, with that user's parameters.
    hashes: Vec<String>,
    /// Keys the choice of decoy for a name.
    key: u64,
}

impl Decoys {
    /// `phcs` are the configured users' hashes (validated at config load).
    pub(super) fn new<'a>(phcs: impl IntoIterator<Item = &'a str>) -> Self {
        let mut key = DefaultHasher::new();
        let hashes = phcs
            .into_iter()
            .map(|phc| {
                phc.hash(&mut key);
                decoy_like(phc).unwrap_or_else(|| FALLBACK.to_owned())
            })
            .collect();
        Self {
            hashes,
            key: key.finish(),
        }
    }

    /// The decoy to verify `username` against.
    pub(super) fn for_name(&self, username: &[u8]) -> &str {
        if self.hashes.is_empty() {
            return FALLBACK;
        }
        let mut hasher = DefaultHasher::new();
        self.key.hash(&mut hasher);
        username.hash(&mut hasher);
        let index = hasher.finish() % self.hashes.len() as u64;
        &self.hashes[index as usize]
    }

    #[cfg(test)]
    pub(super) fn all(&self) -> &[String] {
        &self.hashes
    }
}

/// A PHC string with `phc`'s algorithm, version and parameters, and a random
/// salt and digest of the same lengths.
fn decoy_like(phc: &str) -> Option<String> {
    let model = PasswordHash::new(phc).ok()?;
    let mut salt_bytes = [0u8; 64];
    let salt_len = model.salt?.decode_b64(&mut salt_bytes).ok()?.len();
    rand_core::OsRng.fill_bytes(&mut salt_bytes[..salt_len]);
    let salt = SaltString::encode_b64(&salt_bytes[..salt_len]).ok()?;
    let mut digest = [0u8; Output::MAX_LENGTH];
    let digest_len = model.hash?.len();
    rand_core::OsRng.fill_bytes(&mut digest[..digest_len]);
    let decoy = PasswordHash {
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&digest[..digest_len]).ok()?),
        ..model
    };
    Some(decoy.to_string())
}
