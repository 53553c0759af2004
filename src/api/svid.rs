//! `POST /v1/svid`: an agent trades an attestation and a CSR for an
//! X509-SVID.

use axum::Json;
use axum::extract::State;
use sigil_core::wire::{Attestation, SvidRequest, SvidResponse};
use time::format_description::well_known::Rfc3339;

use super::{ApiError, AppState, JsonBody};
use crate::ca::{IssuedCertificate, LeafRequest};
use crate::csr::verify_csr_pem;
use crate::join_token;
use crate::store::{AttestationKind, Redemption};

/// Checks everything that costs the caller nothing first (CSR, TTL, token
/// shape), so that a bad request never uses up a token; then redeems the
/// token, signs, records, and answers.
pub(super) async fn issue(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<SvidRequest>,
) -> Result<Json<SvidResponse>, ApiError> {
    let public_key = verify_csr_pem(&request.csr, state.keys)?;
    let ttl = state
        .ttl
        .resolve(request.ttl_seconds)
        .map_err(ApiError::invalid_ttl)?;
    let token = match request.attestation {
        Attestation::JoinToken { token } => token,
        #[allow(unreachable_patterns)]
        _ => return Err(ApiError::invalid_request("unsupported attestation type")),
    };
    let token_id = join_token::lookup_id(&token)
        .ok_or_else(|| ApiError::invalid_attestation("not a Sigil join token"))?
        .to_owned();
    let redemption = state
        .issuance
        .store()
        .redeem_join_token(
            token_id,
            join_token::hash(&token),
            time::OffsetDateTime::now_utc(),
        )
        .await?;
    let grant = match redemption {
        Redemption::Granted(grant) => grant,
        Redemption::UsedUp => return Err(ApiError::invalid_attestation("join token is used up")),
        Redemption::Expired => return Err(ApiError::invalid_attestation("join token has expired")),
        Redemption::Unknown => return Err(ApiError::invalid_attestation("unknown join token")),
    };
    // Token creation already refuses these; a token written to the store by
    // other means must not mint a reserved or foreign identity either.
    if state.namespace.is_reserved(&grant.spiffe_id) {
        return Err(ApiError::reserved_identity(format!(
            "{} is reserved for the CA",
            grant.spiffe_id
        )));
    }
    let leaf = LeafRequest {
        spiffe_id: &grant.spiffe_id,
        public_key: &public_key,
        dns_names: &grant.dns_names,
        ip_addresses: &grant.ip_addresses,
        ttl,
    };
    let issued = state
        .issuance
        .issue(&leaf, AttestationKind::JoinToken, None)
        .await?;
    tracing::info!(
        spiffe_id = %issued.spiffe_id,
        serial = %issued.serial,
        not_after = %issued.not_after,
        "svid.issue"
    );
    Ok(Json(svid_response(&state, &issued)?))
}

/// The answer shape shared by issuance and renewal.
pub(super) fn svid_response(
    state: &AppState,
    issued: &IssuedCertificate,
) -> Result<SvidResponse, ApiError> {
    let ca = state.issuance.ca();
    Ok(SvidResponse {
        spiffe_id: issued.spiffe_id.clone(),
        serial: issued.serial.to_string(),
        not_after: issued
            .not_after
            .format(&Rfc3339)
            .map_err(ApiError::internal)?,
        cert_chain_pem: ca.chain_pem(issued),
        bundle_pem: ca.bundle_pem(),
    })
}
