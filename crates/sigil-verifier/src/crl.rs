//! CRLs as the verifier holds them: parsed once, the revoked serials in a
//! hash set, and the signature verified once per CRL (not per handshake).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::Error;

/// One issuer's CRL.
pub(crate) struct Crl {
    /// The issuer's name, DER (with its SEQUENCE header).
    pub(crate) issuer: Box<[u8]>,
    /// The CRL number (Sigil draws them from one global sequence).
    pub(crate) number: u128,
    /// When the CRL stops being current.
    pub(crate) next_update: SystemTime,
    /// The revoked serials, as the big-endian bytes of their INTEGERs.
    revoked: HashSet<Box<[u8]>>,
    /// The whole CRL, kept until its signature has been checked.
    der: Arc<[u8]>,
    /// The issuer key (SPKI, DER) the signature verified with: set once,
    /// at load when the issuer is known, else at the first handshake that
    /// reaches this issuer through a verified path.
    verified: OnceLock<Box<[u8]>>,
    /// Keys the signature did not verify with (a few at most), so that a
    /// wrong key costs one check, and never blocks the right one.
    failed: Mutex<Vec<Box<[u8]>>>,
}

impl std::fmt::Debug for Crl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crl")
            .field("number", &self.number)
            .field("next_update", &self.next_update)
            .field("revoked", &self.revoked.len())
            .finish_non_exhaustive()
    }
}

fn to_system_time(time: x509_parser::time::ASN1Time) -> SystemTime {
    let seconds = time.timestamp();
    match u64::try_from(seconds) {
        Ok(seconds) => UNIX_EPOCH + Duration::from_secs(seconds),
        Err(_) => UNIX_EPOCH,
    }
}

impl Crl {
    /// Parses a DER CRL. Its signature is not checked yet.
    pub(crate) fn parse(der: &[u8]) -> Result<Self, Error> {
        let (rest, crl) = CertificateRevocationList::from_der(der)
            .map_err(|e| Error::Crl(format!("does not parse: {e}")))?;
        if !rest.is_empty() {
            return Err(Error::Crl("trailing bytes after the CRL".to_owned()));
        }
        let number = crl
            .crl_number()
            .ok_or_else(|| Error::Crl("it has no CRL number".to_owned()))?
            .to_bytes_be();
        if number.len() > 16 {
            return Err(Error::Crl(
                "its CRL number is longer than 16 bytes".to_owned(),
            ));
        }
        let mut padded = [0u8; 16];
        padded[16 - number.len()..].copy_from_slice(&number);
        let next_update = crl.next_update().map(to_system_time).ok_or_else(|| {
            Error::Crl("it has no nextUpdate, so it could never go stale".to_owned())
        })?;
        if crl.extensions().iter().any(|ext| {
            (ext.critical && !is_understood_crl_extension(ext))
                || ext.oid == x509_parser::oid_registry::OID_X509_EXT_ISSUER_DISTRIBUTION_POINT
        }) {
            return Err(Error::Crl(
                "it carries an extension that changes its scope (such as an issuing \
                 distribution point) or a critical one this verifier does not understand"
                    .to_owned(),
            ));
        }
        if crl
            .iter_revoked_certificates()
            .any(|entry| entry.extensions().iter().any(|ext| ext.critical))
        {
            return Err(Error::Crl(
                "an entry carries a critical extension (an indirect CRL?)".to_owned(),
            ));
        }
        let revoked = crl
            .iter_revoked_certificates()
            .map(|entry| Box::from(entry.raw_serial()))
            .collect();
        Ok(Self {
            issuer: Box::from(crl.issuer().as_raw()),
            number: u128::from_be_bytes(padded),
            next_update,
            revoked,
            der: Arc::from(der),
            verified: OnceLock::new(),
            failed: Mutex::new(Vec::new()),
        })
    }

    /// The CRL as it was loaded, DER.
    pub(crate) fn der(&self) -> &[u8] {
        &self.der
    }

    /// Whether `serial` (big-endian INTEGER bytes) is on this CRL.
    pub(crate) fn contains(&self, serial: &[u8]) -> bool {
        self.revoked.contains(serial)
    }

    /// How many serials the CRL lists.
    pub(crate) fn len(&self) -> usize {
        self.revoked.len()
    }

    /// Checks the signature with the issuer's key, once per key: later
    /// calls with a key already tried answer from the first result.
    pub(crate) fn verify_with(&self, issuer_spki: &[u8]) -> Result<(), String> {
        if self.verified.get().is_some_and(|key| **key == *issuer_spki) {
            return Ok(());
        }
        let mut failed = self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if failed.iter().any(|key| **key == *issuer_spki) {
            return Err("the CRL's signature does not verify with its issuer's key".to_owned());
        }
        let outcome = verify_signature(&self.der, issuer_spki);
        match &outcome {
            Ok(()) => {
                // A second key that also verifies (a re-keyed CA with the
                // same name) is checked again each time; that never happens
                // with Sigil, where every CA has its own name.
                let _ = self.verified.set(Box::from(issuer_spki));
            }
            Err(_) if failed.len() < MAX_FAILED_KEYS => failed.push(Box::from(issuer_spki)),
            Err(_) => {}
        }
        outcome
    }

    /// Whether the signature was already checked (with any key).
    pub(crate) fn is_verified(&self) -> bool {
        self.verified.get().is_some()
    }
}

/// How many wrong keys a CRL remembers.
const MAX_FAILED_KEYS: usize = 4;

/// CRL extensions whose meaning this verifier honours when critical.
fn is_understood_crl_extension(ext: &x509_parser::extensions::X509Extension<'_>) -> bool {
    use x509_parser::oid_registry::{
        OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_CRL_NUMBER,
    };
    ext.oid == OID_X509_EXT_CRL_NUMBER || ext.oid == OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER
}

fn verify_signature(der: &[u8], issuer_spki: &[u8]) -> Result<(), String> {
    let (_, crl) = CertificateRevocationList::from_der(der).map_err(|e| format!("CRL: {e}"))?;
    let (_, spki) =
        SubjectPublicKeyInfo::from_der(issuer_spki).map_err(|e| format!("issuer key: {e}"))?;
    crl.verify_signature(&spki)
        .map_err(|e| format!("the CRL's signature does not verify with its issuer's key: {e}"))
}

/// Every CRL in a PEM text (blocks labelled `X509 CRL`).
pub(crate) fn crls_from_pem(text: &[u8]) -> Result<Vec<Crl>, Error> {
    pem::parse_many(text)
        .map_err(|e| Error::Pem(format!("{e}")))?
        .into_iter()
        .filter(|block| block.tag() == "X509 CRL")
        .map(|block| Crl::parse(block.contents()))
        .collect()
}
