//! `POST /v1/renew`: an agent presents its current SVID (mTLS) and a new
//! CSR, and gets a fresh SVID of the same identity, if its certificate
//! still heads its renewal line.

use std::sync::Arc;

use axum::extract::State;
use serde_json::json;
use sigil_core::wire::RenewRequest;

use super::client_auth::RenewingCaller;
use super::svid_response::{SvidBody, svid_response};
use super::{ApiError, AppState, JsonBody, SourceIp};
use crate::audit::AuditEvent;
use crate::ca::{LeafRequest, SubjectKey};
use crate::issuance::RenewAudit;
use crate::store::RenewalOutcome;

pub(super) async fn renew(
    State(state): State<AppState>,
    SourceIp(source): SourceIp,
    RenewingCaller(caller): RenewingCaller,
    JsonBody(request): JsonBody<RenewRequest>,
) -> Result<SvidBody, ApiError> {
    // One snapshot of the settings for the whole request.
    let policy = state.policy();
    let spiffe_id = caller.spiffe_id().clone();
    if policy.namespace.is_reserved(&spiffe_id) {
        return Err(ApiError::reserved_identity(format!(
            "{spiffe_id} is one of the CA's own identities, which are not renewable; \
             mint a fresh admin credential with `sigil admin credential`"
        )));
    }
    let ttl = policy
        .ttl
        .resolve(request.ttl_seconds)
        .map_err(ApiError::invalid_ttl)?;
    let (dns_names, ip_addresses) =
        crate::svid::bound_names(&caller.record().der).map_err(ApiError::internal)?;
    let presented = caller.record().serial;
    let leaf = LeafRequest {
        spiffe_id: &spiffe_id,
        key: &SubjectKey::Csr {
            pem: request.csr,
            policy: policy.keys,
        },
        dns_names: &dns_names,
        ip_addresses: &ip_addresses,
        ttl,
    };
    let server_id = policy.namespace.server().clone();
    let audited_id = spiffe_id.clone();
    let audit: RenewAudit = Arc::new(move |issued, outcome| match outcome {
        RenewalOutcome::Renewed { superseded, .. } => vec![AuditEvent::now(
            audited_id.to_string(),
            "svid.renew",
            issued.serial.to_string(),
            json!({
                "spiffe_id": audited_id,
                "parent_serial": presented.to_string(),
                "superseded": superseded.map(|s| s.to_string()),
                "not_after": crate::rfc3339::format(issued.not_after),
            }),
        )],
        RenewalOutcome::Fork { revoked, .. } => vec![AuditEvent::now(
            server_id.to_string(),
            "identity.ban",
            audited_id.to_string(),
            json!({
                "reason": "lineage_fork",
                "why": "a certificate its line had moved on from was renewed: \
                        two parties hold the identity",
                "presented_serial": presented.to_string(),
                "revoked": revoked.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        )],
        _ => Vec::new(),
    });
    let (issued, outcome) = state.issuance.renew(&leaf, presented, audit).await?;
    match outcome {
        RenewalOutcome::Renewed { superseded, crls } => {
            state.crls.post(crls);
            // A retry from the parent revokes the head it replaces.
            if superseded.is_some() {
                state.metrics.revoked(1);
            }
            // At debug level, as for issuance (`svid.rs`).
            tracing::debug!(%spiffe_id, serial = %issued.serial, parent = %presented, ?superseded, "svid.renew");
            svid_response(&state, &issued)
        }
        RenewalOutcome::Fork { revoked, crls } => {
            state.crls.post(crls);
            state.metrics.revoked(revoked.len());
            tracing::warn!(%spiffe_id, %presented, ?revoked, "identity.ban: lineage fork, two parties renew one identity");
            Err(ApiError::lineage_fork(&spiffe_id))
        }
        RenewalOutcome::Revoked => {
            state
                .refusals
                .count("renewal of a revoked certificate", source);
            Err(ApiError::revoked(format!(
                "certificate {presented} is revoked"
            )))
        }
        RenewalOutcome::Banned => {
            state.refusals.count("renewal: banned", source);
            Err(ApiError::banned(&spiffe_id))
        }
        RenewalOutcome::Unknown => Err(ApiError::invalid_client_certificate(
            "client certificate was not issued by this CA",
        )),
    }
}
