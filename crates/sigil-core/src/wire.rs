//! The JSON bodies of the Sigil HTTP API (v1), shared by the CA and its
//! clients so that both sides agree on every field.
//!
//! Request types reject unknown fields: a misspelt `ttl_second` must be an
//! error, not a silently ignored option.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::SpiffeId;

/// `POST /v1/svid`: trade an attestation and a CSR for an X509-SVID.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SvidRequest {
    /// PKCS#10 certificate signing request, PEM. Only its public key is used.
    pub csr: String,
    /// Proof of what the caller is.
    pub attestation: Attestation,
    /// Requested lifetime; the CA's default when absent. Never clamped:
    /// a value outside the CA's bounds is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// `POST /v1/renew`: trade the presented SVID (mTLS) and a new CSR for a
/// fresh SVID of the same identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// PKCS#10 certificate signing request, PEM.
    pub csr: String,
    /// Requested lifetime; see [`SvidRequest::ttl_seconds`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// How an agent proves what it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Attestation {
    /// A one-time secret an admin created for one SPIFFE ID.
    JoinToken {
        /// The token as the admin received it.
        token: Secret,
    },
    /// A JWT the workload's platform signed (a Kubernetes service-account
    /// token, a CI OIDC token, a cloud identity token), judged by the CA's
    /// attestor of that name.
    Jwt {
        /// The name of the attestor configured on the CA.
        attestor: String,
        /// The compact JWS, as the platform issued it.
        token: Secret,
    },
}

/// A bearer secret (a join token, a JWT). Its `Debug` output is redacted so that it
/// cannot leak through logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret string.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself. Call this only where the secret is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The answer to a successful issuance or renewal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SvidResponse {
    /// The identity in the certificate.
    pub spiffe_id: SpiffeId,
    /// The certificate's serial, 32 lowercase hex digits.
    pub serial: String,
    /// End of validity, RFC 3339 UTC.
    pub not_after: String,
    /// The leaf, then the issuing CA, PEM.
    pub cert_chain_pem: String,
    /// Every root currently trusted, PEM.
    pub bundle_pem: String,
}

/// `POST /admin/v1/join-tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinTokenRequest {
    /// The identity the token grants. Kept as text here so that the CA can
    /// answer a malformed ID with `invalid_spiffe_id` rather than a generic
    /// `invalid_request`.
    pub spiffe_id: String,
    /// How long the token may be redeemed; the CA's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// How many certificates the token may yield; 1 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<u32>,
    /// DNS names the admin binds to the identity, for agents that also serve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// IP addresses the admin binds to the identity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<IpAddr>,
}

/// The answer to `POST /admin/v1/join-tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinTokenResponse {
    /// The token; shown once, stored by the CA only as a hash.
    pub token: Secret,
    /// The identity it grants.
    pub spiffe_id: SpiffeId,
    /// How many certificates it may yield.
    pub uses: u32,
    /// When it stops being redeemable, RFC 3339 UTC.
    pub expires_at: String,
}

/// `POST /admin/v1/revocations`: exactly one of `serial` and `spiffe_id`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// One certificate, by serial (32 lowercase hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Every live certificate of this identity, which is banned from then
    /// on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<String>,
    /// RFC 5280 reason name, such as `keyCompromise`; `unspecified` when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The answer to a revocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevokeResponse {
    /// The serials now revoked.
    pub revoked: Vec<String>,
}

/// `GET /admin/v1/certificates`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateList {
    /// One page, ordered by serial.
    pub certificates: Vec<CertificateInfo>,
}

/// A certificate as the admin API lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertificateInfo {
    /// Its serial.
    pub serial: String,
    /// Its identity.
    pub spiffe_id: SpiffeId,
    /// Start of validity, RFC 3339 UTC.
    pub not_before: String,
    /// End of validity, RFC 3339 UTC.
    pub not_after: String,
    /// The certificate it was renewed from.
    pub parent_serial: Option<String>,
    /// When it was revoked, RFC 3339 UTC.
    pub revoked_at: Option<String>,
    /// Why it was revoked (RFC 5280 name).
    pub reason: Option<String>,
}

