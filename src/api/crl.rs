//! Publishing CRLs: DER per issuer, PEM for all, with ETags, and a long
//! poll that answers as soon as any CRL newer than the caller's is signed.

use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::revocation::SignedCrl;

/// The header that carries the trust bundle's `spiffe_sequence` in
/// `/v1/bundle` and `/v1/crls` answers: a long-polling relying party
/// learns of a new root within a second, and fetches the bundle again.
pub const BUNDLE_SEQUENCE_HEADER: HeaderName = HeaderName::from_static("sigil-bundle-sequence");

/// The header that carries the highest CRL number in a `/v1/crls` answer.
pub const CRL_NUMBER_HEADER: HeaderName = HeaderName::from_static("sigil-crl-number");
/// The longest a long poll waits.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Clients may keep a copy but must revalidate it (cheaply, by ETag) before
/// use: revocation must reach them at once.
const CACHE_POLICY: &str = "public, no-cache";

fn etag(tag: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{tag}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// True when the request's If-None-Match names this ETag (or `*`).
fn not_modified(headers: &HeaderMap, tag: &HeaderValue) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|candidate| candidate.trim().trim_start_matches("W/"))
        .any(|candidate| candidate == "*" || tag.to_str().is_ok_and(|tag| tag == candidate))
}

fn der_response(headers: &HeaderMap, crl: &SignedCrl) -> Response {
    let tag = etag(&format!("crl-{}", crl.number));
    if not_modified(headers, &tag) {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (ETAG, tag),
                (CACHE_CONTROL, HeaderValue::from_static(CACHE_POLICY)),
            ],
        )
            .into_response();
    }
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/pkix-crl"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static(CACHE_POLICY)),
            (ETAG, tag),
        ],
        crl.der.clone(),
    )
        .into_response()
}

/// `GET /v1/crl`: the active issuing CA's CRL, DER.
pub(super) async fn active(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let ca = state.issuance.ca();
    crl_of(&state, ca.issuing().key_id(), &headers)
}

/// `GET /v1/crl/{issuer-key-id}`: that CA's CRL, DER.
pub(super) async fn by_issuer(
    State(state): State<AppState>,
    key_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    match key_id {
        Ok(Path(key_id)) => crl_of(&state, &key_id, &headers),
        Err(rejection) => {
            ApiError::invalid_request(format!("path: {}", rejection.body_text())).into_response()
        }
    }
}

fn crl_of(state: &AppState, key_id: &str, headers: &HeaderMap) -> Response {
    match state.crls.snapshot().get(key_id) {
        Some(crl) => der_response(headers, crl),
        None => ApiError::not_found_message(format!("no CRL for issuer {key_id}")).into_response(),
    }
}

/// Query of `GET /v1/crls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AllQuery {
    after: Option<u64>,
    wait: Option<u64>,
}

/// `GET /v1/crls[?after=N&wait=S]`: every current CRL, PEM. With `after`,
/// waits up to `wait` seconds (at most 60) for a CRL numbered above `N`,
/// else answers 304.
pub(super) async fn all(
    State(state): State<AppState>,
    query: Result<Query<AllQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => {
            return ApiError::invalid_request(format!("query: {}", rejection.body_text()))
                .into_response();
        }
    };
    // Read once the answer is ready: a root rotation swaps the CA before it
    // publishes the CRL that wakes long polls.
    let sequence = |state: &AppState| {
        (
            BUNDLE_SEQUENCE_HEADER,
            HeaderValue::from(state.issuance.ca().bundle_sequence()),
        )
    };
    let snapshot = match query.after {
        None => state.crls.snapshot(),
        Some(after) => {
            let wait = Duration::from_secs(query.wait.unwrap_or(0)).min(MAX_WAIT);
            match tokio::time::timeout(wait, state.crls.newer_than(after)).await {
                Ok(snapshot) if snapshot.highest() > after => snapshot,
                _ => {
                    let highest = state.crls.snapshot().highest();
                    return (
                        StatusCode::NOT_MODIFIED,
                        [
                            (CRL_NUMBER_HEADER, HeaderValue::from(highest)),
                            sequence(&state),
                        ],
                    )
                        .into_response();
                }
            }
        }
    };
    let highest = snapshot.highest();
    let numbers: Vec<String> = snapshot.iter().map(|crl| crl.number.to_string()).collect();
    let tag = etag(&format!("crls-{}", numbers.join("-")));
    if not_modified(&headers, &tag) {
        return (
            StatusCode::NOT_MODIFIED,
            [
                (ETAG, tag),
                (CACHE_CONTROL, HeaderValue::from_static(CACHE_POLICY)),
                (CRL_NUMBER_HEADER, HeaderValue::from(highest)),
                sequence(&state),
            ],
        )
            .into_response();
    }
    let pem_text: String = snapshot
        .iter()
        .map(|crl| {
            pem::encode_config(
                &pem::Pem::new("X509 CRL", crl.der.clone()),
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            )
        })
        .collect();
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-pem-file"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static(CACHE_POLICY)),
            (ETAG, tag),
            (CRL_NUMBER_HEADER, HeaderValue::from(highest)),
            sequence(&state),
        ],
        pem_text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let tag = etag("crl-7");
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(IF_NONE_MATCH, HeaderValue::from_static(value));
            headers
        };
        assert!(not_modified(&with("\"crl-7\""), &tag));
        assert!(not_modified(&with("\"crl-6\", W/\"crl-7\""), &tag));
        assert!(not_modified(&with("*"), &tag));
        assert!(!not_modified(&with("\"crl-6\""), &tag));
        assert!(!not_modified(&HeaderMap::new(), &tag));
    }
}
