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

/// The PKCS#8 v2 document ring writes for an Ed25519 key (RFC 5958): a
/// SEQUENCE of 81 bytes holding version 1, the algorithm, the seed, and
/// then the public key in `[1]`.
const ED25519_PKCS8_V2_PREFIX: [u8; 16] = [
    0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
/// Its length.
const ED25519_PKCS8_V2_LEN: usize = 83;
/// The start of a PKCS#8 v1 document for an Ed25519 key (RFC 8410), which
/// the seed completes.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl KeyAndCsr {
    /// The private key, PKCS#8 PEM. An Ed25519 key is written as PKCS#8
    /// v1 (RFC 8410): OpenSSL before 3.5 cannot read the v2 form ring
    /// produces, and the public key it adds is derived from the seed anyway.
    pub(crate) fn key_pem(&self) -> String {
        let der = self.key.serialize_der();
        let der = match der.strip_prefix(&ED25519_PKCS8_V2_PREFIX[..]) {
            Some(rest) if der.len() == ED25519_PKCS8_V2_LEN => {
                let mut v1 = ED25519_PKCS8_V1_PREFIX.to_vec();
                v1.extend_from_slice(&rest[..32]);
                v1
            }
            _ => der,
        };
        pem::encode_config(
            &pem::Pem::new("PRIVATE KEY", der),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_keys_are_written_as_pkcs8_v1_and_read_back() {
        let fresh = KeyType::Ed25519.generate().unwrap();
        let pem_text = fresh.key_pem();
        let der = pem::parse(&pem_text).unwrap().into_contents();
        assert_eq!(der.len(), 48);
        assert_eq!(der[..16], ED25519_PKCS8_V1_PREFIX);
        let reread = KeyPair::try_from(der.as_slice()).unwrap();
        assert_eq!(reread.public_key_raw(), fresh.key.public_key_raw());
    }

    #[test]
    fn p256_keys_are_written_as_generated() {
        let fresh = KeyType::P256.generate().unwrap();
        let der = pem::parse(fresh.key_pem()).unwrap().into_contents();
        assert_eq!(der, fresh.key.serialize_der());
    }
}
