//! The dashboard page: served without the token, its data only with it,
//! and, in a real headless Chromium, numbers and charts that follow the
//! server's connections.

mod webdriver;

use std::net::SocketAddr;
use std::time::Duration;

use ebbsocks::api::ServeOptions;
use ebbsocks::config::Secret;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::api::{get_json, start_api_with};
use crate::common::http::request;
use crate::common::upstreams::echo_server;
use crate::common::*;
use webdriver::Browser;

const TOKEN: &str = "dash-s3cret";
/// How long the page may take to show a change: one poll is a second, a
/// loaded machine may make it several.
const PAGE_DEADLINE: Duration = Duration::from_secs(20);

fn with_token() -> ServeOptions {
    ServeOptions {
        token: Some(Secret::new(TOKEN)),
        ..ServeOptions::default()
    }
}

/// A plain GET; returns the status line's code, the head and the body.
async fn get_raw(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let response = request(addr, "GET", path, &[]).await;
    (response.status, response.head, response.body)
}

#[tokio::test]
async fn the_page_is_served_without_the_token_and_the_data_is_not() {
    let server = TestServer::start_toml("").await;
    let api = start_api_with(&server, with_token()).await;
    for path in ["/", "/dashboard"] {
        let (status, head, body) = get_raw(api, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(head.contains("content-type: text/html"), "{head}");
        assert!(head.contains("content-security-policy: default-src 'none'"));
        assert!(body.contains("<title>ebbsocks dashboard</title>"));
    }
    let (status, head, body) = get_raw(api, "/dashboard/app.js").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(body.contains("Authorization"));
    let (status, head, _) = get_raw(api, "/dashboard/style.css").await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/css"), "{head}");

    // The data the page reads keeps the token rule.
    for path in ["/api/stats", "/api/memory", "/api/pool/stats"] {
        assert_eq!(get_json(api, path, None).await.0, 401, "{path}");
        assert_eq!(get_json(api, path, Some(TOKEN)).await.0, 200, "{path}");
    }
    // Unknown files under /dashboard/ are the API's usual JSON 404.
    let (status, body): (u16, Value) = get_json(api, "/dashboard/other.js", None).await;
    assert_eq!((status, body["error"].is_string()), (404, true));
}

/// The numbers on the page: `#open-connections` as a number, if shown.
fn open_connections(browser: &Browser) -> Option<u64> {
    browser.text_of("#open-connections").trim().parse().ok()
}

/// The connections chart: (samples drawn, largest value, the open
/// connections line's points).
fn connections_chart(browser: &Browser) -> (u64, f64, String) {
    let value = browser.execute(
        "const svg = document.getElementById('chart-connections');
         const line = svg.querySelector('polyline[data-series=open]');
         return [Number(svg.dataset.samples || 0), Number(svg.dataset.max || 0),
                 line ? line.getAttribute('points') : ''];",
    );
    (
        value[0].as_u64().unwrap_or(0),
        value[1].as_f64().unwrap_or(0.0),
        value[2].as_str().unwrap_or_default().to_owned(),
    )
}

/// Chromium loads the page, is refused data without the token, is given
/// the token through the form, then shows five SOCKS sessions opening and
/// closing: the count and the chart follow.
#[test]
fn chromium_shows_connections_come_and_go() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(TestServer::start_toml(""));
    let api = runtime.block_on(start_api_with(&server, with_token()));
    let echo = runtime.block_on(echo_server("127.0.0.1:0"));

    let browser = Browser::start();
    browser.goto(&format!("http://{api}/dashboard"));
    browser.wait_for(
        "the page to say it needs a token",
        PAGE_DEADLINE,
        |b| b.text_of("#status"),
        |status| status.contains("needs a token"),
    );
    assert_eq!(open_connections(&browser), None, "no data without a token");

    browser.type_into("#token", TOKEN);
    browser.click("#connect");
    browser.wait_for(
        "the page to go live with 0 open connections",
        PAGE_DEADLINE,
        |b| (b.text_of("#status"), open_connections(b)),
        |(status, open)| status.starts_with("live") && *open == Some(0),
    );
    assert!(
        !browser.current_url().contains(TOKEN),
        "the token must not be in the URL"
    );
    let (_, _, flat) = browser.wait_for(
        "two samples in the connections chart",
        PAGE_DEADLINE,
        connections_chart,
        |(samples, _, _)| *samples >= 2,
    );

    let sessions: Vec<TcpStream> = runtime.block_on(async {
        let mut sessions = Vec::new();
        for _ in 0..5 {
            sessions.push(socks5_connect(server.addr, echo).await);
        }
        sessions
    });
    browser.wait_for(
        "the page to show 5 open connections",
        PAGE_DEADLINE,
        open_connections,
        |open| *open == Some(5),
    );
    let (_, max, points) = browser.wait_for(
        "the connections chart to reach 5",
        PAGE_DEADLINE,
        connections_chart,
        |(_, max, _)| *max >= 5.0,
    );
    assert_ne!(points, flat, "the open connections line must change");
    assert!(max < 6.0, "five sessions drawn as {max}");
    assert_eq!(browser.text_of("#sessions-active").trim(), "5");

    runtime.block_on(async move { drop(sessions) });
    browser.wait_for(
        "the page to show 0 open connections again",
        PAGE_DEADLINE,
        open_connections,
        |open| *open == Some(0),
    );
    // The memory chart is drawn from /api/memory's readings.
    let rss_points = browser.execute(
        "const line = document.querySelector('#chart-memory polyline[data-series=rss]');
         return line ? line.getAttribute('points') : '';",
    );
    assert!(
        rss_points.as_str().is_some_and(|p| p.contains(',')),
        "RSS line: {rss_points}"
    );
    drop(browser);
    drop(server);
}
