//! Does an unknown username cost the same as a wrong password?
//!
//! `cargo bench -p ebbsocks --bench auth_timing` times ROUNDS unknown-user
//! and ROUNDS wrong-password verifications, interleaved (alternating which
//! goes first), through the real `Authenticator::verify` path, for a user
//! hashed with the defaults of `ebbsocks hash-password` and for one hashed
//! with other parameters.
//! It prints both medians and exits non-zero when they differ by more than 5%.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ebbsocks::auth::{Authenticator, Verdict};
use ebbsocks::config::{AuthConfig, AuthMethod, Secret, UserConfig};

const ROUNDS: usize = 100;
const LIMIT: f64 = 0.05;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let default_hash = ebbsocks::auth::hash_password("secret").expect("hash");
    let params = Params::new(8192, 3, 1, None).expect("params");
    let salt = SaltString::generate(&mut rand_core::OsRng);
    let other_hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(b"secret", &salt)
        .expect("hash")
        .to_string();
    let mut worst: f64 = 0.0;
    for (label, hash) in [
        ("default parameters (m=19456,t=2,p=1)", default_hash),
        ("other parameters (m=8192,t=3,p=1)", other_hash),
    ] {
        let auth = Authenticator::new(&AuthConfig {
            method: AuthMethod::Userpass,
            // Every check here fails: the failed-login budget must not interfere.
            max_failures_per_client: 0,
            users: vec![UserConfig {
                username: "alice".into(),
                password_hash: Secret::new(hash),
            }],
            ..AuthConfig::default()
        });
        let (unknown, wrong) = runtime.block_on(medians(&auth));
        let diff = (unknown.as_secs_f64() / wrong.as_secs_f64() - 1.0).abs();
        worst = worst.max(diff);
        println!(
            "{label}: median unknown user {:.2} ms, wrong password {:.2} ms, difference {:.2}% ({ROUNDS} each, interleaved)",
            unknown.as_secs_f64() * 1e3,
            wrong.as_secs_f64() * 1e3,
            diff * 100.0
        );
    }
    if worst > LIMIT {
        eprintln!("FAIL: medians differ by {:.2}% (limit 5%)", worst * 100.0);
        std::process::exit(1);
    }
}

async fn medians(auth: &Authenticator) -> (Duration, Duration) {
    let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut unknown = Vec::with_capacity(ROUNDS);
    let mut wrong = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let name = format!("nobody{round}");
        // Alternate which goes first, so neither path always runs on a
        // warmer (or colder) machine than the other.
        for unknown_first in [round.is_multiple_of(2), !round.is_multiple_of(2)] {
            let started = Instant::now();
            if unknown_first {
                let verdict = auth.verify(client, name.as_bytes(), b"guess").await;
                unknown.push(started.elapsed());
                assert_eq!(verdict, Verdict::Rejected);
            } else {
                let verdict = auth.verify(client, b"alice", b"guess").await;
                wrong.push(started.elapsed());
                assert_eq!(verdict, Verdict::Rejected);
            }
        }
    }
    unknown.sort();
    wrong.sort();
    (unknown[ROUNDS / 2], wrong[ROUNDS / 2])
}
