//! `POST /admin/v1/ca/rotate`: an admin rotates the issuing CA while the
//! CA serves (see `crate::rotation`); one rotation at a time.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, ApiError, AppState, JsonBody};
use crate::ca::{CertificateAuthority, DEFAULT_ISSUING_LIFETIME, ROOT_LIFETIME};
use crate::rfc3339;
use sigil_core::SpiffeId;

use crate::ca::Rotation;
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
    let actor = admin.spiffe_id().to_string();
    let request = RotationRequest {
        lifetime,
        revoke_current: request.revoke_current,
    };
    let done = state
        .rotate_issuing_ca(request, &actor, admin.spiffe_id())
        .await?;
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

impl AppState {
    /// How this server rotates its CAs.
    ///
    /// # Errors
    ///
    /// `unavailable` when it was started without its data dir.
    pub(super) fn rotation(&self) -> Result<&super::RotationState, ApiError> {
        self.rotation.as_ref().ok_or_else(|| {
            ApiError::unavailable(
                "this server was started without its data dir's rotation settings",
            )
        })
    }

    /// Rotates the issuing CA (one rotation at a time) and publishes the
    /// CRLs that changed; for the admin route.
    ///
    /// # Errors
    ///
    /// `unavailable` when the server cannot rotate (no data dir given) or
    /// the store fails; `internal` for the rest.
    pub async fn rotate_issuing_ca(
        &self,
        request: RotationRequest,
        actor: &str,
        by: &SpiffeId,
    ) -> Result<Rotation, ApiError> {
        self.rotate_issuing_ca_if(request, actor, by, |_| true)
            .await?
            .ok_or_else(|| ApiError::internal("a rotation without condition did not happen"))
    }

    /// [`AppState::rotate_issuing_ca`], if `still_due` holds of the CA in
    /// force once no other rotation runs: the schedule judged by a CA that
    /// another rotation may have replaced since. `None` when it did not.
    ///
    /// # Errors
    ///
    /// As [`AppState::rotate_issuing_ca`].
    pub async fn rotate_issuing_ca_if(
        &self,
        request: RotationRequest,
        actor: &str,
        by: &SpiffeId,
        still_due: impl FnOnce(&CertificateAuthority) -> bool,
    ) -> Result<Option<Rotation>, ApiError> {
        let rotation = self.rotation()?;
        let _one_at_a_time = rotation.lock.lock().await;
        if !still_due(&self.issuance.ca()) {
            return Ok(None);
        }
        let done = self
            .issuance
            .rotate(&rotation.settings, request, actor, by, |crls| {
                self.crls.post(crls);
            })
            .await
            .map_err(ApiError::internal)?;
        if request.revoke_current {
            self.metrics.revoked(1);
        }
        Ok(Some(done))
    }
}
