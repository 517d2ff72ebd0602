//! Safe egress: the private set, IPv4 inside IPv6, what opens the private
//! set, and the proxy's own addresses.

use super::*;

#[test]
fn private_ranges_and_their_edges() {
    // (address, private)
    let table = [
        ("0.0.0.0", true),
        ("0.255.255.255", true),
        ("1.0.0.0", false),
        ("9.255.255.255", false),
        ("10.0.0.0", true),
        ("10.255.255.255", true),
        ("11.0.0.0", false),
        ("100.63.255.255", false),
        ("100.64.0.0", true),
        ("100.127.255.255", true),
        ("100.128.0.0", false),
        ("126.255.255.255", false),
        ("127.0.0.1", true),
        ("127.255.255.255", true),
        ("128.0.0.0", false),
        ("169.253.255.255", false),
        ("169.254.169.254", true),
        ("169.255.0.0", false),
        ("172.15.255.255", false),
        ("172.16.0.0", true),
        ("172.31.255.255", true),
        ("172.32.0.0", false),
        ("192.167.255.255", false),
        ("192.168.0.0", true),
        ("192.168.255.255", true),
        ("192.169.0.0", false),
        ("223.255.255.255", false),
        ("224.0.0.1", true),
        ("239.255.255.255", true),
        ("240.0.0.1", true),
        ("255.255.255.255", true),
        ("8.8.8.8", false),
        // IPv6 natives
        ("::", true),
        ("::1", true),
        ("fbff:ffff::1", false),
        ("fc00::1", true),
        ("fdff:ffff::1", true),
        ("fe00::1", false),
        ("fe80::1", true),
        ("febf:ffff::1", true),
        ("fec0::1", true),
        ("ff02::1", true),
        ("2001:4860:4860::8888", false),
        ("64:ff9b:1::1", true),
        // IPv4 inside IPv6: private when the embedded address is.
        ("::ffff:169.254.169.254", true),
        ("::ffff:8.8.8.8", false),
        ("::10.0.0.1", true),
        ("::8.8.8.8", false),
        ("64:ff9b::a9fe:a9fe", true),
        ("64:ff9b::808:808", false),
        ("64:ff9b:0:0:1::a9fe:a9fe", false), // outside 64:ff9b::/96
        ("2002:7f00:1::", true),
        ("2002:a9fe:a9fe:1234::1", true),
        ("2002:808:808::1", false),
        // Teredo: server 8.8.8.8, client 10.0.0.1 stored inverted.
        ("2001:0:808:808:0:0:f5ff:fffe", true),
        // Teredo: server 8.8.8.8, client 8.8.4.4 inverted.
        ("2001:0:808:808:0:0:f7f7:fbfb", false),
        // Teredo: server 10.0.0.1, client 8.8.4.4 inverted.
        ("2001:0:a00:1:0:0:f7f7:fbfb", true),
        ("2001:1::1", false), // outside 2001::/32
    ];
    for (addr, expected) in table {
        assert_eq!(is_private(ip(addr)), expected, "{addr}");
    }
}

#[test]
fn auto_denies_private_destinations_only_off_loopback() {
    let public = rules_with("", false, &[]);
    let local = rules_with("", true, &[]);
    let who = anon("198.51.100.1");
    assert_eq!(
        addr_outcome(&public, &who, "10.0.0.1:80"),
        "private_destinations"
    );
    assert_eq!(
        addr_outcome(&public, &who, "[::ffff:127.0.0.1]:80"),
        "private_destinations"
    );
    assert_eq!(addr_outcome(&public, &who, "8.8.8.8:80"), "allow");
    assert_eq!(addr_outcome(&local, &who, "10.0.0.1:80"), "allow");

    let forced = rules_with("private_destinations = \"deny\"", true, &[]);
    assert_eq!(
        addr_outcome(&forced, &who, "10.0.0.1:80"),
        "private_destinations"
    );
    let opened = rules_with("private_destinations = \"allow\"", false, &[]);
    assert_eq!(addr_outcome(&opened, &who, "10.0.0.1:80"), "allow");
}

#[test]
fn only_an_allow_by_address_opens_the_private_set() {
    let rules = rules(
        r#"
        private_destinations = "deny"
        [[rules]]
        name = "internal-by-name"
        action = "allow"
        destinations = ["*.internal.example"]
        [[rules]]
        name = "metadata-range"
        action = "allow"
        users = ["alice"]
        destinations = ["169.254.169.254", "10.0.0.0/8"]
        [[rules]]
        name = "catch-all"
        action = "allow"
        users = ["bob"]
        "#,
    );
    let alice = as_user("127.0.0.1", "alice");
    let bob = as_user("127.0.0.1", "bob");
    // A name that resolves to a private address stays refused (rebinding).
    assert_eq!(
        named_outcome(&rules, &alice, "db.internal.example", "10.0.0.5:5432"),
        "private_destinations"
    );
    // Alice's rule names the range: its addresses open, also in IPv6 forms.
    assert_eq!(addr_outcome(&rules, &alice, "10.0.0.5:5432"), "allow");
    assert_eq!(addr_outcome(&rules, &alice, "169.254.169.254:80"), "allow");
    assert_eq!(
        addr_outcome(&rules, &alice, "[::ffff:10.0.0.5]:80"),
        "allow"
    );
    assert_eq!(
        addr_outcome(&rules, &alice, "192.168.1.1:80"),
        "private_destinations"
    );
    // A catch-all allow does not open the private set.
    assert_eq!(
        addr_outcome(&rules, &bob, "10.0.0.5:5432"),
        "private_destinations"
    );
    assert_eq!(addr_outcome(&rules, &bob, "198.51.100.1:443"), "allow");
}

