//! A CA certificate (a root or an issuing CA), parsed once.

use std::fmt;

use anyhow::{Context, ensure};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use super::{certificate_pem, fingerprint};
use crate::serial::Serial;

/// A CA certificate (the root or an issuing CA) with what Sigil needs to know
/// of it.
#[derive(Clone)]
pub struct CaCertificate {
    pub(super) der: CertificateDer<'static>,
    pub(super) pem: String,
    /// The PEM as the contents of a JSON string, escaped once: every
    /// issuance answer carries the issuing CA's.
    pub(super) pem_json: String,
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
    pub(super) key_id: String,
    /// The key id of the CA that signed it, when it names one.
    pub(super) authority_key_id: Option<String>,
}

impl CaCertificate {
    pub(super) fn from_pem(pem_text: &str) -> anyhow::Result<Self> {
        let block = pem::parse(pem_text).context("CA certificate is not PEM")?;
        ensure!(
            block.tag() == "CERTIFICATE",
            "CA certificate PEM has tag {}",
            block.tag()
        );
        let der = CertificateDer::from(block.contents().to_vec());
        let (_, cert) = X509Certificate::from_der(&der).context("CA certificate does not parse")?;
        let key_id = cert
            .extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(ski) => Some(hex::encode(ski.0)),
                _ => None,
            })
            .context("CA certificate has no subject key identifier")?;
        let authority_key_id =
            cert.extensions()
                .iter()
                .find_map(|ext| match ext.parsed_extension() {
                    ParsedExtension::AuthorityKeyIdentifier(aki) => {
                        aki.key_identifier.as_ref().map(|id| hex::encode(id.0))
                    }
                    _ => None,
                });
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        let pem = certificate_pem(&der);
        Ok(Self {
            pem_json: json_string_contents(&pem),
            pem,
            der,
            not_before,
            not_after,
            key_id,
            authority_key_id,
        })
    }

    /// The certificate, DER.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The certificate, PEM, escaped as the contents of a JSON string
    /// (without the quotes).
    pub fn pem_json(&self) -> &str {
        &self.pem_json
    }

    /// Its serial, when it is one Sigil could have made (16 bytes).
    pub fn serial(&self) -> Option<Serial> {
        let (_, parsed) = X509Certificate::from_der(&self.der).ok()?;
        Serial::from_der_bytes(parsed.raw_serial())
    }

    /// Start of validity.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The subject key identifier, lowercase hex: the name of this CA's CRL.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// `sha256:<64 lowercase hex>` of the DER: what agents pin.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.der)
    }

    /// The key id of the CA that signed it, when it names one.
    pub fn authority_key_id(&self) -> Option<&str> {
        self.authority_key_id.as_deref()
    }
}

impl fmt::Debug for CaCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaCertificate")
            .field("key_id", &self.key_id)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// `text` as the contents of a JSON string: escaped as `serde_json` escapes
/// it, without the quotes.
fn json_string_contents(text: &str) -> String {
    // Serialising a `str` cannot fail, and gives its contents between two
    // quotes.
    let quoted = serde_json::to_string(text).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|contents| contents.strip_suffix('"'))
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::json_string_contents;

    #[test]
    fn json_string_contents_are_what_serde_json_puts_between_the_quotes() {
        for text in [
            "",
            "plain",
            "two\nlines\r\n",
            "\"quoted\" \\ back",
            "\u{1}\t\u{7f}",
            "é ✓",
        ] {
            let contents = json_string_contents(text);
            assert_eq!(
                format!("\"{contents}\""),
                serde_json::to_string(text).unwrap()
            );
            let back: String = serde_json::from_str(&format!("\"{contents}\"")).unwrap();
            assert_eq!(back, text);
        }
    }
}
