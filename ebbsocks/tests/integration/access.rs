//! Access rules on the CONNECT path, against the real server: refusals by
//! destination address, name, port, user and client address; names with a
//! denied and an allowed address; the safe defaults off loopback; the
//! proxy's own ports; SOCKS4; curl.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ebbsocks::config::Config;
use ebbsocks::server::Services;
use ebbsocks::upstream::resolve::Resolver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::common::upstreams::{echo_server, http_server};
use crate::common::*;

fn config(toml: &str) -> Config {
    Config::from_toml(toml, std::path::Path::new("test.toml")).expect("valid test config")
}

/// A listener on `bind` that counts the connections it accepts.
async fn counting_listener(bind: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(bind).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (addr, accepted)
}

/// The reply code of a no-auth SOCKS5 CONNECT with these ATYP bytes.
async fn connect_code(proxy: SocketAddr, atyp: &[u8]) -> u8 {
    socks5_connect_raw(proxy, atyp).await.1
}

fn denied(server: &TestServer, rule: &str) -> u64 {
    let snapshot = server.services.stats.snapshot();
    snapshot.access_denied.get(rule).copied().unwrap_or(0)
}

#[tokio::test]
async fn denied_address_gets_0x02_and_never_reaches_the_network() {
    let (target, accepted) = counting_listener("127.0.0.1:0".parse().expect("addr")).await;
    let server = TestServer::start_toml(
        "[[access.rules]]\nname = \"no-loopback-1\"\naction = \"deny\"\n\
         destinations = [\"127.0.0.1/32\"]\n",
    )
    .await;
    assert_eq!(connect_code(server.addr, &atyp_for(target)).await, 0x02);
    // The same rule holds for the IPv4-mapped IPv6 spelling.
    let mapped = SocketAddr::new(
        IpAddr::V6(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
        target.port(),
    );
    assert_eq!(connect_code(server.addr, &atyp_for(mapped)).await, 0x02);
    assert_eq!(denied(&server, "no-loopback-1"), 2);
    // An allowed request after them proves the server is still serving,
    // and that nothing was sent to the denied destination before it.
    let echo = echo_server("127.0.0.2:0").await;
    let _ok = socks5_connect(server.addr, echo).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a denied CONNECT was dialled"
    );
    let events = server.services.telemetry.query(&Default::default());
    assert!(
        events
            .iter()
            .any(|e| e.category == "access" && e.details["rule"] == "no-loopback-1"),
        "no telemetry event for the refusal: {events:?}"
    );
}

#[tokio::test]
async fn denied_names_are_refused_before_resolving_and_addresses_still_work() {
    let echo = echo_server("127.0.0.1:0").await;
    // The names resolve to the echo server, so only the rules can refuse.
    let resolver = Resolver::from_system()
        .with_fixed("db.corp.example", vec![[127, 0, 0, 1].into()])
        .with_fixed("deep.db.corp.example", vec![[127, 0, 0, 1].into()])
        .with_fixed("corp.example", vec![[127, 0, 0, 1].into()]);
    let services = Services::with_resolver(
        config(
            "[[access.rules]]\nname = \"corp\"\naction = \"deny\"\n\
             destinations = [\"*.corp.example\"]\n",
        ),
        resolver,
    );
    let server = TestServer::start_with(services).await;
    for name in ["db.corp.example", "DEEP.db.corp.example."] {
        let code = connect_code(server.addr, &atyp_domain(name, echo.port())).await;
        assert_eq!(code, 0x02, "{name}");
    }
    // The wildcard does not cover the parent name itself, nor the address.
    let code = connect_code(server.addr, &atyp_domain("corp.example", echo.port())).await;
    assert_eq!(code, 0x00);
    assert_eq!(connect_code(server.addr, &atyp_for(echo)).await, 0x00);
    assert_eq!(denied(&server, "corp"), 2);
}

#[tokio::test]
async fn denied_port_is_refused_and_other_ports_are_not() {
    let blocked = echo_server("127.0.0.1:0").await;
    let open = echo_server("127.0.0.1:0").await;
    let server = TestServer::start_toml(&format!(
        "[[access.rules]]\naction = \"deny\"\nports = [\"{}\"]\n",
        blocked.port()
    ))
    .await;
    assert_eq!(connect_code(server.addr, &atyp_for(blocked)).await, 0x02);
    assert_eq!(connect_code(server.addr, &atyp_for(open)).await, 0x00);
    // A rule without a name is counted under its index.
    assert_eq!(denied(&server, "#0"), 1);
}

