//! The agent's key pairs: made here, never sent anywhere, one per SVID.

use rcgen::{CertificateParams, DistinguishedName, KeyPair};

use crate::Error;

/// The algorithm of the agent's keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// ECDSA P-256 (the default).
    #[default]
    P256,
    /// Ed25519.
    Ed25519,
}

/// A fresh key pair and a CSR for it that asks for nothing: the CA decides
/// every field of the certificate.
pub(crate) struct KeyAndCsr {
    pub(crate) key: KeyPair,
    pub(crate) csr_pem: String,
}

impl KeyType {
    pub(crate) fn generate(self) -> Result<KeyAndCsr, Error> {
        let algorithm = match self {
            Self::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
        };
        let key = KeyPair::generate_for(algorithm).map_err(|e| Error::Key(format!("{e}")))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let csr_pem = params
            .serialize_request(&key)
            .and_then(|csr| csr.pem())
            .map_err(|e| Error::Key(format!("CSR: {e}")))?;
        Ok(KeyAndCsr { key, csr_pem })
    }
}
