//! Cost of one access decision, with no rules and with 1,000 generated
//! rules (exact names, wildcards, IPv4 and IPv6 ranges, rules without
//! destinations, ports).
//!
//! `cargo bench -p ebbsocks --bench access_rules`
//!
//! Each case is timed over `ITERATIONS` calls, `ROUNDS` times; the median
//! round is printed as nanoseconds per call. The requests are built to
//! walk as much of the rule set as a real request would: most match no
//! rule at all, so the answer is the default after every candidate list
//! was consulted.

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use ebbsocks::access::{AccessConfig, AccessRules, Action, RuleConfig, Subject};
use ebbsocks::proto::Command;

const RULES: usize = 1000;

/// One benchmarked call; `true` when it allowed.
type Decision<'a> = dyn Fn(&AccessRules) -> bool + 'a;
const ITERATIONS: u32 = 200_000;
const ROUNDS: usize = 7;

/// xorshift64*: the same rule set on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Rule `i` of the generated set. None of them matches the requests below
/// unless a case says so: ranges stay inside 11.0.0.0/8 - 99.0.0.0/8 and
/// 2001:db8::/32, names under `zoneN.example`, clients inside 10.0.0.0/8.
fn generated_rule(i: usize, rng: &mut Rng) -> RuleConfig {
    let action = if rng.below(2) == 0 {
        Action::Allow
    } else {
        Action::Deny
    };
    let mut rule = RuleConfig {
        action,
        ..RuleConfig::default()
    };
    let ports = || Some(vec!["22".to_string(), "8000-8100".to_string()]);
    match i % 10 {
        0..=2 => {
            let (a, b, c) = (11 + rng.below(89), rng.below(256), rng.below(256));
            let len = [16, 24, 32][rng.below(3) as usize];
            let cidr = match len {
                16 => format!("{a}.{b}.0.0/16"),
                24 => format!("{a}.{b}.{c}.0/24"),
                _ => format!("{a}.{b}.{c}.{}", rng.below(256)),
            };
            rule.destinations = Some(vec![cidr]);
        }
        3 => {
            let cidr = format!("2001:db8:{:x}::/48", rng.below(65536));
            rule.destinations = Some(vec![cidr]);
            rule.ports = ports();
        }
        4..=6 => {
            let name = format!("host{i}.zone{}.example", rng.below(100));
            rule.destinations = Some(vec![name]);
        }
        7 | 8 => {
            let name = format!("*.zone{}.example", 100 + rng.below(100));
            rule.destinations = Some(vec![name]);
            if rng.below(2) == 0 {
                rule.ports = ports();
            }
        }
        _ => {
            let client = format!("10.{}.{}.0/24", rng.below(256), rng.below(256));
            rule.clients = Some(vec![client]);
            rule.ports = ports();
        }
    }
    rule
}

fn rule_set(count: usize) -> AccessRules {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let config = AccessConfig {
        rules: (0..count).map(|i| generated_rule(i, &mut rng)).collect(),
        ..AccessConfig::default()
    };
    AccessRules::compile(&config, &[], true, &[]).expect("generated rules compile")
}

fn median_ns(mut call: impl FnMut() -> bool) -> f64 {
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..ITERATIONS {
                black_box(call());
            }
            started.elapsed().as_nanos() as f64 / f64::from(ITERATIONS)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn main() {
    let who = Subject {
        client: IpAddr::from([192, 0, 2, 10]),
        user: None,
        command: Command::Connect,
    };
    let public: SocketAddr = "198.51.100.7:443".parse().expect("valid");
    let public_v6: SocketAddr = "[2001:db9::7]:443".parse().expect("valid");
    let loopback: SocketAddr = "127.0.0.1:8080".parse().expect("valid");
    let empty = rule_set(0);
    let full = rule_set(RULES);
    // Which rule the last case hits: the first range rule in 11-99.x.
    let in_range: SocketAddr = {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        match generated_rule(0, &mut rng).destinations.as_deref() {
            Some([cidr]) => {
                let host = cidr.split('/').next().expect("address part");
                SocketAddr::new(host.parse().expect("address"), 443)
            }
            _ => unreachable!("rule 0 is a range rule"),
        }
    };

    println!("access decision, ns per call (median of {ROUNDS} rounds of {ITERATIONS})");
    println!("{:<52} {:>8} {:>8}", "case", "0 rules", "1000");
    let cases: [(&str, &Decision<'_>); 7] = [
        ("check_addr IPv4, no rule matches", &|r| {
            r.check_addr(&who, None, public).is_ok()
        }),
        ("check_addr loopback (the pulse rate target)", &|r| {
            r.check_addr(&who, None, loopback).is_ok()
        }),
        ("check_addr IPv6, no rule matches", &|r| {
            r.check_addr(&who, None, public_v6).is_ok()
        }),
        ("check_addr name + address, no rule matches", &|r| {
            r.check_addr(&who, Some("www.unlisted.example"), public)
                .is_ok()
        }),
        ("check_addr address in the first range rule", &|r| {
            r.check_addr(&who, None, in_range).is_ok()
        }),
        ("check_name, no rule matches", &|r| {
            r.check_name(&who, "a.b.unlisted.example", 443).is_ok()
        }),
        ("check_name, wildcard depth 3 (zone150)", &|r| {
            r.check_name(&who, "a.b.c.zone150.example", 443).is_ok()
        }),
    ];
    for (label, case) in cases {
        let none = median_ns(|| case(&empty));
        let many = median_ns(|| case(&full));
        println!("{label:<52} {none:>8.1} {many:>8.1}");
    }
}
