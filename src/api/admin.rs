//! The admin API: callers presenting an admin SVID.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use sigil_core::SpiffeId;
use sigil_core::wire::{JoinTokenRequest, JoinTokenResponse};
use time::OffsetDateTime;

use super::{Admin, ApiError, AppState, JsonBody};
use crate::audit::AuditEvent;
use crate::hostname::{Host, plain_dns_name};
use crate::store::{NewJoinToken, TokenGrant};
use crate::{join_token, rfc3339};

/// A join token lives this long unless the admin says otherwise.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(600);
/// And at most this long.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// The most certificates one token may yield.
const MAX_TOKEN_USES: u32 = 10_000;
/// The most DNS names, and separately IP addresses, one token may bind.
const MAX_BOUND_NAMES: usize = 32;

/// `POST /admin/v1/join-tokens`.
pub(super) async fn create_join_token(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(request): JsonBody<JoinTokenRequest>,
) -> Result<(StatusCode, Json<JoinTokenResponse>), ApiError> {
    let spiffe_id = workload_id(&state, &request.spiffe_id)?;
    if state.issuance.store().is_banned(spiffe_id.clone()).await? {
        return Err(ApiError::banned(&spiffe_id));
    }
    let ttl = match request.ttl_seconds {
        None => DEFAULT_TOKEN_TTL,
        Some(seconds) if (1..=MAX_TOKEN_TTL.as_secs()).contains(&seconds) => {
            Duration::from_secs(seconds)
        }
        Some(seconds) => {
            return Err(ApiError::invalid_ttl(format!(
                "a join token's ttl_seconds must lie between 1 and {}, got {seconds}",
                MAX_TOKEN_TTL.as_secs()
            )));
        }
    };
    let uses = request.uses.unwrap_or(1);
    if !(1..=MAX_TOKEN_USES).contains(&uses) {
        return Err(ApiError::invalid_request(format!(
            "uses must lie between 1 and {MAX_TOKEN_USES}, got {uses}"
        )));
    }
    let dns_names = dns_names(request.dns_names)?;
    if request.ip_addresses.len() > MAX_BOUND_NAMES {
        return Err(ApiError::invalid_request(format!(
            "at most {MAX_BOUND_NAMES} IP addresses"
        )));
    }
    let bound = dns_names
        .iter()
        .cloned()
        .map(Host::Dns)
        .chain(request.ip_addresses.iter().copied().map(Host::Ip));
    for host in bound {
        if state.ca_hosts.contains(&host) {
            return Err(ApiError::invalid_request(format!(
                "{host} names the CA itself; a workload bound to it could pass for the CA"
            )));
        }
    }

    let minted = join_token::mint().map_err(|_| ApiError::internal("random source failed"))?;
    let now = crate::ca::whole_seconds(OffsetDateTime::now_utc());
    let expires_at = now + ttl;
    let audit = vec![AuditEvent::now(
        admin.spiffe_id().to_string(),
        "token.create",
        spiffe_id.to_string(),
        json!({
            "token_id": minted.id,
            "uses": uses,
            "expires_at": rfc3339::format(expires_at),
            "dns_names": dns_names,
            "ip_addresses": request.ip_addresses,
        }),
    )];
    state
        .issuance
        .store()
        .create_join_token(
            NewJoinToken {
                id: minted.id.clone(),
                hash: minted.hash,
                grant: TokenGrant {
                    spiffe_id: spiffe_id.clone(),
                    dns_names,
                    ip_addresses: request.ip_addresses,
                },
                uses,
                expires_at,
                created_at: now,
                created_by: admin.spiffe_id().clone(),
            },
            audit,
        )
        .await?;
    tracing::info!(
        admin = %admin.spiffe_id(),
        %spiffe_id,
        token_id = %minted.id,
        uses,
        expires_at = %rfc3339::format(expires_at),
        "token.create"
    );
    Ok((
        StatusCode::CREATED,
        Json(JoinTokenResponse {
            token: minted.token,
            spiffe_id,
            uses,
            expires_at: rfc3339::format(expires_at),
        }),
    ))
}

/// A workload identity: a SPIFFE ID of this trust domain, with a path,
/// outside the CA's own namespace.
fn workload_id(state: &AppState, text: &str) -> Result<SpiffeId, ApiError> {
    let id: SpiffeId = text
        .parse()
        .map_err(|e| ApiError::invalid_spiffe_id(format!("{e}")))?;
    let policy = state.policy();
    let trust_domain = policy.namespace.trust_domain();
    if !id.is_member_of(trust_domain) {
        return Err(ApiError::invalid_spiffe_id(format!(
            "{id} is outside trust domain {trust_domain}"
        )));
    }
    if id.path().is_empty() {
        return Err(ApiError::invalid_spiffe_id(
            "the trust domain's own ID names no workload; add a path",
        ));
    }
    if policy.namespace.is_reserved(&id) {
        return Err(ApiError::reserved_identity(format!(
            "{id} lies in spiffe://{trust_domain}/sigil/, which only the CA mints"
        )));
    }
    Ok(id)
}

fn dns_names(names: Vec<String>) -> Result<Vec<String>, ApiError> {
    if names.len() > MAX_BOUND_NAMES {
        return Err(ApiError::invalid_request(format!(
            "at most {MAX_BOUND_NAMES} DNS names"
        )));
    }
    names
        .into_iter()
        .map(|name| {
            plain_dns_name(&name).ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "'{name}' is not a plain DNS name (no wildcards, no trailing dot)"
                ))
            })
        })
        .collect()
}
