use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Params, Version};

use super::*;
use crate::config::{Secret, UserConfig};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A hash with explicit (cheap, for debug builds) parameters.
fn hash_with(password: &str, m_kib: u32, t: u32) -> String {
    let params = Params::new(m_kib, t, 1, None).expect("params");
    let salt = SaltString::generate(&mut rand_core::OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .expect("hashing works")
        .to_string()
}

fn config(users: &[(&str, String)], max_failures: u32) -> AuthConfig {
    AuthConfig {
        method: AuthMethod::Userpass,
        max_failures_per_client: max_failures,
        users: users
            .iter()
            .map(|(name, hash)| UserConfig {
                username: (*name).into(),
                password_hash: Secret::new(hash.clone()),
            })
            .collect(),
        ..AuthConfig::default()
    }
}

#[tokio::test]
async fn right_password_passes_and_wrong_ones_fail() {
    let auth = Authenticator::new(&config(&[("alice", hash_with("correct horse", 256, 1))], 0));
    let verify = |user: &'static [u8], pass: &'static [u8]| auth.verify(CLIENT, user, pass);
    assert_eq!(verify(b"alice", b"correct horse").await, Verdict::Accepted);
    assert_eq!(verify(b"alice", b"wrong").await, Verdict::Rejected);
    assert_eq!(verify(b"bob", b"correct horse").await, Verdict::Rejected);
    assert_eq!(
        verify(b"\xff\xfe", b"correct horse").await,
        Verdict::Rejected
    );
}

#[test]
fn hashes_are_phc_strings_and_garbage_is_rejected() {
    let hash = hash_password("pw").expect("hashing works");
    assert!(hash.starts_with("$argon2id$"));
    assert!(parse_hash(&hash).is_ok());
    assert!(parse_hash("plaintext").is_err());
    assert!(parse_hash("$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA").is_err());
}

/// What the argon2 cost of a PHC string depends on.
fn cost_of(phc: &str) -> (String, Option<u32>, String, usize, usize) {
    let hash = PasswordHash::new(phc).expect("valid PHC");
    let mut salt = [0u8; 64];
    let salt_len = hash
        .salt
        .expect("salt")
        .decode_b64(&mut salt)
        .expect("b64")
        .len();
    (
        hash.algorithm.to_string(),
        hash.version,
        hash.params.to_string(),
        salt_len,
        hash.hash.expect("digest").len(),
    )
}

/// Each user's decoy runs that user's argon2 cost; a fixed decoy would
/// differ from any user hashed with other parameters.
#[test]
fn decoys_copy_each_users_parameters() {
    let users = [
        ("cheap", hash_with("a", 256, 1)),
        ("dear", hash_with("b", 1024, 3)),
    ];
    let auth = Authenticator::new(&config(&users, 0));
    let current = auth.users.load();
    let decoys = current.decoys.all();
    assert_eq!(decoys.len(), 2);
    for ((_, user_hash), decoy) in users.iter().zip(decoys) {
        assert!(parse_hash(decoy).is_ok(), "{decoy}");
        assert_eq!(cost_of(decoy), cost_of(user_hash));
        assert_ne!(decoy, user_hash);
    }
    // The same name always maps to the same decoy; names spread over both.
    let picks: Vec<&str> = (0..64u8)
        .map(|i| current.decoys.for_name(&[b'u', i]))
        .collect();
    assert_eq!(current.decoys.for_name(b"u\x05"), picks[5]);
    assert!(picks.iter().any(|p| *p == decoys[0]) && picks.iter().any(|p| *p == decoys[1]));
}

/// Interleaves unknown-user and wrong-password checks and returns their
/// median durations (the benchmark does the same in a release build).
async fn medians(auth: &Authenticator, rounds: usize) -> (Duration, Duration) {
    let mut unknown = Vec::with_capacity(rounds);
    let mut wrong = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let name = format!("nobody{round}");
        // Alternate which goes first, so neither path always runs second.
        for unknown_first in [round.is_multiple_of(2), !round.is_multiple_of(2)] {
            let started = Instant::now();
            if unknown_first {
                let verdict = auth.verify(CLIENT, name.as_bytes(), b"x").await;
                unknown.push(started.elapsed());
                assert_eq!(verdict, Verdict::Rejected);
            } else {
                let verdict = auth.verify(CLIENT, b"alice", b"x").await;
                wrong.push(started.elapsed());
                assert_eq!(verdict, Verdict::Rejected);
            }
        }
    }
    unknown.sort();
    wrong.sort();
    (unknown[rounds / 2], wrong[rounds / 2])
}

