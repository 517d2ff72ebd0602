//! What every API request passes before a handler: size caps, the bearer
//! token, and the rule that every error is JSON, whoever produced it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::config::Secret;
use crate::reload::Reloader;

/// Request line plus headers, as counted by [`head_size`]. Generous for any
/// client of this API (no route takes a body); a bigger head is refused with `431`.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// An error as `{"error": "..."}` with its status code.
#[derive(Debug)]
pub(super) struct ApiError(pub(super) StatusCode, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// No route takes a body (`POST /api/reload` has none): a request with a
/// body or an oversized head is refused before any handler runs, and its
/// body is never read.
pub(super) async fn limit_size(request: Request, next: Next) -> Response {
    let declares_body = request.headers().contains_key(header::TRANSFER_ENCODING)
        || request
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|len| len.as_bytes() != b"0");
    if declares_body {
        return ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the API takes no request body".into(),
        )
        .into_response();
    }
    let size = head_size(&request);
    if size > MAX_HEAD_BYTES {
        return ApiError(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("request head of {size} bytes is over the limit of {MAX_HEAD_BYTES}"),
        )
        .into_response();
    }
    next.run(request).await
}

/// About the bytes of the request line and headers on the wire.
fn head_size(request: &Request) -> usize {
    let line = request.method().as_str().len() + request.uri().to_string().len() + 12;
    line + headers_size(request.headers())
}

fn headers_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// Where the token comes from.
#[derive(Debug, Clone)]
pub(super) enum TokenCheck {
    /// Set when the API started.
    Fixed(Option<Arc<Secret>>),
    /// The configuration in force, which a reload may change.
    Live(Arc<Reloader>),
}

impl TokenCheck {
    /// Whether a request may ever need a token.
    pub(super) fn may_require(&self) -> bool {
        !matches!(self, TokenCheck::Fixed(None))
    }

    fn current(&self) -> Option<Arc<Secret>> {
        match self {
            TokenCheck::Fixed(token) => token.clone(),
            TokenCheck::Live(reloader) => reloader.api_token().map(Arc::new),
        }
    }
}

/// Requires `Authorization: Bearer <token>` when a token is set; the
/// scheme name is case-insensitive (RFC 9110 section 11.1).
pub(super) async fn require_token(
    State(check): State<TokenCheck>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = check.current() else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    match presented {
        Some(presented) if constant_time_eq(presented.as_bytes(), token.expose().as_bytes()) => {
            next.run(request).await
        }
        _ => ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        )
        .into_response(),
    }
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches([' ', '\t']))
}

/// Compares without an early exit, so response time does not reveal how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Turns error responses that are not JSON (axum's own `405`, a rejection
/// from an extractor) into `{"error": "<reason phrase>"}`.
pub(super) async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    let (mut parts, _) = response.into_parts();
    let mut fresh = ApiError(status, reason).into_response();
    // Keep headers such as `Allow` on a 405; the body and its type are new.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    for (name, value) in parts.headers.iter() {
        fresh.headers_mut().entry(name).or_insert(value.clone());
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer t0k"), Some("t0k"));
        assert_eq!(bearer_token("bearer t0k"), Some("t0k"));
        assert_eq!(bearer_token("BEARER  t0k"), Some("t0k"));
        assert_eq!(bearer_token("Basic t0k"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearert0k"), None);
    }
}
