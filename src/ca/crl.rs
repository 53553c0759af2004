//! CRLs: v2, with CRL number and AKI, and no IssuingDistributionPoint, so
//! that each is authoritative for every certificate of its issuer whatever
//! URL a leaf names (a non-matching IDP makes webpki treat a revoked leaf
//! as "unknown").

use std::time::Duration;

use rcgen::{
    CertificateRevocationListParams, Issuer, KeyIdMethod, RevokedCertParams, SerialNumber,
};
use time::OffsetDateTime;

use super::ca_key::CaKey;
use super::{CertificateAuthority, profile};
use crate::revocation::{CrlSigner, ReasonCode, RevokedEntry, SignedCrl};

/// How long an issuing CA's CRL is valid unless configured otherwise.
pub const DEFAULT_CRL_VALIDITY: Duration = Duration::from_secs(3600);
/// How long the root's CRL is valid: days, so that the root key is used
/// rarely.
pub const ROOT_CRL_VALIDITY: Duration = Duration::from_secs(7 * 86_400);

/// The minimal big-endian bytes of a CRL number.
fn number_bytes(number: u64) -> Vec<u8> {
    let bytes = number.to_be_bytes();
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    bytes[first..].to_vec()
}

impl CertificateAuthority {
    /// The signer of a retired issuing CA, by key id.
    fn retired_issuer(&self, key_id: &str) -> Option<&Issuer<'static, CaKey>> {
        self.retired
            .iter()
            .find(|(certificate, _)| certificate.key_id == key_id)
            .map(|(_, issuer)| issuer)
    }

    /// The signer of a trusted root, by key id.
    fn root_signer(&self, key_id: &str) -> Option<&Issuer<'static, CaKey>> {
        if key_id == self.root.key_id {
            return Some(&self.root_issuer);
        }
        self.other_roots
            .iter()
            .find(|(certificate, _)| certificate.key_id == key_id)
            .map(|(_, issuer)| issuer)
    }

    /// How long CRLs of the CA with this key id are valid, if it is one of
    /// this CA's.
    pub fn crl_validity(&self, issuer_key_id: &str) -> Option<Duration> {
        if issuer_key_id == self.issuing.key_id || self.retired_issuer(issuer_key_id).is_some() {
            Some(self.crl_validity)
        } else if self.root_signer(issuer_key_id).is_some() {
            Some(ROOT_CRL_VALIDITY)
        } else {
            None
        }
    }
}

impl CrlSigner for CertificateAuthority {
    fn sign_crl(
        &self,
        issuer_key_id: &str,
        number: u64,
        entries: &[RevokedEntry],
        now: OffsetDateTime,
    ) -> Result<SignedCrl, String> {
        let (issuer, validity) = if issuer_key_id == self.issuing.key_id {
            (&self.issuer, self.crl_validity)
        } else if let Some(root) = self.root_signer(issuer_key_id) {
            (root, ROOT_CRL_VALIDITY)
        } else if let Some(retired) = self.retired_issuer(issuer_key_id) {
            (retired, self.crl_validity)
        } else {
            return Err(format!("no CA with key id {issuer_key_id}"));
        };
        let this_update = profile::whole_seconds(now);
        let next_update = this_update + validity;
        let key_id = hex::decode(issuer_key_id).map_err(|e| format!("key id: {e}"))?;
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(number_bytes(number)),
            issuing_distribution_point: None,
            revoked_certs: entries
                .iter()
                .map(|entry| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(entry.serial.as_bytes()),
                    revocation_time: entry.revoked_at,
                    // RFC 5280: the reason code `unspecified` SHOULD be absent.
                    reason_code: (entry.reason != ReasonCode::Unspecified)
                        .then(|| entry.reason.into()),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::PreSpecified(key_id),
        };
        let crl = params
            .signed_by(issuer)
            .map_err(|e| format!("signing the CRL: {e}"))?;
        Ok(SignedCrl {
            issuer_key_id: issuer_key_id.to_owned(),
            number,
            this_update,
            next_update,
            der: crl.der().to_vec(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use x509_parser::prelude::{FromDer, X509Certificate};
    use x509_parser::revocation_list::CertificateRevocationList;

    use super::*;
    use crate::serial::Serial;

    #[test]
    fn crl_numbers_are_minimal_big_endian() {
        assert_eq!(number_bytes(0), [0]);
        assert_eq!(number_bytes(1), [1]);
        assert_eq!(number_bytes(256), [1, 0]);
        assert_eq!(number_bytes(u64::MAX), [0xff; 8]);
    }

    #[test]
    fn a_crl_lists_its_entries_verifies_with_its_issuer_and_has_no_idp() {
        let ca = crate::ca::example_authority();
        let revoked = Serial::generate().unwrap();
        let entry = RevokedEntry {
            serial: revoked,
            revoked_at: profile::whole_seconds(OffsetDateTime::now_utc()),
            reason: ReasonCode::KeyCompromise,
        };
        for (key_id, cert, validity) in [
            (
                ca.issuing().key_id().to_owned(),
                ca.issuing().der().clone(),
                DEFAULT_CRL_VALIDITY,
            ),
            (
                ca.root().key_id().to_owned(),
                ca.root().der().clone(),
                ROOT_CRL_VALIDITY,
            ),
        ] {
            let signed = ca
                .sign_crl(
                    &key_id,
                    300,
                    std::slice::from_ref(&entry),
                    OffsetDateTime::now_utc(),
                )
                .unwrap();
            assert_eq!(signed.next_update - signed.this_update, validity);
            let (_, crl) = CertificateRevocationList::from_der(&signed.der).unwrap();
            let (_, issuer) = X509Certificate::from_der(&cert).unwrap();
            crl.verify_signature(issuer.public_key()).unwrap();
            assert_eq!(
                crl.crl_number().map(|n| n.to_string()),
                Some("300".to_owned())
            );
            let serials: Vec<Vec<u8>> = crl
                .iter_revoked_certificates()
                .map(|r| r.raw_serial().to_vec())
                .collect();
            assert_eq!(serials, [revoked.as_bytes().to_vec()]);
            assert!(
                crl.extensions()
                    .iter()
                    .all(|e| e.oid.to_id_string() != "2.5.29.28"),
                "no IssuingDistributionPoint"
            );
            assert_eq!(crl.issuer(), issuer.subject());
        }
        assert!(
            ca.sign_crl("00", 1, &[], OffsetDateTime::now_utc())
                .is_err()
        );
    }
}
