//! The answer to a successful issuance or renewal: the SVID, its chain and
//! the trust bundle.

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::ca::{CertificateAuthority, IssuedCertificate, certificate_pem};
use crate::rfc3339;

/// An [`SvidResponse`](sigil_core::wire::SvidResponse), rendered as JSON.
///
/// The bytes are those `Json(SvidResponse { .. })` gives (a test pins it),
/// but two thirds of them are the CA's PEM blocks, the same in every
/// answer: the issuing CA's and the bundle's are escaped once, when the CA
/// is loaded, not once per certificate.
pub(super) struct SvidBody(Vec<u8>);

impl IntoResponse for SvidBody {
    fn into_response(self) -> Response {
        (
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            self.0,
        )
            .into_response()
    }
}

/// The answer shared by issuance and renewal.
pub(super) fn svid_response(
    state: &AppState,
    issued: &IssuedCertificate,
) -> Result<SvidBody, ApiError> {
    render(&state.issuance.ca(), issued)
        .map(SvidBody)
        .map_err(|error| ApiError::internal(format!("rendering the answer: {error}")))
}

/// The fields in `SvidResponse`'s order, each value written by serde_json,
/// but for the two PEM blocks escaped at load.
fn render(ca: &CertificateAuthority, issued: &IssuedCertificate) -> serde_json::Result<Vec<u8>> {
    let issuer_pem = ca.issuer_of(issued).pem_json();
    let bundle_pem = ca.bundle_pem_json();
    let mut body = Vec::with_capacity(2048 + issuer_pem.len() + bundle_pem.len());
    let field = |body: &mut Vec<u8>, name: &str, value: &str| {
        body.extend_from_slice(name.as_bytes());
        serde_json::to_writer(&mut *body, value)
    };
    field(&mut body, "{\"spiffe_id\":", issued.spiffe_id.as_str())?;
    field(&mut body, ",\"serial\":", &issued.serial.to_string())?;
    let not_after = rfc3339::format(issued.not_after);
    field(&mut body, ",\"not_after\":", &not_after)?;
    field(
        &mut body,
        ",\"cert_chain_pem\":",
        &certificate_pem(&issued.der),
    )?;
    // The chain is the leaf, then its issuing CA, in one string: the
    // leaf's closing quote gives way to the issuer's PEM.
    body.pop();
    body.extend_from_slice(issuer_pem.as_bytes());
    body.extend_from_slice(b"\",\"bundle_pem\":\"");
    body.extend_from_slice(bundle_pem.as_bytes());
    body.extend_from_slice(b"\"}");
    Ok(body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use sigil_core::SpiffeId;
    use sigil_core::wire::SvidResponse;
    use time::OffsetDateTime;

    use super::*;
    use crate::ca::{LeafRequest, SubjectKey, example_authority};
    use crate::csr::VerifiedPublicKey;

    #[test]
    fn the_answer_is_byte_for_byte_what_serde_json_makes_of_an_svid_response() {
        let ca = example_authority();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let id: SpiffeId = "spiffe://example.org/agents/reporter".parse().unwrap();
        let issued = ca
            .issue(
                &LeafRequest {
                    spiffe_id: &id,
                    key: &SubjectKey::Verified(VerifiedPublicKey::from_own_key(&key).unwrap()),
                    dns_names: &[],
                    ip_addresses: &[],
                    ttl: Duration::from_secs(3600),
                },
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        let expected = serde_json::to_vec(&SvidResponse {
            spiffe_id: issued.spiffe_id.clone(),
            serial: issued.serial.to_string(),
            not_after: rfc3339::format(issued.not_after),
            cert_chain_pem: ca.chain_pem(&issued),
            bundle_pem: ca.bundle_pem(),
        })
        .unwrap();
        let rendered = render(&ca, &issued).unwrap();
        assert_eq!(
            String::from_utf8(rendered).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}
