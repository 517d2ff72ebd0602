//! The HTTP API: health, server stats, pool stats, telemetry events and
//! memory readings, as JSON. Handlers are thin: the data comes from `stats`,
//! the pool and `memory`; this module only knows HTTP.

use std::future::Future;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::config::Secret;
use crate::memory::MemoryMonitor;
use crate::stats::{EventFilter, Stats, Telemetry};
use crate::upstream::pool::Pool;

/// What the API reads.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub stats: Arc<Stats>,
    pub telemetry: Arc<Telemetry>,
    pub pool: Arc<Pool>,
    pub memory: Arc<MemoryMonitor>,
}

/// The routes; with a token, every route but `/healthz` requires
/// `Authorization: Bearer <token>`.
pub fn router(state: ApiState, token: Option<Secret>) -> Router {
    let protected = Router::new()
        .route("/api/stats", get(server_stats))
        .route("/api/pool/stats", get(pool_stats))
        .route("/api/telemetry/events", get(telemetry_events))
        .route("/api/memory", get(memory))
        .with_state(state);
    let protected = match token {
        Some(token) => protected.layer(middleware::from_fn_with_state(
            Arc::new(token),
            require_token,
        )),
        None => protected,
    };
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .merge(protected)
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    token: Option<Secret>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state, token))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn server_stats(State(state): State<ApiState>) -> impl IntoResponse {
    Json(state.stats.snapshot())
}

async fn pool_stats(State(state): State<ApiState>) -> impl IntoResponse {
    Json(state.pool.stats())
}

async fn telemetry_events(
    State(state): State<ApiState>,
    filter: Result<Query<EventFilter>, QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(filter) = filter.map_err(|err| ApiError(StatusCode::BAD_REQUEST, err.body_text()))?;
    let events = state.telemetry.query(&filter);
    Ok(Json(json!({ "count": events.len(), "events": events })))
}

async fn memory(State(state): State<ApiState>) -> impl IntoResponse {
    Json(state.memory.report())
}

async fn require_token(State(token): State<Arc<Secret>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
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

/// Compares without an early exit, so response time does not reveal how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error as `{"error": "..."}` with its status code.
#[derive(Debug)]
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
