use std::path::{Path, PathBuf};

use super::*;

const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$YqTmBq5dNfMtbYsxVb4B0PR8qUHvTGsT7dM3mS6Yd2Q";

fn config(text: &str) -> Config {
    Config::from_toml(text, Path::new("test.toml")).expect("valid test config")
}

fn users(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("[[auth.users]]\nusername = \"{name}\"\npassword_hash = \"{HASH}\"\n"))
        .collect()
}

fn plan_of(running: &str, loaded: &str) -> Plan {
    plan(&config(running), &config(loaded), Path::new("test.toml")).expect("a plan")
}

#[test]
fn the_same_file_changes_nothing() {
    let text = format!(
        "[server]\nmax_connections = 7\n[auth]\nmethod = \"userpass\"\n{}",
        users(&["alice"])
    );
    assert!(plan_of(&text, &text).is_empty());
}

#[test]
fn every_valid_fixture_survives_the_comparison_unchanged() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/valid");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("fixture directory") {
        let path = entry.expect("entry").path();
        let loaded = Config::load(&path).expect("valid fixture");
        let plan = plan(&loaded, &loaded, &path).expect("a plan");
        assert!(plan.is_empty(), "{}: {plan:?}", path.display());
        // What is put in force is the file, value for value.
        assert_eq!(
            serde_json::to_value(&plan.next).expect("json"),
            serde_json::to_value(&loaded).expect("json"),
            "{}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 3, "valid fixtures are missing");
}

#[test]
fn users_rules_limits_timeouts_level_and_token_change_in_place() {
    let running = format!(
        "[auth]\nmethod = \"userpass\"\n{}\n[api]\nenabled = true\n",
        users(&["alice", "bob"])
    );
    let loaded = format!(
        "[server]\nmax_connections = 5\nidle_timeout_secs = 30\n\
         [logging]\nlevel = \"debug\"\n\
         [auth]\nmethod = \"userpass\"\n{}\n\
         [api]\nenabled = true\ntoken = \"new\"\n\
         [access]\nmax_sessions_per_user = 3\n\
         [[access.rules]]\naction = \"deny\"\nports = [\"25\"]\n",
        users(&["alice"])
    );
    let plan = plan_of(&running, &loaded);
    assert_eq!(
        plan.changed,
        [
            "access.max_sessions_per_user",
            "access.rules",
            "api.token",
            "auth.users",
            "logging.level",
            "server.idle_timeout_secs",
            "server.max_connections",
        ]
    );
    assert!(plan.restart_needed.is_empty(), "{:?}", plan.restart_needed);
    assert_eq!(plan.next.server.max_connections, 5);
    assert_eq!(plan.next.auth.users.len(), 1);
    assert_eq!(
        plan.next.api.token.as_ref().map(|t| t.expose()),
        Some("new")
    );
}

#[test]
fn restart_keys_are_reported_and_keep_their_running_values() {
    let running = "[server]\nlisten = \"127.0.0.1:1080\"\n[memory]\ndirty_decay_ms = 1000\n";
    let loaded = "[server]\nlisten = \"127.0.0.1:1081\"\nmax_connections = 9\n\
                  [memory]\ndirty_decay_ms = 50\n[logging]\nformat = \"json\"\n\
                  [api]\nlisten = \"127.0.0.1:9999\"\n";
    let plan = plan_of(running, loaded);
    assert_eq!(plan.changed, ["server.max_connections"]);
    assert_eq!(
        plan.restart_needed,
        [
            "api.listen",
            "logging.format",
            "memory.dirty_decay_ms",
            "server.listen"
        ]
    );
    assert_eq!(plan.next.server.listen.port(), 1080);
    assert_eq!(plan.next.api.listen.port(), 9090);
    assert_eq!(plan.next.memory.dirty_decay_ms, 1000);
    assert_eq!(plan.next.logging.format, crate::config::LogFormat::Text);
    assert_eq!(plan.next.server.max_connections, 9);
}

#[test]
fn pool_settings_change_in_place() {
    let plan = plan_of("", "[server.pool]\nmax_idle_per_dest = 2\n");
    assert_eq!(plan.changed, ["server.pool.max_idle_per_dest"]);
    assert!(plan.restart_needed.is_empty());
    assert_eq!(plan.next.server.pool.max_idle_per_dest, 2);
}

#[test]
fn an_optional_key_can_be_set_and_unset() {
    let with = "[server]\nexternal_address = \"192.0.2.7\"\n";
    let set = plan_of("", with);
    assert_eq!(set.changed, ["server.external_address"]);
    assert!(set.next.server.external_address.is_some());
    let unset = plan_of(with, "");
    assert_eq!(unset.changed, ["server.external_address"]);
    assert!(unset.next.server.external_address.is_none());
}

#[test]
fn an_unset_optional_restart_key_is_removed_again() {
    let mut running = serde_json::json!({"api": {"listen": "x"}});
    let mut next = serde_json::json!({"api": {"listen": "y", "token": "t"}});
    keep_running_value(&mut next, &running, "api.token");
    keep_running_value(&mut next, &running, "api.listen");
    assert_eq!(next, serde_json::json!({"api": {"listen": "x"}}));
    // A table the running side lacks is left alone.
    keep_running_value(&mut running, &serde_json::json!({}), "memory.log_step");
    assert_eq!(running, serde_json::json!({"api": {"listen": "x"}}));
}

#[test]
fn a_restart_key_matches_whole_names_only() {
    assert!(needs_restart("server.listen"));
    assert!(needs_restart("memory.log_step"));
    assert!(needs_restart("server.proxy_protocol.trusted"));
    assert!(!needs_restart("server.listen_backlog"));
    assert!(!needs_restart("memory_extra"));
    assert!(!needs_restart("server.max_connections"));
    assert_eq!(
        restart_reason("api.listen"),
        Some("the API listener is bound at startup")
    );
}

#[test]
fn a_change_that_is_unsafe_with_the_running_listener_is_refused() {
    // Running on a public address with passwords; the new file drops
    // authentication and listens on loopback. The listener cannot move
    // without a restart, so that would make an open proxy.
    let running = format!(
        "[server]\nlisten = \"0.0.0.0:1080\"\n[auth]\nmethod = \"userpass\"\n{}",
        users(&["alice"])
    );
    let loaded = "[server]\nlisten = \"127.0.0.1:1080\"\n";
    let err = plan(&config(&running), &config(loaded), Path::new("new.toml")).expect_err("refused");
    assert!(err.contains("new.toml"), "{err}");
    assert!(err.contains("key `server.listen`"), "{err}");
    assert!(err.contains("needs a restart"), "{err}");
}
