//! The files of `docs/deploy/`, checked with the tools that read them:
//! `systemd-analyze verify` on the unit, `promtool` on the scrape
//! configuration and the alert rules (whose unit tests fire every alert),
//! and ebbsocks itself on the example configuration, whose descriptor
//! budget the unit's LimitNOFILE must hold. `.ci/run` installs systemd,
//! prometheus (promtool) and haproxy.

use std::path::{Path, PathBuf};
use std::process::Output;

use ebbsocks::config::Config;
use ebbsocks::server::fd_budget::FdBudget;

use crate::common::within;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/deploy")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(deploy_dir().join(name))
        .unwrap_or_else(|err| panic!("docs/deploy/{name}: {err}"))
}

/// Runs `program` to its end (bounded) and returns what it did.
async fn run(program: &str, args: &[&str], dir: &Path) -> Output {
    let output = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .kill_on_drop(true)
        .output();
    within(output)
        .await
        .unwrap_or_else(|err| panic!("cannot run {program} (installed by .ci/run): {err}"))
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The value of `Key=` in the unit.
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit sets no {key}"))
        .to_owned()
}

fn example_config() -> Config {
    Config::load(&deploy_dir().join("ebbsocks.toml")).expect("the example configuration loads")
}

#[tokio::test]
async fn the_unit_passes_systemd_analyze_verify() {
    // verify insists that ExecStart's program exists: point it at the
    // binary under test, and change nothing else.
    let unit = read("ebbsocks@.service")
        .replace("/usr/local/bin/ebbsocks", env!("CARGO_BIN_EXE_ebbsocks"));
    let dir = std::env::temp_dir().join(format!("ebbsocks-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("ebbsocks@.service"), unit).expect("write unit");
    let output = run("systemd-analyze", &["verify", "./ebbsocks@.service"], &dir).await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert_success("systemd-analyze verify", &output);
    // It reports some problems (an unparsable value) only as messages.
    assert!(
        output.stdout.is_empty() && output.stderr.is_empty(),
        "systemd-analyze verify complained:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_units_limits_fit_the_example_configuration() {
    let unit = read("ebbsocks@.service");
    let config = example_config();
    let budget = FdBudget::for_config(&config).total();
    let limit: u64 = unit_value(&unit, "LimitNOFILE").parse().expect("a number");
    assert!(
        limit >= budget,
        "LimitNOFILE={limit} is below the {budget} descriptors needed"
    );
    // The figure the unit's comment quotes is the one the code computes.
    let quoted = format!("{},{:03}", budget / 1000, budget % 1000);
    assert!(
        unit.contains(&quoted),
        "the unit should quote {quoted} descriptors"
    );
    // systemd must let the drain finish before it kills.
    let stop: u64 = unit_value(&unit, "TimeoutStopSec")
        .strip_suffix('s')
        .and_then(|secs| secs.parse().ok())
        .expect("TimeoutStopSec in seconds");
    assert!(stop > config.server.shutdown_grace_secs);
}

#[tokio::test]
async fn the_example_configuration_passes_check_config() {
    // What the unit's ExecStartPre runs.
    let output = run(
        env!("CARGO_BIN_EXE_ebbsocks"),
        &["check-config", "ebbsocks.toml"],
        &deploy_dir(),
    )
    .await;
    assert_success("ebbsocks check-config", &output);
    let config = example_config();
    assert!(config.server.reuse_port);
    assert!(!config.server.proxy_protocol.trusted.is_empty());
}

#[tokio::test]
async fn promtool_accepts_the_scrape_configuration_and_the_rules() {
    // The scrape configuration names a token file beside it, which the
    // operator writes; promtool checks that it exists.
    let dir = std::env::temp_dir().join(format!("ebbsocks-prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for name in ["prometheus.yml", "alerts.yml", "alerts_test.yml"] {
        std::fs::write(dir.join(name), read(name)).expect("copy");
    }
    std::fs::write(dir.join("ebbsocks.token"), "change-me\n").expect("token");
    let config = run("promtool", &["check", "config", "prometheus.yml"], &dir).await;
    let rules = run("promtool", &["check", "rules", "alerts.yml"], &dir).await;
    let fired = run("promtool", &["test", "rules", "alerts_test.yml"], &dir).await;
    std::fs::remove_dir_all(&dir).expect("cleanup");
    assert_success("promtool check config", &config);
    assert_success("promtool check rules", &rules);
    assert_success("promtool test rules", &fired);
}

#[tokio::test]
async fn haproxy_accepts_the_balancer_configuration() {
    // `-c` only checks: it binds none of these addresses.
    let output = tokio::process::Command::new("haproxy")
        .args(["-c", "-f", "haproxy.cfg"])
        .current_dir(deploy_dir())
        .env("EBBSOCKS_FRONTEND", "127.0.0.1:1080")
        .env("EBBSOCKS_1", "127.0.0.1:1081")
        .env("EBBSOCKS_2", "127.0.0.1:1082")
        .kill_on_drop(true)
        .output();
    let output = within(output)
        .await
        .unwrap_or_else(|err| panic!("cannot run haproxy (installed by .ci/run): {err}"));
    assert_success("haproxy -c", &output);
}
