//! The indexed lookups against the linear first-match reference, over
//! generated rule sets and requests drawn from small pools, so that
//! overlapping ranges, shared names and near misses are common.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::*;

/// xorshift64*: deterministic, dependency-free, good enough to shuffle tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const LABELS: [&str; 5] = ["a", "b", "corp", "example", "x"];

fn random_v4(rng: &mut Rng) -> Ipv4Addr {
    let first = *rng.pick(&[10u8, 192, 203, 127, 169, 8]);
    let rest = [0u8, 1, 2, 254, 255];
    Ipv4Addr::new(first, *rng.pick(&rest), *rng.pick(&rest), *rng.pick(&rest))
}

/// An address, often an IPv6 form embedding one of the IPv4 addresses.
fn random_ip(rng: &mut Rng) -> IpAddr {
    let v4 = random_v4(rng);
    let [a, b, c, d] = v4.octets();
    let embed = |prefix: &str| ip(&format!("{prefix}{a}.{b}.{c}.{d}"));
    match rng.below(6) {
        0 | 1 => IpAddr::V4(v4),
        2 => embed("::ffff:"),
        3 => embed("64:ff9b::"),
        4 => ip(&format!(
            "2002:{:x}:{:x}::1",
            u16::from_be_bytes([a, b]),
            u16::from_be_bytes([c, d])
        )),
        _ => ip(&format!("2001:db8:{}::{}", rng.below(3), rng.below(3))),
    }
}

fn random_cidr(rng: &mut Rng) -> String {
    let addr = random_ip(rng);
    let len = if addr.is_ipv4() {
        *rng.pick(&[0u8, 8, 16, 24, 30, 32])
    } else {
        *rng.pick(&[0u8, 16, 32, 48, 96, 120, 128])
    };
    let (v6, bits) = super::super::cidr::family_bits(addr);
    let width = if v6 { 128 } else { 32 };
    let host = width - u32::from(len);
    let network = if host >= 128 {
        0
    } else {
        bits & !((1u128 << host) - 1)
    };
    let base = if v6 {
        std::net::Ipv6Addr::from(network).to_string()
    } else {
        Ipv4Addr::from(network as u32).to_string()
    };
    format!("{base}/{len}")
}

fn random_name(rng: &mut Rng, max_labels: usize) -> String {
    let count = 1 + rng.below(max_labels);
    (0..count)
        .map(|_| *rng.pick(&LABELS))
        .collect::<Vec<_>>()
        .join(".")
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("{item:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn random_rule_set(rng: &mut Rng) -> String {
    let mut text = String::new();
    let default = if rng.chance(50) { "allow" } else { "deny" };
    let private = *rng.pick(&["auto", "deny", "allow"]);
    let _ = writeln!(
        text,
        "default = \"{default}\"\nprivate_destinations = \"{private}\""
    );
    for _ in 0..1 + rng.below(40) {
        let action = if rng.chance(50) { "allow" } else { "deny" };
        let _ = writeln!(text, "[[rules]]\naction = \"{action}\"");
        if rng.chance(15) {
            let users: Vec<String> = (0..1 + rng.below(2))
                .map(|_| rng.pick(&USERS).to_string())
                .collect();
            let _ = writeln!(text, "users = {}", list(&users));
        }
        if rng.chance(15) {
            let clients = [rng
                .pick(&["10.0.0.0/8", "10.0.0.0/24", "::1", "0.0.0.0/0"])
                .to_string()];
            let _ = writeln!(text, "clients = {}", list(&clients));
        }
        if rng.chance(20) {
            let ports = [rng.pick(&["80", "443", "1-1024", "8000-8100"]).to_string()];
            let _ = writeln!(text, "ports = {}", list(&ports));
        }
        if rng.chance(10) {
            let commands = [rng.pick(&["connect", "bind", "udp"]).to_string()];
            let _ = writeln!(text, "commands = {}", list(&commands));
        }
        if rng.chance(80) {
            let destinations: Vec<String> = (0..1 + rng.below(3))
                .map(|_| match rng.below(3) {
                    0 => random_cidr(rng),
                    1 => random_name(rng, 3),
                    _ => format!("*.{}", random_name(rng, 2)),
                })
                .collect();
            let _ = writeln!(text, "destinations = {}", list(&destinations));
        }
    }
    text
}

const CLIENTS: [&str; 5] = [
    "10.0.0.1",
    "10.9.0.1",
    "::ffff:10.0.0.1",
    "::1",
    "198.51.100.1",
];

fn random_subject(rng: &mut Rng) -> Subject<'static> {
    let client = CLIENTS[rng.below(CLIENTS.len())];
    Subject {
        client: ip(client),
        user: *rng.pick(&[None, Some("alice"), Some("bob"), Some("carol")]),
        command: *rng.pick(&[Command::Connect, Command::Bind, Command::UdpAssociate]),
    }
}

/// A requested name in the spellings clients send: any case, trailing dot.
fn random_request_name(rng: &mut Rng) -> String {
    let mut name = random_name(rng, 5);
    if rng.chance(20) {
        name = name.to_uppercase();
    }
    if rng.chance(20) {
        name.push('.');
    }
    if rng.chance(5) {
        name.insert(0, '.');
    }
    name
}

#[test]
fn indexed_lookups_agree_with_a_linear_scan() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    let mut refused = 0;
    for _ in 0..150 {
        let text = random_rule_set(&mut rng);
        let loopback = rng.chance(50);
        let own = [sock("10.0.0.1:1080")];
        let rules = rules_with(&text, loopback, &own);
        for _ in 0..40 {
            let who = random_subject(&mut rng);
            let port = *rng.pick(&[80u16, 443, 1080, 8080]);
            let addr = SocketAddr::new(random_ip(&mut rng), port);
            let name = rng.chance(60).then(|| random_request_name(&mut rng));
            let name = name.as_deref();

            let indexed = rules.index.first_for_address(
                &rules.rules,
                &super::super::asker(&who, port),
                name.map(names::normalize).as_deref(),
                addr.ip(),
            );
            let reference = linear::first_for_address(&rules, &who, name, addr);
            assert_eq!(indexed, reference, "{name:?} {addr} {who:?}\n{text}");
            let decision = rules.check_addr(&who, name, addr);
            assert_eq!(
                decision,
                rules.decide(reference, addr),
                "{name:?} {addr}\n{text}"
            );
            refused += usize::from(decision.is_err());

            if let Some(name) = name {
                let expected = linear::check_name(&rules, &who, name, port);
                let actual = rules.check_name(&who, name, port);
                assert_eq!(actual, expected, "check_name {name:?} {who:?}\n{text}");
            }
            compared += 1;
        }
    }
    // The generator must exercise both outcomes, or the comparison proves little.
    assert_eq!(compared, 6000);
    assert!(
        (1000..5000).contains(&refused),
        "{refused} of {compared} refused"
    );
}
