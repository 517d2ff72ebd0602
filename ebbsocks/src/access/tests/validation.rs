//! What a mistyped `[access]` section is told.

use super::*;

fn rule_with(field_line: &str) -> String {
    format!("[[rules]]\naction = \"allow\"\n[[rules]]\naction = \"deny\"\n{field_line}\n")
}

#[test]
fn each_mistake_names_its_key_and_what_is_wrong() {
    let table = [
        (
            r#"destinations = ["10.1.2.3/8"]"#,
            "access.rules[1].destinations: \"10.1.2.3/8\" has host bits set; the network is \"10.0.0.0/8\"",
        ),
        (r#"clients = ["10.0.0.0/40"]"#, "access.rules[1].clients: \"10.0.0.0/40\": prefix length 40"),
        (r#"ports = ["0"]"#, "access.rules[1].ports: \"0\": port 0"),
        (r#"ports = ["100-10"]"#, "access.rules[1].ports: \"100-10\": the range is reversed; write \"10-100\""),
        (r#"ports = ["http"]"#, "access.rules[1].ports: \"http\" is not a port"),
        (r#"ports = ["65536"]"#, "is not a port"),
        (r#"ports = ["1-"]"#, "is not a port"),
        (r#"commands = ["associate"]"#, "access.rules[1].commands: unknown command \"associate\""),
        (r#"users = ["mallory"]"#, "access.rules[1].users: unknown user \"mallory\""),
        (r#"users = []"#, "access.rules[1].users: an empty list matches nothing"),
        (r#"clients = []"#, "access.rules[1].clients: an empty list"),
        (r#"destinations = []"#, "leave `destinations` out to match any destination"),
        (r#"ports = []"#, "access.rules[1].ports: an empty list"),
        (r#"commands = []"#, "access.rules[1].commands: an empty list"),
        (r#"destinations = ["*"]"#, "a wildcard needs a parent name"),
        (r#"destinations = ["a.*.example"]"#, "`*` may only stand alone as the first label"),
        (r#"destinations = ["*web.example"]"#, "`*` may only stand alone"),
        (r#"destinations = ["**.example"]"#, "`*` may only stand alone"),
        (r#"destinations = ["bad_name!.example"]"#, "not a valid host name"),
        (r#"destinations = ["a..example"]"#, "an empty label"),
        (r#"destinations = ["10.0.0.256"]"#, "looks like an IP address"),
        (r#"destinations = ["example.com:443"]"#, "ports belong in `ports`"),
        (r#"destinations = [""]"#, "not a valid host name: it is empty"),
        (r#"name = """#, "access.rules[1].name: must not be empty"),
        (r##"name = "#3""##, "access.rules[1].name: \"#3\" is reserved"),
        (r#"name = "default""#, "is reserved"),
    ];
    for (line, expected) in table {
        let err = compile_error(&rule_with(line));
        assert!(err.contains(expected), "{line}: {err:?} lacks {expected:?}");
    }
}

#[test]
fn duplicate_rule_names_are_refused() {
    let err = compile_error(
        r#"
        [[rules]]
        name = "web"
        action = "allow"
        [[rules]]
        name = "web"
        action = "deny"
        "#,
    );
    assert!(
        err.starts_with("access.rules[1].name: \"web\" is already"),
        "{err}"
    );
}

#[test]
fn users_need_auth_users() {
    let config = parse("[[rules]]\naction = \"deny\"\nusers = [\"alice\"]\n");
    let err = AccessRules::compile(&config, &[], true, &[]).expect_err("no users known");
    assert_eq!(err.key, "access.rules[0].users");
    assert!(
        err.message.contains("[auth] has no users"),
        "{}",
        err.message
    );

    let per_user = parse("max_sessions_per_user = 4");
    let err = AccessRules::compile(&per_user, &[], true, &[]).expect_err("no users known");
    assert_eq!(err.key, "access.max_sessions_per_user");
    assert!(AccessRules::compile(&per_user, &USERS, true, &[]).is_ok());
}

#[test]
fn well_formed_entries_compile() {
    let rules = rules(
        r#"
        max_sessions_per_client = 8
        [[rules]]
        name = "ok"
        action = "deny"
        users = ["alice"]
        clients = ["10.0.0.0/8", "::1", "::ffff:192.168.0.0/112"]
        destinations = ["2001:db8::/32", "198.51.100.7", "_srv.example", "*.x-y.example.", "*.com"]
        ports = ["1", "65535", "8000 - 8100"]
        commands = ["connect", "bind", "udp"]
        "#,
    );
    let who = as_user("192.168.3.4", "alice");
    assert_eq!(
        named_outcome(&rules, &who, "a.com", "203.0.113.1:8050"),
        "ok"
    );
}
