//! The live dashboard: one HTML page, its script and its stylesheet,
//! compiled into the binary. They hold no data, so they are served without
//! the token; the script reads the JSON API, which keeps its token rules,
//! with a token the user types into the page.
//!
//! Every response carries a Content-Security-Policy that lets the page load
//! only these files and talk only to this origin: no CDN, no inline script,
//! nothing that could send the token elsewhere.

use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// Where the page's own files are served.
pub const SCRIPT_PATH: &str = "/dashboard/app.js";
pub const STYLE_PATH: &str = "/dashboard/style.css";

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// `GET /` and `GET /dashboard` serve the page; the script and stylesheet
/// live under `/dashboard/`.
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/dashboard",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            SCRIPT_PATH,
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            STYLE_PATH,
            get(|| async { page(STYLE_CSS, "text/css; charset=utf-8") }),
        )
}

fn page(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            // A new binary may ship a new page: always ask.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page must work with no network beyond this origin: no absolute
    /// URL may be loaded by the markup, the stylesheet or the script.
    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for (name, text) in [
            ("index.html", INDEX_HTML),
            ("app.js", APP_JS),
            ("style.css", STYLE_CSS),
        ] {
            let lower = text.to_ascii_lowercase();
            for pattern in [
                "src=\"http",
                "href=\"http",
                "src=\"//",
                "href=\"//",
                "url(",
                "@import",
                "fetch(\"http",
            ] {
                assert!(!lower.contains(pattern), "{name} contains {pattern:?}");
            }
        }
        assert!(INDEX_HTML.contains(&format!("src=\"{SCRIPT_PATH}\"")));
        assert!(INDEX_HTML.contains(&format!("href=\"{STYLE_PATH}\"")));
    }

    /// The token input has no `name`, and the form is never submitted, so
    /// the browser cannot put the token into a query string.
    #[test]
    fn the_token_never_goes_into_a_url() {
        let input = INDEX_HTML
            .lines()
            .find(|line| line.contains("id=\"token\""))
            .expect("token input");
        assert!(!input.contains("name="), "{input}");
        assert!(APP_JS.contains("event.preventDefault()"));
        assert!(!APP_JS.contains("?token"));
        assert!(CONTENT_SECURITY_POLICY.contains("form-action 'none'"));
    }
}
