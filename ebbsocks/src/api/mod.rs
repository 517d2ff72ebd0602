//! The HTTP API: health, server stats, pool stats, telemetry events and
//! memory readings, as JSON, and Prometheus metrics (`metrics.rs`). Handlers
//! are thin: the data comes from `stats`, the pool, `memory` and `metrics`;
//! this module only knows HTTP. `serve.rs` runs the
//! connections (timer, caps), `guard.rs` is what every request passes first
//! (size caps, bearer token, JSON errors), `dashboard/` the live page
//! (static files, served without the token; its data requests carry it).
//! With a [`Reloader`] in the options, `POST /api/reload` re-reads the
//! configuration, and the token is the one the configuration in force names.

mod dashboard;
mod guard;
mod metrics;
mod serve;

use std::future::Future;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::config::Secret;
use crate::memory::MemoryMonitor;
use crate::metrics::Metrics;
use crate::reload::{Outcome, Reloader, Trigger};
use crate::stats::{EventFilter, Stats, Telemetry};
use crate::upstream::pool::Pool;
pub use guard::MAX_HEAD_BYTES;
use guard::{ApiError, TokenCheck};
pub use serve::{ServeOptions, MAX_READ_BUFFER};

/// What the API reads.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub stats: Arc<Stats>,
    pub telemetry: Arc<Telemetry>,
    pub pool: Arc<Pool>,
    pub memory: Arc<MemoryMonitor>,
}

/// The routes; with a token, every route but `/healthz` and the dashboard's
/// static files (so `/metrics` too) requires `Authorization: Bearer <token>`.
pub fn router(state: ApiState, token: Option<Secret>) -> Router {
    routes(state, TokenCheck::Fixed(token.map(Arc::new)), None)
}

/// The routes, with `POST /api/reload` when `reloader` is given.
fn routes(state: ApiState, token: TokenCheck, reloader: Option<Arc<Reloader>>) -> Router {
    let metrics = Arc::new(Metrics::new(
        state.stats.clone(),
        state.pool.clone(),
        state.memory.clone(),
    ));
    let mut protected = Router::new()
        .route("/metrics", get(metrics::scrape).with_state(metrics))
        .route("/api/stats", get(server_stats))
        .route("/api/pool/stats", get(pool_stats))
        .route("/api/telemetry/events", get(telemetry_events))
        .route("/api/memory", get(memory))
        .with_state(state);
    if let Some(reloader) = reloader {
        protected = protected.merge(
            Router::new()
                .route("/api/reload", post(reload))
                .with_state(reloader),
        );
    }
    let protected = if token.may_require() {
        protected.layer(middleware::from_fn_with_state(token, guard::require_token))
    } else {
        protected
    };
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .merge(dashboard::routes())
        .merge(protected)
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        // The layer added last runs first: JSON errors wrap everything, and
        // the size caps run before the token check and any handler.
        .layer(middleware::from_fn(guard::limit_size))
        .layer(middleware::from_fn(guard::json_errors))
}

/// Serves the API on `listener` until `shutdown` completes, with the
/// default connection cap and header timeout.
pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    token: Option<Secret>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let options = ServeOptions {
        token,
        ..ServeOptions::default()
    };
    serve_with(listener, state, options, shutdown).await
}

/// Serves the API on `listener` as `options` say until `shutdown` completes.
pub async fn serve_with(
    listener: TcpListener,
    state: ApiState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = match &options.reloader {
        Some(reloader) => routes(
            state,
            TokenCheck::Live(reloader.clone()),
            Some(reloader.clone()),
        ),
        None => router(state, options.token.clone()),
    };
    serve::run(listener, router, options, shutdown).await
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

/// `200` with the report when the file was used, `422` when it was rejected
/// (the running configuration stays).
async fn reload(State(reloader): State<Arc<Reloader>>) -> impl IntoResponse {
    let report = reloader.reload(Trigger::Api).await;
    let status = match report.outcome {
        Outcome::Rejected => StatusCode::UNPROCESSABLE_ENTITY,
        Outcome::Applied | Outcome::Unchanged => StatusCode::OK,
    };
    (status, Json(report))
}
