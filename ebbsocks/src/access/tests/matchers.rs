//! Each matcher kind on its own, first-match order and labels.

use super::super::cidr::Cidr;
use super::super::names::{normalize, NamePattern};
use super::super::ports::PortSet;
use super::*;

#[test]
fn cidr_entries_parse_and_hold_their_addresses() {
    // (entry, inside, just outside)
    let table = [
        ("10.0.0.0/8", "10.255.255.255", "11.0.0.0"),
        ("192.168.1.0/24", "192.168.1.0", "192.168.2.0"),
        ("203.0.113.7", "203.0.113.7", "203.0.113.8"),
        ("0.0.0.0/0", "255.255.255.255", "::1"),
        ("2001:db8::/32", "2001:db8:ffff::1", "2001:db9::"),
        ("::1/128", "::1", "::2"),
        ("::/0", "ffff::1", "0.0.0.0"),
        // An IPv4-mapped range is the IPv4 range it stands for.
        ("::ffff:10.0.0.0/104", "10.1.2.3", "11.0.0.0"),
    ];
    for (entry, inside, outside) in table {
        let cidr = Cidr::parse(entry).unwrap_or_else(|err| panic!("{entry}: {err}"));
        assert!(cidr.contains(ip(inside)), "{entry} should hold {inside}");
        assert!(
            !cidr.contains(ip(outside)),
            "{entry} should not hold {outside}"
        );
    }
}

#[test]
fn bad_cidrs_say_what_is_wrong() {
    let table = [
        ("10.1.2.3/8", "host bits set; the network is \"10.0.0.0/8\""),
        ("2001:db8::1/32", "the network is \"2001:db8::/32\""),
        ("10.0.0.0/33", "prefix length 33 is longer than the 32 bits"),
        ("::/129", "longer than the 128 bits"),
        ("10.0.0/8", "\"10.0.0\" is not an IP address"),
        ("10.0.0.0/x", "prefix length \"x\" is not a number"),
        ("10.0.0.0/", "is not a number"),
        ("fe80::1%eth0/128", "is not an IP address"),
    ];
    for (entry, expected) in table {
        let err = Cidr::parse(entry).expect_err(entry);
        assert!(
            err.contains(expected),
            "{entry}: {err:?} lacks {expected:?}"
        );
    }
}

#[test]
fn name_patterns_match_exactly_or_below_their_parent() {
    // (pattern, name, matches)
    let table = [
        ("example.com", "example.com", true),
        ("example.com", "www.example.com", false),
        ("example.com", "example.co", false),
        ("*.corp.example", "a.corp.example", true),
        ("*.corp.example", "a.b.c.corp.example", true),
        ("*.corp.example", "corp.example", false),
        ("*.corp.example", "xcorp.example", false),
        ("*.corp.example", ".corp.example", false),
        ("*.corp.example", "corp.example.evil", false),
        ("Example.COM.", "example.com", true),
        ("*.Corp.Example", "host.corp.example", true),
    ];
    for (pattern, name, expected) in table {
        let parsed = NamePattern::parse(pattern).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(parsed.matches(name), expected, "{pattern} vs {name}");
    }
}

#[test]
fn requested_names_ignore_case_trailing_dots_and_unicode_spelling() {
    assert_eq!(normalize("WWW.Example.COM."), "www.example.com");
    assert_eq!(normalize("example.com.."), "example.com");
    assert_eq!(normalize("plain.example"), "plain.example");
    assert_eq!(normalize("BÜCHER.example"), "xn--bcher-kva.example");
    let rules = rules(
        r#"
        [[rules]]
        action = "deny"
        destinations = ["xn--bcher-kva.example", "*.corp.example", "Exact.Example"]
        "#,
    );
    let who = anon("127.0.0.1");
    for name in [
        "bücher.example",
        "HOST.CORP.EXAMPLE.",
        "a.b.corp.example",
        "exact.example.",
    ] {
        assert_eq!(name_outcome(&rules, &who, name, 80), "#0", "{name}");
        assert_eq!(
            named_outcome(&rules, &who, name, "198.51.100.1:80"),
            "#0",
            "{name}"
        );
    }
    for name in ["corp.example", "example", "exact.example.org"] {
        assert_eq!(name_outcome(&rules, &who, name, 80), "allow", "{name}");
    }
}

#[test]
fn ports_hold_single_ports_and_inclusive_ranges() {
    let set = PortSet::parse(&["22".into(), "8000-8100".into(), "8050-8200".into()])
        .expect("valid ports");
    for (port, expected) in [
        (21, false),
        (22, true),
        (23, false),
        (7999, false),
        (8000, true),
        (8100, true),
        (8200, true),
        (8201, false),
        (65535, false),
    ] {
        assert_eq!(set.contains(port), expected, "port {port}");
    }
    let edges = PortSet::parse(&["1-65535".into()]).expect("valid");
    assert!(edges.contains(1) && edges.contains(65535));
}