/// A user whose hash has non-default parameters: with the old fixed decoy
/// (m=19456, t=2) an unknown name took many times longer. The strict 5%
/// figure comes from `cargo bench --bench auth_timing`; this guard is
/// generous because debug builds on shared CI machines are noisy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_costs_what_a_wrong_password_costs() {
    let auth = Authenticator::new(&config(&[("alice", hash_with("secret", 2048, 1))], 0));
    let (unknown, wrong) = medians(&auth, 15).await;
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    eprintln!("median unknown user {unknown:?}, wrong password {wrong:?}, ratio {ratio:.3}");
    assert!((0.7..1.43).contains(&ratio), "ratio {ratio:.3}");
}

/// Logins abandoned at the deadline keep their permit until their hash is
/// done, so no more than `permits` hashes ever run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_logins_do_not_exceed_the_permits() {
    const PERMITS: usize = 2;
    let users = [("alice", hash_with("secret", 4096, 2))];
    let auth = Arc::new(Authenticator::with_permits(&config(&users, 0), PERMITS));
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            let _ = auth.verify(CLIENT, b"alice", b"guess").await;
        }));
    }
    // Abandon every login while all permits are hashing (a fixed short
    // deadline could fire before the first hash started, and prove nothing)...
    tokio::time::timeout(Duration::from_secs(30), async {
        while auth.hashing.running.load(Ordering::SeqCst) < PERMITS {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the permits are all hashing");
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    // ...and log in again at once: had the abandoned logins given their
    // permits back, these would hash alongside them, above the limit.
    let again: Vec<_> = (0..8)
        .map(|_| {
            let auth = auth.clone();
            tokio::spawn(async move { auth.verify(CLIENT, b"alice", b"guess").await })
        })
        .collect();
    for task in again {
        let _ = task.await.expect("task");
    }
    // All callers are gone; the hashes they started may still be running.
    tokio::time::timeout(Duration::from_secs(30), async {
        while auth.hashing.running.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("abandoned hashes finish");
    let peak = auth.hashing.peak.load(Ordering::SeqCst);
    assert_eq!(peak, PERMITS, "the test needs every permit hashing at once");
    assert!(
        peak <= PERMITS,
        "{peak} hashes ran at once with {PERMITS} permits"
    );
    assert_eq!(auth.permits.available_permits(), PERMITS);
}

#[tokio::test]
async fn a_client_over_its_budget_is_refused_without_hashing() {
    let auth = Authenticator::new(&config(&[("alice", hash_with("secret", 256, 1))], 2));
    assert_eq!(auth.verify(CLIENT, b"alice", b"1").await, Verdict::Rejected);
    assert_eq!(
        auth.verify(CLIENT, b"nobody", b"2").await,
        Verdict::Rejected
    );
    let peak_before = auth.hashing.peak.load(Ordering::SeqCst);
    let hashed = |gauge: &HashGauge| gauge.running.load(Ordering::SeqCst);
    assert_eq!(
        auth.verify(CLIENT, b"alice", b"secret").await,
        Verdict::Throttled
    );
    assert_eq!(hashed(&auth.hashing), 0);
    assert_eq!(auth.hashing.peak.load(Ordering::SeqCst), peak_before);
    let other = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    assert_eq!(
        auth.verify(other, b"alice", b"secret").await,
        Verdict::Accepted
    );
}

#[tokio::test]
async fn replaced_users_apply_to_the_next_login_and_keep_the_failure_budget() {
    let alice = ("alice", hash_with("a-pass", 256, 1));
    let bob = ("bob", hash_with("b-pass", 256, 1));
    let auth = Authenticator::new(&config(&[alice.clone(), bob.clone()], 3));
    assert_eq!(
        auth.verify(CLIENT, b"bob", b"b-pass").await,
        Verdict::Accepted
    );
    assert_eq!(
        auth.verify(CLIENT, b"bob", b"wrong").await,
        Verdict::Rejected
    );
    auth.replace_users(&config(std::slice::from_ref(&alice), 3));
    assert_eq!(
        auth.verify(CLIENT, b"bob", b"b-pass").await,
        Verdict::Rejected
    );
    assert_eq!(
        auth.verify(CLIENT, b"alice", b"a-pass").await,
        Verdict::Accepted
    );
    // The two failures before and after the swap count against one budget.
    assert_eq!(auth.verify(CLIENT, b"x", b"y").await, Verdict::Rejected);
    assert_eq!(
        auth.verify(CLIENT, b"alice", b"a-pass").await,
        Verdict::Throttled
    );
    let open = AuthConfig::default();
    assert!(auth.requires_password());
    auth.replace_users(&open);
    assert!(!auth.requires_password());
}
