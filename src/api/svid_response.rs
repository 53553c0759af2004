//! The answer to a successful issuance or renewal: the SVID, its chain and
//! the trust bundle.

use sigil_core::wire::SvidResponse;

use super::{ApiError, AppState};
use crate::ca::IssuedCertificate;
use crate::rfc3339;

/// The answer shape shared by issuance and renewal.
pub(super) fn svid_response(
    state: &AppState,
    issued: &IssuedCertificate,
) -> Result<SvidResponse, ApiError> {
    let ca = state.issuance.ca();
    Ok(SvidResponse {
        spiffe_id: issued.spiffe_id.clone(),
        serial: issued.serial.to_string(),
        not_after: rfc3339::format(issued.not_after),
        cert_chain_pem: ca.chain_pem(issued),
        bundle_pem: ca.bundle_pem(),
    })
}
