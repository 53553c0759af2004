//! An X509-SVID with its private key, ready for rustls.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sigil_core::SpiffeId;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::Error;

/// The agent's current identity: the chain the CA returned (leaf first) and
/// the private key made for it. `Debug` never shows the key.
pub struct Svid {
    spiffe_id: SpiffeId,
    serial: String,
    not_after: SystemTime,
    received: SystemTime,
    chain: Vec<CertificateDer<'static>>,
    chain_pem: String,
    key_pem: String,
    certified: Arc<CertifiedKey>,
}

impl std::fmt::Debug for Svid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Svid")
            .field("spiffe_id", &self.spiffe_id.as_str())
            .field("serial", &self.serial)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Svid {
    /// Reads a chain and its key (both PEM) and checks that they belong
    /// together. `received` is when this process got them: renewal is
    /// timed from there, not from notBefore (which the CA backdates).
    pub(crate) fn new(
        chain_pem: String,
        key_pem: String,
        received: SystemTime,
    ) -> Result<Self, Error> {
        let invalid = |message: String| Error::Answer(message);
        let chain: Vec<CertificateDer<'static>> = pem::parse_many(&chain_pem)
            .map_err(|e| invalid(format!("certificate chain: {e}")))?
            .into_iter()
            .filter(|block| block.tag() == "CERTIFICATE")
            .map(|block| CertificateDer::from(block.into_contents()))
            .collect();
        let leaf = chain
            .first()
            .ok_or_else(|| invalid("the certificate chain is empty".to_owned()))?;
        let (_, cert) =
            X509Certificate::from_der(leaf).map_err(|e| invalid(format!("certificate: {e}")))?;
        let spiffe_id = sigil_verifier::spiffe_id_of(&cert).map_err(invalid)?;
        let serial = cert
            .raw_serial()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let not_after = u64::try_from(cert.validity().not_after.timestamp())
            .map(|seconds| UNIX_EPOCH + Duration::from_secs(seconds))
            .unwrap_or(UNIX_EPOCH);
        let key_der = pem::parse(&key_pem)
            .map_err(|e| Error::Key(format!("private key: {e}")))?
            .into_contents();
        let key_pair = rcgen::KeyPair::try_from(key_der.as_slice())
            .map_err(|e| Error::Key(format!("private key: {e}")))?;
        if rcgen::PublicKeyData::subject_public_key_info(&key_pair) != cert.public_key().raw {
            return Err(Error::Key(
                "the private key does not belong to the certificate".to_owned(),
            ));
        }
        let private_key = PrivateKeyDer::try_from(key_der)
            .map_err(|e| Error::Key(format!("private key: {e}")))?;
        let signing_key = rustls::crypto::ring::sign::any_supported_type(&private_key)
            .map_err(|e| Error::Key(format!("private key: {e}")))?;
        let certified = Arc::new(CertifiedKey::new(chain.clone(), signing_key));
        Ok(Self {
            spiffe_id,
            serial,
            not_after,
            received,
            chain,
            chain_pem,
            key_pem,
            certified,
        })
    }

    /// The SPIFFE ID.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The certificate's serial, lowercase hex.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// When the certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The chain, leaf first, DER.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The chain, leaf first, PEM.
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// The private key, PKCS#8 PEM. Sensitive: write it only to a file
    /// with mode 0600 (as [`crate::SvidFiles`] does), never to a log.
    pub fn private_key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The chain and key as rustls uses them.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified)
    }

    /// The chain and key as `sigil-verifier` takes them.
    pub(crate) fn credentials(&self) -> Result<sigil_verifier::Credentials, Error> {
        Ok(sigil_verifier::Credentials::from_pem(
            self.chain_pem.as_bytes(),
            self.key_pem.as_bytes(),
        )?)
    }

    /// Whether the certificate has expired at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        now >= self.not_after
    }

    /// When to renew: `share` (about one half) of the way from receipt to
    /// expiry, and never sooner than `floor` after receipt (a clock ahead
    /// of the CA's must not make renewal a loop).
    pub(crate) fn renewal_time(&self, share: f64, floor: Duration) -> SystemTime {
        let remaining = self
            .not_after
            .duration_since(self.received)
            .unwrap_or_default();
        self.received + remaining.mul_f64(share.clamp(0.0, 1.0)).max(floor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn self_signed(uri: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(uri.try_into().unwrap())];
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let (chain, key) = self_signed("spiffe://example.org/a");
        let svid = Svid::new(chain, key.clone(), SystemTime::now()).unwrap();
        let shown = format!("{svid:?}");
        assert!(shown.contains("spiffe://example.org/a"), "{shown}");
        let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(
            !shown.contains("PRIVATE KEY") && !shown.contains(&body[..20]),
            "{shown}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (chain, _) = self_signed("spiffe://example.org/a");
        let (_, other_key) = self_signed("spiffe://example.org/b");
        assert!(matches!(
            Svid::new(chain, other_key, SystemTime::now()),
            Err(Error::Key(_))
        ));
    }
}