#[tokio::test]
async fn denied_client_address_is_refused() {
    let echo = echo_server("127.0.0.1:0").await;
    let server = TestServer::start_toml(
        "[[access.rules]]\nname = \"not-from-2\"\naction = \"deny\"\n\
         clients = [\"127.0.0.2/32\"]\n",
    )
    .await;
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind the client to 127.0.0.2");
    let mut from_two = within(socket.connect(server.addr)).await.expect("connect");
    assert_eq!(
        greet(&mut from_two, &[0x05, 0x01, 0x00]).await,
        [0x05, 0x00]
    );
    let mut request = vec![0x05, 0x01, 0x00];
    request.extend_from_slice(&atyp_for(echo));
    within(from_two.write_all(&request)).await.expect("request");
    assert_eq!(read_reply(&mut from_two).await.0, 0x02);
    // The same request from 127.0.0.1 is allowed.
    assert_eq!(connect_code(server.addr, &atyp_for(echo)).await, 0x00);
    assert_eq!(denied(&server, "not-from-2"), 1);
}

#[tokio::test]
async fn denied_user_is_refused_and_other_users_are_not() {
    let echo = echo_server("127.0.0.1:0").await;
    let hash = ebbsocks::auth::hash_password("looking-glass").expect("hash");
    let server = TestServer::start_toml(&format!(
        "{}[[auth.users]]\nusername = \"bob\"\npassword_hash = \"{hash}\"\n\
         [[access.rules]]\nname = \"not-bob\"\naction = \"deny\"\nusers = [\"bob\"]\n",
        alice_auth()
    ))
    .await;
    let bob = login_connect_as(server.addr, "bob", "looking-glass", &atyp_for(echo)).await;
    assert_eq!(bob, 0x02);
    assert_eq!(login_connect(server.addr, &atyp_for(echo)).await, 0x00);
    assert_eq!(denied(&server, "not-bob"), 1);
}

#[tokio::test]
async fn a_name_with_a_denied_address_connects_to_its_allowed_one() {
    let echo = echo_server("127.0.0.1:0").await;
    // The denied address listens on the same port, so a connect to it
    // would succeed: only the rules keep the session away from it.
    let (decoy, decoy_accepts) =
        counting_listener(SocketAddr::from(([127, 0, 0, 2], echo.port()))).await;
    let resolver = Resolver::from_system()
        .with_fixed("two.test", vec![decoy.ip(), echo.ip()])
        .with_fixed("decoy.test", vec![decoy.ip()]);
    let services = Services::with_resolver(
        config("[[access.rules]]\nname = \"decoy\"\naction = \"deny\"\ndestinations = [\"127.0.0.2/32\"]\n"),
        resolver,
    );
    let server = TestServer::start_with(services).await;
    let (mut stream, code, _) =
        socks5_connect_raw(server.addr, &atyp_domain("two.test", echo.port())).await;
    assert_eq!(code, 0x00);
    within(stream.write_all(b"ping")).await.expect("write");
    let mut back = [0u8; 4];
    within(stream.read_exact(&mut back)).await.expect("echo");
    assert_eq!(&back, b"ping");
    // A name whose every address is denied is refused with 0x02.
    let code = connect_code(server.addr, &atyp_domain("decoy.test", echo.port())).await;
    assert_eq!(code, 0x02);
    assert_eq!(decoy_accepts.load(Ordering::SeqCst), 0);
    assert_eq!(denied(&server, "decoy"), 1);
}

#[tokio::test]
async fn socks4_refusals_are_0x5b() {
    let echo = echo_server("127.0.0.1:0").await;
    let server = TestServer::start_toml("[access]\ndefault = \"deny\"\n").await;
    let mut stream = server.connect().await;
    let SocketAddr::V4(v4) = echo else {
        unreachable!("bound to IPv4")
    };
    let mut request = vec![0x04, 0x01];
    request.extend_from_slice(&v4.port().to_be_bytes());
    request.extend_from_slice(&v4.ip().octets());
    request.push(0);
    within(stream.write_all(&request)).await.expect("request");
    let mut reply = [0u8; 8];
    within(stream.read_exact(&mut reply)).await.expect("reply");
    assert_eq!(reply[1], 0x5B);
    assert_eq!(denied(&server, "default"), 1);
}

/// Runs curl through `proxy` to `url`; returns (exit code, stdout, stderr).
async fn curl(proxy: SocketAddr, url: &str) -> (i32, String, String) {
    let output = within(
        tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "--socks5-hostname"])
            .arg(proxy.to_string())
            .arg(url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|err| panic!("cannot run curl (installed by .ci/run): {err}"));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn curl_fetches_what_the_rules_allow_and_reports_what_they_refuse() {
    let allowed = http_server("allowed page").await;
    let refused = http_server("secret page").await;
    let server = TestServer::start_toml(&format!(
        "[access]\ndefault = \"deny\"\n[[access.rules]]\nname = \"web\"\naction = \"allow\"\n\
         destinations = [\"localhost\"]\nports = [\"{}\"]\n",
        allowed.port()
    ))
    .await;
    let (code, body, _) = curl(
        server.addr,
        &format!("http://localhost:{}/", allowed.port()),
    )
    .await;
    assert_eq!((code, body.as_str()), (0, "allowed page"));
    let (code, body, stderr) = curl(
        server.addr,
        &format!("http://localhost:{}/", refused.port()),
    )
    .await;
    // 97 is curl's "proxy handshake error"; Debian 12's curl names the
    // SOCKS5 reply code (2, "connection not allowed by ruleset") in
    // parentheses, newer releases spell it out.
    assert_eq!(code, 97, "curl: {stderr}");
    assert!(body.is_empty(), "curl fetched a refused page: {body}");
    assert!(
        stderr.contains("(2)") || stderr.to_lowercase().contains("not allowed"),
        "curl should report the ruleset refusal: {stderr}"
    );
    assert_eq!(denied(&server, "default"), 1);
}

