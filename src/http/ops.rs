//! Probes for load balancers and orchestrators, and the metrics scrape.

use super::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// `GET /metrics`, in the Prometheus text format.
pub fn metrics_routes(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// How long `/readyz` waits for its answer: within an orchestrator's probe timeout (a second
/// by default in Kubernetes), so that a database that does not answer is a 503, not a probe
/// that timed out.
const READY_WITHIN: Duration = Duration::from_secs(1);

/// How long the history's batch may wait for its commit before the node is not ready: far
/// longer than any commit under load, or a slow moment of the database (the hourly clean-up,
/// a pool busy with a burst of calls), and well before the writer gives up on the batch.
const HELD_UP_AFTER: Duration = Duration::from_secs(5);

/// The process can serve: its database answers, its history is not held up, and, when the
/// history's last batch could not be written (every call is then refused), it takes a write
/// again. Within [`READY_WITHIN`], or 503.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if state
        .recorder
        .stats()
        .held_up()
        .is_some_and(|held| held > HELD_UP_AFTER)
    {
        tracing::warn!("not ready: the history's commit is held up");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "history writes are held up\n",
        );
    }
    match tokio::time::timeout(READY_WITHIN, ready(&state)).await {
        Ok(answer) => answer,
        Err(_) => {
            tracing::warn!("not ready: the database did not answer within a second");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "database did not answer within a second\n",
            )
        }
    }
}

async fn ready(state: &AppState) -> (StatusCode, &'static str) {
    if let Err(error) = state.db.ping().await {
        tracing::warn!(error = &error as &dyn std::error::Error, "not ready");
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n");
    }
    if state.recorder.stats().failing.load(Ordering::Relaxed)
        && let Err(error) = state.db.ping_write().await
    {
        tracing::warn!(
            error = &error as &dyn std::error::Error,
            "not ready: the history cannot be written"
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "database cannot be written\n",
        );
    }
    (StatusCode::OK, "ready\n")
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render(state.recorder.figures()) {
        Some(text) => (
            [(
                header::CONTENT_TYPE,
                crate::telemetry::metrics::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are off\n").into_response(),
    }
}