#[test]
fn every_matcher_must_match_and_a_rule_without_matchers_matches_all() {
    let rules = rules(
        r#"
        [[rules]]
        name = "alice-ssh-from-lan"
        action = "deny"
        users = ["alice"]
        clients = ["10.0.0.0/8"]
        ports = ["22"]
        commands = ["connect"]
        destinations = ["198.51.100.0/24"]
        [[rules]]
        name = "everything-else"
        action = "deny"
        "#,
    );
    let alice = as_user("10.1.1.1", "alice");
    assert_eq!(
        addr_outcome(&rules, &alice, "198.51.100.9:22"),
        "alice-ssh-from-lan"
    );
    // Change one thing at a time: the first rule no longer matches.
    let bob = as_user("10.1.1.1", "bob");
    assert_eq!(
        addr_outcome(&rules, &bob, "198.51.100.9:22"),
        "everything-else"
    );
    let outside = as_user("192.0.2.1", "alice");
    assert_eq!(
        addr_outcome(&rules, &outside, "198.51.100.9:22"),
        "everything-else"
    );
    assert_eq!(
        addr_outcome(&rules, &alice, "198.51.100.9:23"),
        "everything-else"
    );
    assert_eq!(
        addr_outcome(&rules, &alice, "198.51.101.9:22"),
        "everything-else"
    );
    let bind = Subject {
        command: Command::Bind,
        ..alice
    };
    assert_eq!(
        addr_outcome(&rules, &bind, "198.51.100.9:22"),
        "everything-else"
    );
}

#[test]
fn commands_are_told_apart() {
    let rules = rules(
        r#"
        [[rules]]
        name = "no-bind-or-udp"
        action = "deny"
        commands = ["bind", "udp"]
        "#,
    );
    for (command, expected) in [
        (Command::Connect, "allow"),
        (Command::Bind, "no-bind-or-udp"),
        (Command::UdpAssociate, "no-bind-or-udp"),
    ] {
        let who = Subject {
            command,
            ..anon("127.0.0.1")
        };
        assert_eq!(
            addr_outcome(&rules, &who, "198.51.100.1:80"),
            expected,
            "{command:?}"
        );
    }
}

#[test]
fn users_match_only_authenticated_listed_users() {
    let rules = rules(
        r#"
        default = "deny"
        [[rules]]
        action = "allow"
        users = ["alice", "bob"]
        "#,
    );
    let target = "198.51.100.1:443";
    assert_eq!(
        addr_outcome(&rules, &as_user("127.0.0.1", "alice"), target),
        "allow"
    );
    assert_eq!(
        addr_outcome(&rules, &as_user("127.0.0.1", "bob"), target),
        "allow"
    );
    assert_eq!(
        addr_outcome(&rules, &as_user("127.0.0.1", "carol"), target),
        "default"
    );
    // Without authentication there is no user, so the rule cannot match.
    assert_eq!(addr_outcome(&rules, &anon("127.0.0.1"), target), "default");
}

#[test]
fn clients_match_by_cidr_with_mapped_clients_as_ipv4() {
    let rules = rules(
        r#"
        [[rules]]
        name = "lan"
        action = "deny"
        clients = ["10.0.0.0/8", "fd00::/8"]
        "#,
    );
    let target = "198.51.100.1:443";
    for (client, expected) in [
        ("10.2.3.4", "lan"),
        ("::ffff:10.2.3.4", "lan"),
        ("fd12::1", "lan"),
        ("11.0.0.1", "allow"),
        ("::ffff:11.0.0.1", "allow"),
        ("fe80::1", "allow"),
    ] {
        assert_eq!(
            addr_outcome(&rules, &anon(client), target),
            expected,
            "{client}"
        );
    }
}

#[test]
fn the_first_matching_rule_decides_and_labels_default_to_the_index() {
    let rules = rules(
        r#"
        default = "deny"
        [[rules]]
        action = "allow"
        destinations = ["198.51.100.7"]
        [[rules]]
        name = "block-net"
        action = "deny"
        destinations = ["198.51.100.0/24"]
        [[rules]]
        action = "deny"
        ports = ["25"]
        [[rules]]
        action = "allow"
        "#,
    );
    let who = anon("127.0.0.1");
    assert_eq!(addr_outcome(&rules, &who, "198.51.100.7:25"), "allow");
    assert_eq!(addr_outcome(&rules, &who, "198.51.100.8:80"), "block-net");
    assert_eq!(addr_outcome(&rules, &who, "203.0.113.1:25"), "#2");
    assert_eq!(addr_outcome(&rules, &who, "203.0.113.1:80"), "allow");
}

#[test]
fn a_rule_matches_when_any_destination_entry_does() {
    let rules = rules(
        r#"
        [[rules]]
        name = "mixed"
        action = "deny"
        destinations = ["203.0.113.0/24", "2001:db8::/32", "blocked.example", "*.bad.example"]
        "#,
    );
    let who = anon("127.0.0.1");
    assert_eq!(addr_outcome(&rules, &who, "203.0.113.200:80"), "mixed");
    assert_eq!(addr_outcome(&rules, &who, "[2001:db8::5]:80"), "mixed");
    assert_eq!(
        named_outcome(&rules, &who, "blocked.example", "198.51.100.1:80"),
        "mixed"
    );
    assert_eq!(
        named_outcome(&rules, &who, "x.bad.example", "198.51.100.1:80"),
        "mixed"
    );
    assert_eq!(
        named_outcome(&rules, &who, "ok.example", "198.51.100.1:80"),
        "allow"
    );
    // A name entry never matches an address asked for without a name.
    assert_eq!(addr_outcome(&rules, &who, "198.51.100.1:80"), "allow");
}
