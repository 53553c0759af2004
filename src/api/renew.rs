//! `POST /v1/renew`: an agent presents its current SVID (mTLS) and a new
//! CSR, and gets a fresh SVID of the same identity, if its certificate
//! still heads its renewal line.

use axum::Json;
use axum::extract::State;
use serde_json::json;
use sigil_core::wire::{RenewRequest, SvidResponse};

use super::svid::svid_response;
use super::{ApiError, AppState, Caller, JsonBody};
use crate::audit::AuditEvent;
use crate::ca::LeafRequest;
use crate::csr::verify_csr_pem;
use crate::store::RenewalOutcome;

pub(super) async fn renew(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<RenewRequest>,
) -> Result<Json<SvidResponse>, ApiError> {
    let spiffe_id = caller.spiffe_id().clone();
    if state.namespace.is_reserved(&spiffe_id) {
        return Err(ApiError::reserved_identity(format!(
            "{spiffe_id} is one of the CA's own identities, which are not renewable; \
             mint a fresh admin credential with `sigil admin credential`"
        )));
    }
    let public_key = verify_csr_pem(&request.csr, state.keys)?;
    let ttl = state
        .ttl
        .resolve(request.ttl_seconds)
        .map_err(ApiError::invalid_ttl)?;
    let (dns_names, ip_addresses) =
        crate::svid::bound_names(&caller.record().der).map_err(ApiError::internal)?;
    let presented = caller.record().serial;
    let leaf = LeafRequest {
        spiffe_id: &spiffe_id,
        public_key: &public_key,
        dns_names: &dns_names,
        ip_addresses: &ip_addresses,
        ttl,
    };
    let (issued, outcome) = state.issuance.renew(&leaf, presented).await?;
    match outcome {
        RenewalOutcome::Renewed { superseded, crls } => {
            state.crls.post(crls);
            let superseded = superseded.map(|s| s.to_string());
            tracing::info!(%spiffe_id, serial = %issued.serial, parent = %presented, ?superseded, "svid.renew");
            state
                .audit(vec![AuditEvent::now(
                    spiffe_id.to_string(),
                    "svid.renew",
                    issued.serial.to_string(),
                    json!({
                        "spiffe_id": spiffe_id,
                        "parent_serial": presented.to_string(),
                        "superseded": superseded,
                        "not_after": crate::rfc3339::format(issued.not_after),
                    }),
                )])
                .await;
            Ok(Json(svid_response(&state, &issued)?))
        }
        RenewalOutcome::Fork { revoked, crls } => {
            state.crls.post(crls);
            let revoked: Vec<String> = revoked.iter().map(ToString::to_string).collect();
            tracing::warn!(%spiffe_id, %presented, ?revoked, "identity.ban: lineage fork, two parties renew one identity");
            state
                .audit(vec![AuditEvent::now(
                    state.namespace.server().to_string(),
                    "identity.ban",
                    spiffe_id.to_string(),
                    json!({
                        "reason": "lineage_fork",
                        "why": "a certificate its line had moved on from was renewed: two parties hold the identity",
                        "presented_serial": presented.to_string(),
                        "revoked": revoked,
                    }),
                )])
                .await;
            Err(ApiError::lineage_fork(&spiffe_id))
        }
        RenewalOutcome::Revoked => Err(ApiError::revoked(format!(
            "certificate {presented} is revoked"
        ))),
        RenewalOutcome::Banned => Err(ApiError::banned(&spiffe_id)),
        RenewalOutcome::Unknown => Err(ApiError::invalid_client_certificate(
            "client certificate was not issued by this CA",
        )),
    }
}