#[tokio::test]
async fn private_destinations_auto_depends_on_the_listen_address() {
    let echo = echo_server("127.0.0.1:0").await;
    let auth = alice_auth();
    // On loopback, "auto" allows loopback destinations...
    let local = TestServer::start_toml(auth).await;
    assert_eq!(login_connect(local.addr, &atyp_for(echo)).await, 0x00);
    // ...listening on every interface, it refuses them, in every spelling.
    let public = config(&format!("[server]\nlisten = \"0.0.0.0:0\"\n{auth}"));
    let server =
        TestServer::start_on("0.0.0.0:0".parse().expect("addr"), Services::new(public)).await;
    let mapped = SocketAddr::new(
        IpAddr::V6(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
        echo.port(),
    );
    for target in [echo, mapped] {
        assert_eq!(
            login_connect(server.addr, &atyp_for(target)).await,
            0x02,
            "{target}"
        );
    }
    for name in ["localhost", "127.0.0.1"] {
        let code = login_connect(server.addr, &atyp_domain(name, echo.port())).await;
        assert_eq!(code, 0x02, "{name}");
    }
    assert_eq!(denied(&server, "private_destinations"), 4);
}

#[tokio::test]
async fn an_explicit_address_rule_opens_a_private_range() {
    let echo = echo_server("127.0.0.1:0").await;
    let public = config(&format!(
        "[server]\nlisten = \"0.0.0.0:0\"\n{}\n[[access.rules]]\naction = \"allow\"\n\
         destinations = [\"127.0.0.1/32\"]\n",
        alice_auth()
    ));
    let server =
        TestServer::start_on("0.0.0.0:0".parse().expect("addr"), Services::new(public)).await;
    assert_eq!(login_connect(server.addr, &atyp_for(echo)).await, 0x00);
}

#[tokio::test]
async fn the_proxy_and_its_api_are_unreachable_through_a_public_proxy() {
    // Private destinations allowed, so only the own-address guard stands
    // between a client and the proxy's own ports.
    let public = config(&format!(
        "[server]\nlisten = \"0.0.0.0:0\"\n{}\n[access]\nprivate_destinations = \"allow\"\n",
        alice_auth()
    ));
    let services = Services::new(public);
    let api_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind api");
    let api_addr = api_listener.local_addr().expect("addr");
    let state = ebbsocks::api::ApiState {
        stats: services.stats.clone(),
        telemetry: services.telemetry.clone(),
        pool: services.pool.clone(),
        memory: services.memory.clone(),
    };
    tokio::spawn(ebbsocks::api::serve(
        api_listener,
        state,
        None,
        std::future::pending(),
    ));
    services.add_own_address(api_addr);
    let server = TestServer::start_on("0.0.0.0:0".parse().expect("addr"), services).await;
    assert_eq!(login_connect(server.addr, &atyp_for(api_addr)).await, 0x02);
    assert_eq!(
        login_connect(server.addr, &atyp_for(server.addr)).await,
        0x02
    );
    assert_eq!(denied(&server, "own_address"), 2);
    // Other loopback services stay reachable under this setting.
    let echo = echo_server("127.0.0.1:0").await;
    assert_eq!(login_connect(server.addr, &atyp_for(echo)).await, 0x00);
}

/// `[auth]` with one user, alice / wonderland (hashed once for all tests).
fn alice_auth() -> &'static str {
    static AUTH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    AUTH.get_or_init(|| {
        let hash = ebbsocks::auth::hash_password("wonderland").expect("hash");
        format!(
            "[auth]\nmethod = \"userpass\"\n[[auth.users]]\nusername = \"alice\"\npassword_hash = \"{hash}\"\n"
        )
    })
}

/// Logs in as alice and sends a CONNECT; returns the reply code.
async fn login_connect(proxy: SocketAddr, atyp: &[u8]) -> u8 {
    login_connect_as(proxy, "alice", "wonderland", atyp).await
}

/// Logs in as `user` and sends a CONNECT; returns the reply code.
async fn login_connect_as(proxy: SocketAddr, user: &str, pass: &str, atyp: &[u8]) -> u8 {
    let mut stream = within(TcpStream::connect(proxy)).await.expect("connect");
    assert_eq!(greet(&mut stream, &[0x05, 0x01, 0x02]).await, [0x05, 0x02]);
    assert_eq!(
        send_login(&mut stream, user, pass).await,
        0x00,
        "login failed"
    );
    let mut request = vec![0x05, 0x01, 0x00];
    request.extend_from_slice(atyp);
    within(stream.write_all(&request)).await.expect("request");
    read_reply(&mut stream).await.0
}
