//! `POST /v1/svid`: an agent trades an attestation and a CSR for an
//! X509-SVID.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sigil_core::wire::{Attestation, SvidRequest};
use time::OffsetDateTime;

use super::jwt_attestation::{JwtRequest, issue_for_jwt};
use super::svid_response::{SvidBody, svid_response};
use super::{ApiError, AppState, JsonBody, Policy, SourceIp};
use crate::audit::AuditEvent;
use crate::ca::{IssuedCertificate, LeafRequest, SubjectKey};
use crate::store::Redemption;
use crate::{join_token, rfc3339};

/// The attestor an issuance was asked of, as the metrics name it: set on
/// the response for the metrics layer.
#[derive(Debug, Clone)]
pub(super) struct AttestorLabel(pub(super) String);

/// Checks what costs nothing first (TTL, token shape, what the token
/// grants), so that an unknown token never costs a signature check; then
/// verifies the CSR and signs (a bad CSR uses up nothing), and takes the
/// token's use and records the certificate in one transaction before
/// answering.
pub(super) async fn issue(
    State(state): State<AppState>,
    SourceIp(source): SourceIp,
    JsonBody(request): JsonBody<SvidRequest>,
) -> Response {
    // One snapshot of the settings for the whole request.
    let policy = state.policy();
    // The metrics' label: a configured attestor's name, never what a
    // client made up.
    let attestor = match &request.attestation {
        Attestation::Jwt { attestor, .. } if policy.jwt_attestors.get(attestor).is_some() => {
            format!("jwt:{attestor}")
        }
        Attestation::Jwt { .. } => "jwt_unconfigured".to_owned(),
        _ => "join_token".to_owned(),
    };
    let mut response = attest_and_issue(&state, &policy, source, request)
        .await
        .into_response();
    // The metrics layer counts the outcome under this label.
    response.extensions_mut().insert(AttestorLabel(attestor));
    response
}

async fn attest_and_issue(
    state: &AppState,
    policy: &Policy,
    source: Option<std::net::IpAddr>,
    request: SvidRequest,
) -> Result<SvidBody, ApiError> {
    // Refused attestations are counted for the audit log, not logged one by
    // one: anyone can send them.
    let refuse = |reason: &'static str, error: ApiError| {
        state.attestation_refused(reason, source);
        error
    };
    state.admit_attestation(source)?;
    let ttl = policy
        .ttl
        .resolve(request.ttl_seconds)
        .map_err(ApiError::invalid_ttl)?;
    // Verified by `Issuance::sign`, just before it signs.
    let key = SubjectKey::Csr {
        pem: request.csr,
        policy: policy.keys,
    };
    let token = match request.attestation {
        Attestation::JoinToken { token } => token,
        Attestation::Jwt { attestor, token } => {
            let jwt = JwtRequest {
                attestor: &attestor,
                token: token.expose(),
                requested_ttl: request.ttl_seconds,
                ttl,
            };
            return issue_for_jwt(state, policy, source, &key, jwt).await;
        }
        #[allow(unreachable_patterns)]
        _ => return Err(ApiError::invalid_request("unsupported attestation type")),
    };
    let token_id = join_token::lookup_id(&token)
        .ok_or_else(|| {
            refuse(
                "malformed join token",
                ApiError::invalid_attestation("not a Sigil join token"),
            )
        })?
        .to_owned();
    let token_hash = join_token::hash(&token);
    let refused = |redemption: Redemption| match redemption {
        Redemption::UsedUp => refuse(
            "used-up join token",
            ApiError::invalid_attestation("join token is used up"),
        ),
        Redemption::Expired => refuse(
            "expired join token",
            ApiError::invalid_attestation("join token has expired"),
        ),
        Redemption::Banned(spiffe_id) => refuse(
            "join token of a banned identity",
            ApiError::banned(&spiffe_id),
        ),
        Redemption::Unknown | Redemption::Granted(_) => refuse(
            "unknown join token",
            ApiError::invalid_attestation("unknown join token"),
        ),
    };
    // What the token grants decides what is signed; the redemption below
    // checks the token again and alone decides whether it is recorded.
    let epoch = state.token_grants.epoch();
    let cached = state.token_grants.get(&token_id, &token_hash);
    let was_cached = cached.is_some();
    let grant = match cached {
        Some(grant) => grant,
        None => match state
            .issuance
            .store()
            .peek_join_token(token_id.clone(), token_hash, OffsetDateTime::now_utc())
            .await?
        {
            Redemption::Granted(grant) => grant,
            refusal => return Err(refused(refusal)),
        },
    };
    // Token creation already refuses these; a token written to the store by
    // other means must not mint a reserved or foreign identity either.
    if policy.namespace.is_reserved(&grant.spiffe_id) {
        return Err(ApiError::reserved_identity(format!(
            "{} is reserved for the CA",
            grant.spiffe_id
        )));
    }
    if !grant
        .spiffe_id
        .is_member_of(policy.namespace.trust_domain())
    {
        return Err(ApiError::invalid_spiffe_id(format!(
            "{} is outside this CA's trust domain",
            grant.spiffe_id
        )));
    }
    if !was_cached {
        state
            .token_grants
            .remember(epoch, token_id.clone(), token_hash, grant.clone());
    }
    let leaf = LeafRequest {
        spiffe_id: &grant.spiffe_id,
        key: &key,
        dns_names: &grant.dns_names,
        ip_addresses: &grant.ip_addresses,
        ttl,
    };
    let audit = |issued: &IssuedCertificate| {
        vec![AuditEvent::now(
            issued.spiffe_id.to_string(),
            "svid.issue",
            issued.serial.to_string(),
            json!({
                "spiffe_id": issued.spiffe_id,
                "attestation": "join_token",
                "token_id": token_id,
                "not_after": rfc3339::format(issued.not_after),
                "source": source.map(|ip| ip.to_string()),
            }),
        )]
    };
    let outcome = state
        .issuance
        .issue_for_join_token(&leaf, &token_id, token_hash, &audit)
        .await;
    if !matches!(outcome, Ok(Ok(_))) {
        // Whatever went wrong, the next request reads the token again.
        state.token_grants.forget(&token_id);
    }
    let issued = outcome?.map_err(refused)?;
    // One line per certificate at debug level: the audit log records every
    // issuance, and at fleet scale an info line each cost ~6 % of the
    // issuance rate (BENCHMARKS.md). SPIRE logs signed SVIDs at debug too.
    tracing::debug!(
        spiffe_id = %issued.spiffe_id,
        serial = %issued.serial,
        not_after = %rfc3339::format(issued.not_after),
        "svid.issue"
    );
    svid_response(state, &issued)
}
