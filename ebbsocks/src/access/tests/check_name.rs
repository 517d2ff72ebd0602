//! `check_name` refuses before resolving only when the answer cannot
//! depend on the addresses the name resolves to.

use super::*;

#[test]
fn a_deny_by_name_is_certain_and_a_range_rule_after_it_changes_nothing() {
    let rules = rules(
        r#"
        [[rules]]
        name = "no-tracker"
        action = "deny"
        destinations = ["tracker.example", "*.ads.example"]
        [[rules]]
        name = "lan"
        action = "allow"
        destinations = ["10.0.0.0/8"]
        "#,
    );
    let who = anon("127.0.0.1");
    assert_eq!(
        name_outcome(&rules, &who, "tracker.example", 443),
        "no-tracker"
    );
    assert_eq!(
        name_outcome(&rules, &who, "x.y.ads.example", 443),
        "no-tracker"
    );
    assert_eq!(name_outcome(&rules, &who, "ads.example", 443), "allow");
}

#[test]
fn a_range_rule_before_the_name_rule_leaves_the_decision_to_the_addresses() {
    let rules = rules(
        r#"
        [[rules]]
        name = "lan"
        action = "allow"
        destinations = ["10.0.0.0/8"]
        [[rules]]
        name = "no-tracker"
        action = "deny"
        destinations = ["tracker.example"]
        "#,
    );
    let who = anon("127.0.0.1");
    assert_eq!(name_outcome(&rules, &who, "tracker.example", 443), "allow");
    // Then each address decides: the LAN one is allowed, another is not.
    let lan = named_outcome(&rules, &who, "tracker.example", "10.1.1.1:443");
    assert_eq!(lan, "allow");
    let public = named_outcome(&rules, &who, "tracker.example", "198.51.100.1:443");
    assert_eq!(public, "no-tracker");
}

#[test]
fn a_range_rule_that_cannot_match_the_asker_does_not_make_it_uncertain() {
    let rules = rules(
        r#"
        [[rules]]
        name = "alice-lan"
        action = "allow"
        users = ["alice"]
        ports = ["5432"]
        destinations = ["10.0.0.0/8"]
        [[rules]]
        name = "no-tracker"
        action = "deny"
        destinations = ["tracker.example"]
        "#,
    );
    let bob = as_user("127.0.0.1", "bob");
    let alice = as_user("127.0.0.1", "alice");
    assert_eq!(
        name_outcome(&rules, &bob, "tracker.example", 5432),
        "no-tracker"
    );
    assert_eq!(
        name_outcome(&rules, &alice, "tracker.example", 443),
        "no-tracker"
    );
    assert_eq!(
        name_outcome(&rules, &alice, "tracker.example", 5432),
        "allow"
    );
}

#[test]
fn a_rule_matched_by_name_that_also_lists_ranges_is_certain() {
    let rules = rules(
        r#"
        [[rules]]
        name = "corp"
        action = "deny"
        destinations = ["10.0.0.0/8", "*.corp.example"]
        "#,
    );
    let who = anon("127.0.0.1");
    assert_eq!(name_outcome(&rules, &who, "git.corp.example", 22), "corp");
    assert_eq!(name_outcome(&rules, &who, "other.example", 22), "allow");
}

#[test]
fn default_deny_is_certain_only_without_range_rules_in_reach() {
    let names_only = rules(
        r#"
        default = "deny"
        [[rules]]
        action = "allow"
        destinations = ["*.example.com"]
        ports = ["443"]
        "#,
    );
    let who = anon("127.0.0.1");
    assert_eq!(
        name_outcome(&names_only, &who, "www.example.com", 443),
        "allow"
    );
    assert_eq!(
        name_outcome(&names_only, &who, "www.example.com", 80),
        "default"
    );
    assert_eq!(
        name_outcome(&names_only, &who, "example.org", 443),
        "default"
    );

    let with_range = rules(
        r#"
        default = "deny"
        [[rules]]
        action = "allow"
        destinations = ["198.51.100.0/24"]
        "#,
    );
    assert_eq!(name_outcome(&with_range, &who, "example.org", 443), "allow");
    let resolved = named_outcome(&with_range, &who, "example.org", "198.51.100.9:443");
    assert_eq!(resolved, "allow");
    let elsewhere = named_outcome(&with_range, &who, "example.org", "203.0.113.9:443");
    assert_eq!(elsewhere, "default");
}

#[test]
fn a_catch_all_rule_decides_every_name() {
    let rules = rules(
        r#"
        [[rules]]
        name = "no-smtp"
        action = "deny"
        ports = ["25"]
        [[rules]]
        action = "allow"
        destinations = ["10.0.0.0/8"]
        "#,
    );
    let who = anon("127.0.0.1");
    assert_eq!(name_outcome(&rules, &who, "mail.example", 25), "no-smtp");
    assert_eq!(name_outcome(&rules, &who, "mail.example", 587), "allow");
}

#[test]
fn a_name_spelling_an_address_is_decided_as_that_address() {
    let rules = rules_with(
        r#"
        [[rules]]
        name = "no-net"
        action = "deny"
        destinations = ["203.0.113.0/24"]
        "#,
        false,
        &[],
    );
    let who = anon("198.51.100.1");
    assert_eq!(name_outcome(&rules, &who, "203.0.113.5", 80), "no-net");
    assert_eq!(
        name_outcome(&rules, &who, "127.0.0.1", 80),
        "private_destinations"
    );
    assert_eq!(name_outcome(&rules, &who, "198.51.100.5", 80), "allow");
}
