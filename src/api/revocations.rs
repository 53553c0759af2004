//! The admin API for revocation: revoke a certificate or an identity, lift
//! a ban, list certificates.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use sigil_core::SpiffeId;
use sigil_core::wire::{CertificateInfo, CertificateList, RevokeRequest, RevokeResponse};
use time::OffsetDateTime;

use super::{Admin, ApiError, AppState, JsonBody};
use crate::audit::AuditEvent;
use crate::revocation::{CrlSigner, ReasonCode};
use crate::rfc3339;
use crate::serial::Serial;
use crate::store::{
    AuditFn, CertificateQuery, RevocationOutcome, RevocationRequest, RevocationTarget, StatusFilter,
};

/// The most certificates one page lists.
const MAX_PAGE: u32 = 1000;

/// `POST /admin/v1/revocations`.
pub(super) async fn revoke(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(request): JsonBody<RevokeRequest>,
) -> Result<Json<RevokeResponse>, ApiError> {
    let target = match (&request.serial, &request.spiffe_id) {
        (Some(serial), None) => RevocationTarget::Serial(
            serial
                .parse::<Serial>()
                .map_err(|e| ApiError::invalid_request(format!("serial: {e}")))?,
        ),
        (None, Some(id)) => {
            let id = bannable_id(&state, id)?;
            if id == *admin.spiffe_id() {
                return Err(ApiError::forbidden(
                    "an admin cannot ban its own identity; ask another admin",
                ));
            }
            RevocationTarget::Identity(id)
        }
        _ => {
            return Err(ApiError::invalid_request(
                "give exactly one of serial and spiffe_id",
            ));
        }
    };
    let reason = match &request.reason {
        Some(reason) => reason
            .parse::<ReasonCode>()
            .map_err(ApiError::invalid_request)?,
        None => ReasonCode::Unspecified,
    };
    let signer: Arc<dyn CrlSigner> = state.issuance.ca().clone();
    let (action, subject) = match &target {
        RevocationTarget::Serial(serial) => ("certificate.revoke", serial.to_string()),
        RevocationTarget::Identity(id) => ("identity.ban", id.to_string()),
    };
    let actor = admin.spiffe_id().to_string();
    let audited_subject = subject.clone();
    let audit: AuditFn<RevocationOutcome> = Box::new(move |outcome| match outcome {
        RevocationOutcome::Revoked {
            serials,
            crls,
            changed: true,
        } => vec![AuditEvent::now(
            actor,
            action,
            audited_subject,
            json!({
                "reason": reason.to_string(),
                "revoked": serials.iter().map(Serial::to_string).collect::<Vec<_>>(),
                "crl_numbers": crls.iter().map(|crl| crl.number).collect::<Vec<_>>(),
            }),
        )],
        // A repeated revocation changed nothing and records nothing.
        RevocationOutcome::Revoked { changed: false, .. } | RevocationOutcome::UnknownSerial => {
            Vec::new()
        }
    });
    let outcome = state
        .issuance
        .store()
        .revoke(
            RevocationRequest {
                target: target.clone(),
                reason,
                by: admin.spiffe_id().clone(),
                now: OffsetDateTime::now_utc(),
            },
            signer,
            audit,
        )
        .await?;
    let RevocationOutcome::Revoked {
        serials,
        crls,
        changed,
    } = outcome
    else {
        return Err(ApiError::not_found_message(
            "no certificate has that serial",
        ));
    };
    state.crls.post(crls);
    if changed {
        state.metrics.revoked(serials.len());
        // What it revoked may have been all that kept a previous root.
        state.wake_rotation_schedule();
    }
    let revoked: Vec<String> = serials.iter().map(Serial::to_string).collect();
    tracing::info!(admin = %admin.spiffe_id(), %subject, %reason, revoked = ?revoked, action);
    Ok(Json(RevokeResponse { revoked }))
}

/// An identity an admin may ban: of this trust domain, with a path, and not
/// the CA's own server identity.
fn bannable_id(state: &AppState, text: &str) -> Result<SpiffeId, ApiError> {
    let id: SpiffeId = text
        .parse()
        .map_err(|e| ApiError::invalid_spiffe_id(format!("{e}")))?;
    if !id.is_member_of(state.policy().namespace.trust_domain()) || id.path().is_empty() {
        return Err(ApiError::invalid_spiffe_id(format!(
            "{id} is not a workload of trust domain {}",
            state.policy().namespace.trust_domain()
        )));
    }
    if id == *state.policy().namespace.server() {
        return Err(ApiError::reserved_identity(
            "the CA's own server identity cannot be banned",
        ));
    }
    Ok(id)
}

/// `DELETE /admin/v1/bans/{url-encoded spiffe id}`.
pub(super) async fn lift_ban(
    State(state): State<AppState>,
    admin: Admin,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::invalid_request(format!("path: {}", e.body_text())))?;
    let id: SpiffeId = id
        .parse()
        .map_err(|e| ApiError::invalid_spiffe_id(format!("{e}")))?;
    let audit = vec![AuditEvent::now(
        admin.spiffe_id().to_string(),
        "identity.unban",
        id.to_string(),
        json!({}),
    )];
    if !state.issuance.store().lift_ban(id.clone(), audit).await? {
        return Err(ApiError::not_found_message(format!("{id} is not banned")));
    }
    tracing::info!(admin = %admin.spiffe_id(), spiffe_id = %id, "identity.unban");
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /admin/v1/certificates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    spiffe_id: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

/// `GET /admin/v1/certificates`.
pub(super) async fn list(
    State(state): State<AppState>,
    _admin: Admin,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CertificateList>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::invalid_request(format!("query: {}", e.body_text())))?;
    let spiffe_id = query
        .spiffe_id
        .map(|id| id.parse::<SpiffeId>())
        .transpose()
        .map_err(|e| ApiError::invalid_spiffe_id(format!("{e}")))?;
    let status = match query.status.as_deref() {
        None | Some("live") => StatusFilter::Live,
        Some("revoked") => StatusFilter::Revoked,
        Some("all") => StatusFilter::All,
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "status must be live, revoked or all, not {other}"
            )));
        }
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid_request(format!(
            "limit must lie between 1 and {MAX_PAGE}"
        )));
    }
    let after = query
        .after
        .map(|serial| serial.parse::<Serial>())
        .transpose()
        .map_err(|e| ApiError::invalid_request(format!("after: {e}")))?;
    let page = state
        .issuance
        .store()
        .list_certificates(CertificateQuery {
            spiffe_id,
            status,
            limit,
            after,
            now: OffsetDateTime::now_utc(),
        })
        .await?;
    let certificates = page
        .into_iter()
        .map(|stored| CertificateInfo {
            serial: stored.record.serial.to_string(),
            spiffe_id: stored.record.spiffe_id,
            not_before: rfc3339::format(stored.record.not_before),
            not_after: rfc3339::format(stored.record.not_after),
            parent_serial: stored.record.parent_serial.map(|s| s.to_string()),
            revoked_at: stored.revocation.map(|r| rfc3339::format(r.revoked_at)),
            reason: stored.revocation.map(|r| r.reason.to_string()),
        })
        .collect();
    Ok(Json(CertificateList { certificates }))
}
