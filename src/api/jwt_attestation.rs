//! `POST /v1/svid` with `{"type": "jwt", "attestor", "token"}`: the named
//! attestor checks the token and maps its claims to a SPIFFE ID; the store
//! refuses a replayed `jti` in the same transaction that records the
//! certificate. Every refusal is 401 `invalid_attestation` (a banned
//! identity 403 `banned`), counted for the audit log with its reason; the
//! token itself is never logged or recorded.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;

use super::svid_response::{SvidBody, svid_response};
use super::{ApiError, AppState, Policy};
use crate::audit::AuditEvent;
use crate::ca::{IssuedCertificate, LeafRequest, SubjectKey};
use crate::rfc3339;
use crate::store::JwtRedemption;

/// What the handler learnt from the request before the token is judged.
pub(super) struct JwtRequest<'a> {
    pub(super) attestor: &'a str,
    pub(super) token: &'a str,
    /// The lifetime the request asked for, if it did.
    pub(super) requested_ttl: Option<u64>,
    /// The lifetime the server's policy resolved it to.
    pub(super) ttl: Duration,
}

pub(super) async fn issue_for_jwt(
    state: &AppState,
    policy: &Policy,
    source: Option<IpAddr>,
    key: &SubjectKey,
    request: JwtRequest<'_>,
) -> Result<SvidBody, ApiError> {
    let refuse = |reason: &str, message: String| {
        state.attestation_refused(&format!("jwt {}: {reason}", request.attestor), source);
        ApiError::invalid_attestation(message)
    };
    let Some(attestor) = policy.jwt_attestors.get(request.attestor) else {
        // The name is the caller's text: it stays out of the audit log.
        state.attestation_refused("jwt: unknown attestor", source);
        return Err(ApiError::invalid_attestation(
            "no attestor of that name is configured",
        ));
    };
    let attested = attestor
        .attest(request.token, &policy.namespace, OffsetDateTime::now_utc())
        .await
        .map_err(|refusal| refuse(refusal.reason, refusal.message))?;
    // The attestor may grant less than the server's maximum; an explicit
    // request beyond it is refused, not cut short.
    let ttl = match (attested.max_ttl, request.requested_ttl) {
        (Some(max), Some(_)) if request.ttl > max => {
            return Err(ApiError::invalid_ttl(format!(
                "attestor {:?} grants at most {} s",
                attestor.name(),
                max.as_secs()
            )));
        }
        (Some(max), None) => request.ttl.min(max),
        _ => request.ttl,
    };
    let leaf = LeafRequest {
        spiffe_id: &attested.spiffe_id,
        key,
        dns_names: &[],
        ip_addresses: &[],
        ttl,
    };
    let audit = |issued: &IssuedCertificate| {
        vec![AuditEvent::now(
            issued.spiffe_id.to_string(),
            "svid.issue",
            issued.serial.to_string(),
            json!({
                "spiffe_id": issued.spiffe_id,
                "attestation": "jwt",
                "attestor": attestor.name(),
                "issuer": attested.issuer,
                "sub": attested.subject,
                "not_after": rfc3339::format(issued.not_after),
                "source": source.map(|ip| ip.to_string()),
            }),
        )]
    };
    let issued = state
        .issuance
        .issue_for_jwt(
            &leaf,
            &attested.issuer,
            attested.jti.as_deref(),
            attested.expires_at,
            &audit,
        )
        .await?
        .map_err(|redemption| match redemption {
            JwtRedemption::Banned(spiffe_id) => {
                state.attestation_refused(
                    &format!("jwt {}: banned identity", request.attestor),
                    source,
                );
                ApiError::banned(&spiffe_id)
            }
            _ => refuse(
                "replayed jti",
                "this token was already used (its jti is spent)".to_owned(),
            ),
        })?;
    // At debug level, as for join tokens (`svid.rs`).
    tracing::debug!(
        spiffe_id = %issued.spiffe_id,
        serial = %issued.serial,
        attestor = attestor.name(),
        not_after = %rfc3339::format(issued.not_after),
        "svid.issue"
    );
    svid_response(state, &issued)
}
