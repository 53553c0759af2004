//! The X509-SVID rules, read from a certificate: exactly one URI SAN that is
//! a SPIFFE ID, not a CA, and no certificate- or CRL-signing key usage.

use std::time::SystemTime;

use sigil_core::SpiffeId;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The one SPIFFE ID a certificate names in its URI SANs.
///
/// # Errors
///
/// The SAN extension does not parse, or there is not exactly one URI SAN,
/// or it is not a SPIFFE ID.
pub fn spiffe_id_of(cert: &X509Certificate<'_>) -> Result<SpiffeId, String> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("subject alternative name: {e}"))?
        .ok_or_else(|| "the certificate names no SPIFFE ID".to_owned())?;
    let mut uris = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        });
    let (Some(uri), None) = (uris.next(), uris.next()) else {
        return Err("an X509-SVID has exactly one URI SAN".to_owned());
    };
    uri.parse()
        .map_err(|e| format!("the certificate's URI SAN is not a SPIFFE ID: {e}"))
}

/// What the verifier reads from a leaf that passed the X509-SVID rules.
#[derive(Debug, Clone)]
pub(crate) struct Svid {
    pub(crate) spiffe_id: SpiffeId,
    pub(crate) serial: Box<[u8]>,
    /// The issuer's name, DER with its SEQUENCE header.
    pub(crate) issuer: Box<[u8]>,
    pub(crate) not_after: SystemTime,
}

impl Svid {
    /// Reads a leaf and applies the X509-SVID rules.
    pub(crate) fn parse(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("certificate does not parse: {e}"))?;
        let spiffe_id = spiffe_id_of(&cert)?;
        if spiffe_id.path().is_empty() {
            return Err(format!(
                "{spiffe_id} names a trust domain, not a workload; an X509-SVID leaf has a path"
            ));
        }
        if cert.is_ca() {
            return Err("an X509-SVID leaf must not be a CA".to_owned());
        }
        if let Some(usage) = cert.key_usage().map_err(|e| format!("key usage: {e}"))?
            && (usage.value.key_cert_sign() || usage.value.crl_sign())
        {
            return Err("an X509-SVID leaf must not carry keyCertSign or cRLSign".to_owned());
        }
        let not_after = u64::try_from(cert.validity().not_after.timestamp())
            .map(|seconds| std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
            .unwrap_or(std::time::UNIX_EPOCH);
        Ok(Self {
            spiffe_id,
            serial: Box::from(cert.raw_serial()),
            issuer: Box::from(cert.issuer().as_raw()),
            not_after,
        })
    }
}

/// What the revocation check needs of a CA certificate in a verified path.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    pub(crate) serial: Box<[u8]>,
    pub(crate) issuer: Box<[u8]>,
    pub(crate) spki: Box<[u8]>,
}

impl Link {
    pub(crate) fn parse(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("intermediate does not parse: {e}"))?;
        Ok(Self {
            serial: Box::from(cert.raw_serial()),
            issuer: Box::from(cert.issuer().as_raw()),
            spki: Box::from(cert.public_key().raw),
        })
    }
}
