//! `GET /metrics`: the Prometheus text of [`crate::metrics`], in the format
//! the scraper's `Accept` header asks for.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::guard::ApiError;
use crate::metrics::{Format, Metrics};

pub(super) async fn scrape(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let format = Format::from_accept(accept);
    match metrics.encode(format) {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(_) => ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded".into(),
        )
        .into_response(),
    }
}
