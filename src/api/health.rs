//! Liveness and readiness.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::{ApiError, AppState};

/// `GET /healthz`: the process serves requests.
pub(super) async fn live() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store can be read and written.
pub(super) async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state
        .issuance
        .store()
        .check_ready()
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(json!({"status": "ready"})))
}
