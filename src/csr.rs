//! Certificate signing requests: the CA takes a CSR's public key, after the
//! CSR's signature proves the caller holds the private key, and nothing else.
//!
//! rcgen's `CertificateSigningRequestParams` is deliberately not used: it
//! copies requested SANs, key usages and basicConstraints (a CSR could ask
//! for CA:TRUE), refuses ordinary extensions, and derives the key type from
//! the signature algorithm, so a P-256 key signed with SHA-384 comes out
//! labelled as P-384 (rcgen issue 448).

use std::fmt;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519, Oid,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

/// Which agent keys the CA accepts.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyPolicy {
    /// Accept RSA keys of 2048 to 4096 bits. Off by default.
    pub allow_rsa: bool,
}

/// The algorithm of an accepted agent key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256.
    P256,
    /// ECDSA on P-384.
    P384,
    /// Ed25519.
    Ed25519,
    /// RSA with this many bits of modulus.
    Rsa(usize),
}

/// Why a CSR was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Not one well-formed PKCS#10 request.
    #[error("{0}")]
    Malformed(String),
    /// The signature does not verify with the request's own key: the caller
    /// has not shown it holds the private key.
    #[error("CSR signature does not verify")]
    BadSignature,
    /// A key type or size the CA does not issue for.
    #[error("{0}")]
    UnsupportedKey(String),
}

/// A public key whose holder proved possession of the private key.
#[derive(Clone)]
pub struct VerifiedPublicKey {
    algorithm: KeyAlgorithm,
    spki: rcgen::SubjectPublicKeyInfo,
    spki_der: Vec<u8>,
}

impl fmt::Debug for VerifiedPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedPublicKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerifiedPublicKey {
    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The SubjectPublicKeyInfo, DER, exactly as the CSR carried it.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    pub(crate) fn rcgen(&self) -> &rcgen::SubjectPublicKeyInfo {
        &self.spki
    }

    /// The public half of a key the CA generated itself: possession is
    /// given.
    ///
    /// # Errors
    ///
    /// The key's algorithm is not one the CA issues for.
    pub fn from_own_key(key: &rcgen::KeyPair) -> anyhow::Result<Self> {
        use rcgen::PublicKeyData;
        let spki_der = key.subject_public_key_info();
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki_der)
            .map_err(|e| anyhow::anyhow!("own public key: {e}"))?;
        let algorithm = classify_key(&spki, KeyPolicy::default())?;
        let rcgen_spki = rcgen::SubjectPublicKeyInfo::from_der(&spki_der)
            .map_err(|e| anyhow::anyhow!("own public key: {e}"))?;
        Ok(Self {
            algorithm,
            spki: rcgen_spki,
            spki_der,
        })
    }
}

/// Parses one PEM CSR, checks its key against the policy and verifies its
/// signature.
///
/// # Errors
///
/// See [`CsrError`].
pub fn verify_csr_pem(text: &str, policy: KeyPolicy) -> Result<VerifiedPublicKey, CsrError> {
    let blocks = pem::parse_many(text)
        .map_err(|e| CsrError::Malformed(format!("CSR is not valid PEM: {e}")))?;
    let [block] = blocks.as_slice() else {
        return Err(CsrError::Malformed(format!(
            "expected exactly one PEM block, found {}",
            blocks.len()
        )));
    };
    if !matches!(
        block.tag(),
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"
    ) {
        return Err(CsrError::Malformed(format!(
            "expected a CERTIFICATE REQUEST PEM block, found {}",
            block.tag()
        )));
    }
    verify_csr_der(block.contents(), policy)
}

/// Like [`verify_csr_pem`], for DER.
///
/// # Errors
///
/// See [`CsrError`].
pub fn verify_csr_der(der: &[u8], policy: KeyPolicy) -> Result<VerifiedPublicKey, CsrError> {
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| CsrError::Malformed(format!("CSR does not parse as PKCS#10: {e}")))?;
    if !rest.is_empty() {
        return Err(CsrError::Malformed("CSR has trailing data".to_owned()));
    }
    let spki = &csr.certification_request_info.subject_pki;
    let algorithm = classify_key(spki, policy)?;
    let signed_with = &csr.signature_algorithm.algorithm;
    if !SIGNATURE_ALGORITHMS.contains(signed_with) {
        return Err(CsrError::Malformed(format!(
            "CSR signature algorithm {signed_with} is not supported; sign with ECDSA \
             (SHA-256 or SHA-384), Ed25519, or RSA PKCS#1 v1.5 (SHA-256/384/512)"
        )));
    }
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
    let rcgen_spki = rcgen::SubjectPublicKeyInfo::from_der(spki.raw)
        .map_err(|e| CsrError::Malformed(format!("CSR public key: {e}")))?;
    Ok(VerifiedPublicKey {
        algorithm,
        spki: rcgen_spki,
        spki_der: spki.raw.to_vec(),
    })
}

/// The CSR signature algorithms the CA verifies. Anything else is refused
/// as unsupported rather than reported as a forged signature.
const SIGNATURE_ALGORITHMS: [Oid<'static>; 6] = [
    OID_SIG_ECDSA_WITH_SHA256,
    OID_SIG_ECDSA_WITH_SHA384,
    OID_SIG_ED25519,
    OID_PKCS1_SHA256WITHRSA,
    OID_PKCS1_SHA384WITHRSA,
    OID_PKCS1_SHA512WITHRSA,
];