/// `GET /admin/v1/status`: the CA at a glance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusResponse {
    /// `ok`, or `degraded` when the store cannot be written or read.
    pub health: String,
    /// Why the CA is degraded, when it is.
    pub problem: Option<String>,
    /// The server's version.
    pub version: String,
    /// The trust domain.
    pub trust_domain: String,
    /// The roots and issuing CAs, and when they expire.
    pub issuers: Vec<IssuerStatus>,
    /// The trust bundle's `spiffe_sequence`: it grows whenever a root
    /// rotation adds or drops a root.
    #[serde(default)]
    pub spiffe_sequence: u64,
    /// Certificate counts; absent when the store could not be read.
    pub certificates: Option<CertificateCounts>,
    /// The CRLs being served.
    pub crls: Vec<CrlStatus>,
    /// The sequence number of the newest audit record; absent when the
    /// store could not be read.
    pub last_audit_seq: Option<u64>,
}

/// One CA certificate in the status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuerStatus {
    /// `root` (the active root), `next_root` (added by a root rotation,
    /// not yet signing), `previous_root` (replaced, kept while
    /// certificates chain to it), `issuing`, or `retired` (a replaced
    /// issuing CA).
    pub role: String,
    /// Its key identifier, hex (the `{issuer_key_id}` of `/v1/crl/...`).
    pub key_id: String,
    /// Start of validity, RFC 3339 UTC.
    pub not_before: String,
    /// End of validity, RFC 3339 UTC.
    pub not_after: String,
    /// Seconds until `not_after` (negative once expired).
    pub expires_in_seconds: i64,
    /// A root's SHA-256 fingerprint, `sha256:<hex>`: what agents pin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// When a `next_root` takes over, RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activates_at: Option<String>,
}

/// How many certificates the store holds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct CertificateCounts {
    /// Neither revoked nor expired.
    pub live: u64,
    /// Revoked and not yet expired: the CRLs' entries.
    pub revoked: u64,
    /// Every certificate ever issued.
    pub issued: u64,
}

/// One CRL being served.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CrlStatus {
    /// The key identifier of the CA whose certificates it covers.
    pub issuer_key_id: String,
    /// Its CRL number.
    pub number: u64,
    /// When it was signed, RFC 3339 UTC.
    pub this_update: String,
    /// When the next one is due, RFC 3339 UTC.
    pub next_update: String,
    /// Seconds since it was signed.
    pub age_seconds: i64,
}

/// Every error the API returns has this shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// A stable machine-readable code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable code, such as `invalid_csr`; see the API documentation.
    pub code: String,
    /// What went wrong, for a human.
    pub message: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug_output() {
        let request = SvidRequest {
            csr: String::new(),
            attestation: Attestation::JoinToken {
                token: Secret::new("sigil_jt_supersecret"),
            },
            ttl_seconds: None,
        };
        let debug = format!("{request:?}");
        assert!(!debug.contains("supersecret"), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn svid_request_reads_the_documented_shape() {
        let json =
            r#"{"csr":"PEM","attestation":{"type":"join_token","token":"t"},"ttl_seconds":60}"#;
        let request: SvidRequest = serde_json::from_str(json).unwrap();
        assert_eq!(request.ttl_seconds, Some(60));
        let Attestation::JoinToken { token } = request.attestation else {
            panic!("expected a join token");
        };
        assert_eq!(token.expose(), "t");
    }

    #[test]
    fn jwt_attestations_read_the_documented_shape_and_hide_the_token() {
        let json =
            r#"{"csr":"PEM","attestation":{"type":"jwt","attestor":"k8s-prod","token":"eyJ.x.y"}}"#;
        let request: SvidRequest = serde_json::from_str(json).unwrap();
        assert!(!format!("{request:?}").contains("eyJ"));
        let Attestation::Jwt { attestor, token } = request.attestation else {
            panic!("expected a JWT");
        };
        assert_eq!((attestor.as_str(), token.expose()), ("k8s-prod", "eyJ.x.y"));
        let missing = r#"{"csr":"x","attestation":{"type":"jwt","token":"t"}}"#;
        assert!(serde_json::from_str::<SvidRequest>(missing).is_err());
    }

    #[test]
    fn svid_request_refuses_unknown_fields_and_attestation_types() {
        let misspelt = r#"{"csr":"x","attestation":{"type":"join_token","token":"t"},"ttl":60}"#;
        assert!(serde_json::from_str::<SvidRequest>(misspelt).is_err());
        let unknown = r#"{"csr":"x","attestation":{"type":"magic","token":"t"}}"#;
        assert!(serde_json::from_str::<SvidRequest>(unknown).is_err());
    }
}
