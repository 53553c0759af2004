//! The one error type of the HTTP API. Every refusal is the JSON shape of
//! DESIGN.md with a stable `code`; a 500 carries no detail (the detail goes
//! to the log).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sigil_core::wire::{ErrorBody, ErrorDetail};

use crate::csr::CsrError;
use crate::issuance::IssuanceError;
use crate::store::StoreError;

/// The stable code of an error response, in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ErrorCode(pub(super) &'static str);

/// An API refusal: status, stable code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Whether the caller was refused for who it is (401 or 403), as
    /// opposed to what it sent or how the CA is doing.
    pub(super) fn refuses_the_caller(&self) -> bool {
        matches!(
            self.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        )
    }

    /// 400: malformed JSON, a missing or wrong field.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 400: a SPIFFE ID that does not parse or lies outside the trust domain.
    pub fn invalid_spiffe_id(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_spiffe_id", message)
    }

    /// 400: a TTL outside the bounds.
    pub fn invalid_ttl(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_ttl", message)
    }

    /// 401: an unknown, expired, used-up or forged attestation.
    pub fn invalid_attestation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_attestation", message)
    }

    /// 401: the route needs a client certificate and none was presented.
    pub fn client_certificate_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "client_certificate_required",
            "this route needs a client certificate (mTLS)",
        )
    }

    /// 401: the client certificate is unknown, expired or foreign.
    pub fn invalid_client_certificate(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client_certificate",
            message,
        )
    }

    /// 403: a valid caller without the right.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 403: the presented certificate is revoked.
    pub fn revoked(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "revoked", message)
    }

    /// 403: the identity is banned.
    pub fn banned(spiffe_id: &sigil_core::SpiffeId) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "banned",
            format!("{spiffe_id} is banned; an admin must lift the ban first"),
        )
    }

    /// 403: a certificate renewed from outside the head of its line; the
    /// identity is now banned.
    pub fn lineage_fork(spiffe_id: &sigil_core::SpiffeId) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "lineage_fork",
            format!(
                "{spiffe_id} was renewed from a certificate its line had moved on from: \
                 two parties hold it. It is banned and its certificates are revoked"
            ),
        )
    }

    /// 403: an identity in the CA's own namespace.
    pub fn reserved_identity(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "reserved_identity", message)
    }

    /// 404: no such route.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such route")
    }

    /// 404: no such thing.
    pub fn not_found_message(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method",
        )
    }

    /// 413.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {limit} bytes"),
        )
    }

    /// 415.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "request bodies must be application/json",
        )
    }

    /// 429, with the seconds to wait in Retry-After.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after: Some(seconds.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests from this address; retry later",
            )
        }
    }

    /// 500; `detail` is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// 409: the request clashes with the CA's state (a root rotation
    /// already under way).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 503: the store cannot write, or the CA is not ready.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(%detail, "unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the CA cannot serve this now; retry shortly",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        // For the metrics layer, which sees only the response.
        response.extensions_mut().insert(ErrorCode(self.code));
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<CsrError> for ApiError {
    fn from(error: CsrError) -> Self {
        match error {
            CsrError::UnsupportedKey(message) => {
                Self::new(StatusCode::BAD_REQUEST, "unsupported_key", message)
            }
            other => Self::new(StatusCode::BAD_REQUEST, "invalid_csr", other.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) => Self::unavailable(error),
            StoreError::Banned(spiffe_id) => Self::banned(&spiffe_id),
            other => Self::internal(other),
        }
    }
}

impl From<IssuanceError> for ApiError {
    fn from(error: IssuanceError) -> Self {
        match error {
            IssuanceError::Store(store) => store.into(),
            IssuanceError::Csr(refused) => refused.into(),
            signing => Self::internal(signing),
        }
    }
}