/// The size of an RSA modulus in bits, from its big-endian bytes (which
/// may carry leading zero bytes).
fn rsa_modulus_bits(modulus: &[u8]) -> usize {
    let zeros = modulus.iter().take_while(|&&b| b == 0).count();
    let significant = &modulus[zeros..];
    match significant.first() {
        Some(first) => 8 * significant.len() - first.leading_zeros() as usize,
        None => 0,
    }
}

fn classify_key(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
    policy: KeyPolicy,
) -> Result<KeyAlgorithm, CsrError> {
    let oid = &spki.algorithm.algorithm;
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .filter(|p| p.tag() == x509_parser::asn1_rs::Tag::Oid)
            .and_then(|p| p.as_oid().ok());
        return match curve {
            Some(curve) if curve == OID_EC_P256 => Ok(KeyAlgorithm::P256),
            Some(curve) if curve == OID_NIST_EC_P384 => Ok(KeyAlgorithm::P384),
            Some(curve) => Err(CsrError::UnsupportedKey(format!(
                "EC curve {curve} is not accepted; use P-256, P-384 or Ed25519"
            ))),
            None => Err(CsrError::UnsupportedKey(
                "EC keys with explicit curve parameters are not accepted; use the named curve \
                 P-256 or P-384, or Ed25519"
                    .to_owned(),
            )),
        };
    }
    if *oid == OID_SIG_ED25519 {
        return Ok(KeyAlgorithm::Ed25519);
    }
    if *oid == OID_PKCS1_RSAENCRYPTION {
        if !policy.allow_rsa {
            return Err(CsrError::UnsupportedKey(
                "RSA keys are not enabled on this CA; use P-256, P-384 or Ed25519".to_owned(),
            ));
        }
        let bits = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => rsa_modulus_bits(rsa.modulus),
            _ => {
                return Err(CsrError::Malformed(
                    "RSA public key does not parse".to_owned(),
                ));
            }
        };
        if !(2048..=4096).contains(&bits) {
            return Err(CsrError::UnsupportedKey(format!(
                "RSA keys must have 2048 to 4096 bits, this one has {bits}"
            )));
        }
        return Ok(KeyAlgorithm::Rsa(bits));
    }
    Err(CsrError::UnsupportedKey(format!(
        "key algorithm {oid} is not accepted; use P-256, P-384 or Ed25519"
    )))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rcgen::{
        CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
        PublicKeyData,
    };

    use super::*;

    fn csr_pem(key: &KeyPair) -> String {
        CertificateParams::new(vec!["x.example".to_owned()])
            .unwrap()
            .serialize_request(key)
            .unwrap()
            .pem()
            .unwrap()
    }

    #[test]
    fn p256_p384_and_ed25519_csrs_are_accepted_with_their_own_key() {
        for (alg, expected) in [
            (&PKCS_ECDSA_P256_SHA256, KeyAlgorithm::P256),
            (&PKCS_ECDSA_P384_SHA384, KeyAlgorithm::P384),
            (&PKCS_ED25519, KeyAlgorithm::Ed25519),
        ] {
            let key = KeyPair::generate_for(alg).unwrap();
            let verified = verify_csr_pem(&csr_pem(&key), KeyPolicy::default()).unwrap();
            assert_eq!(verified.algorithm(), expected);
            assert_eq!(verified.spki_der(), key.subject_public_key_info());
        }
    }

    #[test]
    fn a_csr_with_a_flipped_signature_bit_is_refused() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let pem_text = csr_pem(&key);
        let mut der = pem::parse(&pem_text).unwrap().into_contents();
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let error = verify_csr_der(&der, KeyPolicy::default()).unwrap_err();
        assert_eq!(error, CsrError::BadSignature);
    }

    #[test]
    fn a_csr_whose_key_was_swapped_is_refused() {
        // Sign with one key but carry another: no proof of possession.
        let signer = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut der = pem::parse(csr_pem(&signer)).unwrap().into_contents();
        let signer_spki = signer.subject_public_key_info();
        let other_spki = other.subject_public_key_info();
        let at = der
            .windows(signer_spki.len())
            .position(|w| w == signer_spki.as_slice())
            .unwrap();
        der[at..at + other_spki.len()].copy_from_slice(&other_spki);
        assert_eq!(
            verify_csr_der(&der, KeyPolicy::default()).unwrap_err(),
            CsrError::BadSignature
        );
    }

    #[test]
    fn rsa_modulus_bits_count_from_the_highest_set_bit() {
        assert_eq!(rsa_modulus_bits(&[]), 0);
        assert_eq!(rsa_modulus_bits(&[0, 0]), 0);
        assert_eq!(rsa_modulus_bits(&[0x01]), 1);
        let mut modulus = vec![0x00, 0x80];
        modulus.extend([0u8; 255]);
        assert_eq!(
            rsa_modulus_bits(&modulus),
            2048,
            "leading zero byte ignored"
        );
        let mut modulus = vec![0x01];
        modulus.extend([0u8; 512]);
        assert_eq!(rsa_modulus_bits(&modulus), 4097);
        let mut modulus = vec![0x7f];
        modulus.extend([0u8; 127]);
        assert_eq!(rsa_modulus_bits(&modulus), 1023);
    }

    #[test]
    fn garbage_several_blocks_and_wrong_tags_are_malformed() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let one = csr_pem(&key);
        let cert = rcgen::CertificateParams::new(vec!["a".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        for bad in [
            String::new(),
            "hello".to_owned(),
            format!("{one}{one}"),
            cert,
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
                .to_owned(),
        ] {
            let error = verify_csr_pem(&bad, KeyPolicy::default()).unwrap_err();
            assert!(
                matches!(error, CsrError::Malformed(_)),
                "{bad:?}: {error:?}"
            );
        }
    }
}
