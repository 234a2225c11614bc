//! What a load balancer or an orchestrator asks before sending traffic.
//!
//! `/healthz` says the process answers (a liveness probe: restart it if
//! not). `/readyz` says it can serve requests now: the database answers
//! within [`READY_TIMEOUT`] and holds every migration this build knows.
//! An instance whose database is down or behind this build's schema is not
//! ready, and a balancer sends its traffic elsewhere.

use crate::app::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::time::Duration;

/// How long the database gets to answer a readiness probe.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> &'static str {
    "ok"
}

/// 200 `{"ready":true}`, or 503 `{"ready":false,"reason":…}`.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, state.db.readiness()).await {
        Ok(Ok(())) => Json(json!({ "ready": true })).into_response(),
        Ok(Err(reason)) => not_ready(&reason),
        Err(_) => not_ready("the database did not answer in time"),
    }
}

fn not_ready(reason: &str) -> Response {
    tracing::warn!(reason, "not ready");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "ready": false, "reason": reason })),
    )
        .into_response()
}
