//! Access rules on every datagram: a refused destination (by address, or by
//! name before any lookup) is dropped and counted under its rule on every
//! datagram, and reported once per association, while allowed destinations
//! of the same association keep working.

use ebbsocks::stats::EventFilter;

use super::*;

const RULES: &str = r#"
# The name rule first: behind an address rule, a name could still
# resolve into its range, so only a lookup could settle it.
[[access.rules]]
name = "no-udp-to-blocked"
action = "deny"
destinations = ["blocked.test"]
commands = ["udp"]

[[access.rules]]
name = "no-udp-to-2"
action = "deny"
destinations = ["127.0.0.2/32"]
commands = ["udp"]
"#;

/// Telemetry events about refusals of `destination`.
fn refusal_events(server: &TestServer, destination: &str) -> usize {
    server
        .services
        .telemetry
        .query(&EventFilter::default())
        .iter()
        .filter(|e| e.category == "access" && e.details["destination"] == destination)
        .count()
}

#[tokio::test]
async fn a_deny_rule_drops_datagrams_and_reports_each_destination_once() {
    let server = TestServer::start_toml(RULES).await;
    let (allowed, _) = echo_server("127.0.0.1").await;
    let (denied, mut denied_saw) = echo_server("127.0.0.2").await;
    let assoc = Association::open(server.addr, "127.0.0.1").await;

    for i in 0..3u8 {
        assoc.send(&atyp_for(denied), &[i]).await;
        assoc.send(&atyp_domain("blocked.test", 53), &[i]).await;
    }
    // Sent after the refused ones, echoed: those were handled by now.
    assoc.echo(allowed, b"allowed").await;

    let stats = server.services.stats.snapshot();
    assert_eq!(stats.udp.drops["denied"], 6, "{stats:#?}");
    assert_eq!(stats.access_denied.get("no-udp-to-2"), Some(&3));
    assert_eq!(stats.access_denied.get("no-udp-to-blocked"), Some(&3));
    assert_eq!(stats.udp.datagrams_client_to_remote, 1);
    assert!(denied_saw.try_recv().is_err(), "nothing reached 127.0.0.2");
    assert_eq!(refusal_events(&server, &denied.to_string()), 1);
    assert_eq!(refusal_events(&server, "blocked.test:53"), 1);

    // A second association reports the same destination again, once.
    let second = Association::open(server.addr, "127.0.0.1").await;
    second.send(&atyp_for(denied), b"again").await;
    second.echo(allowed, b"allowed too").await;
    assert_eq!(refusal_events(&server, &denied.to_string()), 2);
}