#[test]
fn ipv4_ranges_also_match_ipv4_inside_ipv6() {
    let rules = rules(
        r#"
        [[rules]]
        name = "no-metadata"
        action = "deny"
        destinations = ["169.254.0.0/16"]
        "#,
    );
    let who = anon("127.0.0.1");
    for addr in [
        "169.254.169.254:80",
        "[::ffff:169.254.169.254]:80",
        "[::169.254.169.254]:80",
        "[64:ff9b::a9fe:a9fe]:80",
        "[2002:a9fe:a9fe::1]:80",
    ] {
        assert_eq!(addr_outcome(&rules, &who, addr), "no-metadata", "{addr}");
    }
    assert_eq!(addr_outcome(&rules, &who, "[64:ff9b::808:808]:80"), "allow");
}

#[test]
fn deny_rules_win_over_the_private_and_own_labels() {
    let rules = rules_with(
        r#"
        [[rules]]
        name = "no-lan"
        action = "deny"
        destinations = ["10.0.0.0/8"]
        "#,
        false,
        &[sock("10.0.0.5:1080")],
    );
    let who = anon("198.51.100.1");
    assert_eq!(addr_outcome(&rules, &who, "10.0.0.5:1080"), "no-lan");
    assert_eq!(
        addr_outcome(&rules, &who, "192.168.0.1:80"),
        "private_destinations"
    );
}

#[test]
fn own_addresses_are_refused_off_loopback_even_when_allowed_by_address() {
    let config = r#"
        private_destinations = "allow"
        [[rules]]
        action = "allow"
        destinations = ["10.0.0.0/8"]
        "#;
    let own = [sock("10.0.0.5:1080"), sock("127.0.0.1:9090")];
    let public = rules_with(config, false, &own);
    let who = anon("198.51.100.1");
    assert_eq!(addr_outcome(&public, &who, "10.0.0.5:1080"), "own_address");
    assert_eq!(
        addr_outcome(&public, &who, "[::ffff:10.0.0.5]:1080"),
        "own_address"
    );
    assert_eq!(addr_outcome(&public, &who, "127.0.0.1:9090"), "own_address");
    assert_eq!(addr_outcome(&public, &who, "10.0.0.5:1081"), "allow");
    assert_eq!(addr_outcome(&public, &who, "10.0.0.6:1080"), "allow");
    // On loopback the guard is off: only local clients can reach the proxy.
    let local = rules_with(config, true, &own);
    assert_eq!(addr_outcome(&local, &who, "10.0.0.5:1080"), "allow");
}

#[test]
fn an_unspecified_listen_address_covers_every_local_address() {
    let own = [sock("0.0.0.0:1080"), sock("[::]:9090")];
    let rules = rules_with("private_destinations = \"allow\"", false, &own);
    let who = anon("198.51.100.1");
    for addr in [
        "127.0.0.1:1080",
        "127.3.2.1:1080",
        "[::1]:9090",
        "127.0.0.1:9090",
    ] {
        assert_eq!(addr_outcome(&rules, &who, addr), "own_address", "{addr}");
    }
    assert_eq!(addr_outcome(&rules, &who, "127.0.0.1:1081"), "allow");
    let interfaces = own::interface_addresses();
    assert!(!interfaces.is_empty(), "getifaddrs found no addresses");
    for local in interfaces {
        let on_v4_listener = SocketAddr::new(local, 1080);
        let on_v6_listener = SocketAddr::new(local, 9090);
        if local.is_ipv4() {
            assert_eq!(
                outcome(rules.check_addr(&who, None, on_v4_listener)),
                "own_address"
            );
        }
        assert_eq!(
            outcome(rules.check_addr(&who, None, on_v6_listener)),
            "own_address",
            "{local}"
        );
    }
}

#[test]
fn default_deny_refuses_and_default_allow_still_guards() {
    let closed = rules_with("default = \"deny\"", false, &[]);
    let open = rules_with("default = \"allow\"", false, &[]);
    let who = anon("198.51.100.1");
    assert_eq!(addr_outcome(&closed, &who, "8.8.8.8:53"), "default");
    assert_eq!(addr_outcome(&open, &who, "8.8.8.8:53"), "allow");
    assert_eq!(
        addr_outcome(&open, &who, "169.254.169.254:80"),
        "private_destinations"
    );
}

#[test]
fn allow_all_allows_everything() {
    let rules = AccessRules::allow_all();
    let who = anon("127.0.0.1");
    assert_eq!(addr_outcome(&rules, &who, "127.0.0.1:1080"), "allow");
    assert_eq!(name_outcome(&rules, &who, "localhost", 80), "allow");
}
