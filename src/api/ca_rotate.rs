//! `POST /admin/v1/ca/rotate`: an admin rotates the issuing CA while the
//! CA serves (see `crate::rotation`); one rotation at a time.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, ApiError, AppState, JsonBody};
use crate::ca::{DEFAULT_ISSUING_LIFETIME, ROOT_LIFETIME};
use crate::rfc3339;
use crate::rotation::RotationRequest;

/// The shortest issuing CA a rotation makes.
const MIN_ISSUING_LIFETIME: Duration = Duration::from_secs(86_400);

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateRequest {
    /// How long the new issuing CA lives [default: 365 days].
    issuing_ttl_seconds: Option<u64>,
    /// Revoke the replaced issuing CA in the root's CRL.
    #[serde(default)]
    revoke_current: bool,
}

/// `POST /admin/v1/ca/rotate`.
pub(super) async fn rotate(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(request): JsonBody<RotateRequest>,
) -> Result<Json<Value>, ApiError> {
    let lifetime = request
        .issuing_ttl_seconds
        .map_or(DEFAULT_ISSUING_LIFETIME, Duration::from_secs);
    if !(MIN_ISSUING_LIFETIME..=ROOT_LIFETIME).contains(&lifetime) {
        return Err(ApiError::invalid_request(
            "issuing_ttl_seconds must lie between 86400 (1 day) and 315360000 (10 years)",
        ));
    }
    let Some(rotation) = state.rotation.as_ref() else {
        return Err(ApiError::unavailable(
            "this server was started without its data dir's rotation settings",
        ));
    };
    let _one_at_a_time = rotation.lock.lock().await;
    let actor = admin.spiffe_id().to_string();
    let (done, crls) = state
        .issuance
        .rotate(
            &rotation.settings,
            RotationRequest {
                lifetime,
                revoke_current: request.revoke_current,
            },
            &actor,
            admin.spiffe_id(),
        )
        .await
        .map_err(ApiError::internal)?;
    state.crls.post(crls);
    if request.revoke_current {
        state.metrics.revoked(1);
    }
    tracing::info!(
        admin = %actor,
        issuing = %done.issuing_key_id,
        retired = %done.retired_key_id,
        revoked = request.revoke_current,
        "ca.rotate"
    );
    Ok(Json(json!({
        "issuing_key_id": done.issuing_key_id,
        "retired_key_id": done.retired_key_id,
        "not_after": rfc3339::format(done.not_after),
        "revoked_retired": request.revoke_current,
    })))
}
