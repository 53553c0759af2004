//! The checks both verifiers run inside the handshake: the chain to the
//! bundle (webpki), the X509-SVID rules, the trust domain, revocation of the
//! leaf and of every CA certificate under the root, and the policy.

use std::time::{Duration, SystemTime};

use rustls::{CertRevocationListError, CertificateError, OtherError};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::identity::PeerIdentity;
use crate::policy::Policy;
use crate::svid::{Link, Svid};
use crate::trust::{Snapshot, TrustSource};

/// How long past its nextUpdate a CRL is still used by default.
pub const DEFAULT_STALE_GRACE: Duration = Duration::from_secs(5 * 60);

/// What to do once the CRL of an issuer in a peer's chain is past its
/// nextUpdate plus a grace period (the CA has stopped publishing, or this
/// process has stopped hearing from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StaleCrls {
    /// Refuse the peer (`ExpiredRevocationList`). The default, with a grace
    /// of [`DEFAULT_STALE_GRACE`].
    Refuse {
        /// How long past nextUpdate the CRL is still used.
        grace: Duration,
    },
    /// Keep using the last CRL held, however old. Revocations published
    /// since are not seen.
    UseLastKnown,
}

impl Default for StaleCrls {
    fn default() -> Self {
        Self::Refuse {
            grace: DEFAULT_STALE_GRACE,
        }
    }
}

/// The revocation settings of a verifier.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RevocationSettings {
    pub(crate) stale: StaleCrls,
    /// Whether an issuer without any CRL is accepted.
    pub(crate) allow_missing: bool,
}

/// Everything one verifier checks.
#[derive(Debug, Clone)]
pub(crate) struct Checker {
    pub(crate) source: TrustSource,
    pub(crate) policy: Policy,
    pub(crate) revocation: RevocationSettings,
    pub(crate) algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

fn other(message: impl Into<String>) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(std::sync::Arc::new(
        SvidError(message.into()),
    ))))
}

/// An X509-SVID rule a certificate broke.
#[derive(Debug)]
struct SvidError(String);

impl std::fmt::Display for SvidError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SvidError {}

/// Maps webpki's refusal to the rustls error (and so the TLS alert) a peer
/// should see.
fn webpki_error(error: webpki::Error) -> rustls::Error {
    use webpki::Error as E;
    let certificate = match error {
        E::CertExpired { .. } => CertificateError::Expired,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::CertRevoked => CertificateError::Revoked,
        E::InvalidSignatureForPublicKey
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => CertificateError::BadSignature,
        E::RequiredEkuNotFoundContext(_) => CertificateError::InvalidPurpose,
        other_error => return other(format!("certificate does not verify: {other_error}")),
    };
    rustls::Error::InvalidCertificate(certificate)
}

impl Checker {
    /// Runs every check on a presented chain.
    pub(crate) fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        usage: webpki::KeyUsage,
    ) -> Result<PeerIdentity, rustls::Error> {
        let snapshot = self.source.snapshot();
        let leaf = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|e| other(format!("certificate does not parse: {e}")))?;
        let path = leaf
            .verify_for_usage(
                self.algorithms.all,
                &snapshot.bundle.anchors,
                intermediates,
                now,
                usage,
                None,
                None,
            )
            .map_err(webpki_error)?;
        let svid = Svid::parse(end_entity).map_err(other)?;
        if !svid.spiffe_id.is_member_of(&snapshot.bundle.trust_domain) {
            return Err(other(format!(
                "{} is not in trust domain {}",
                svid.spiffe_id, snapshot.bundle.trust_domain
            )));
        }
        let links = path
            .intermediate_certificates()
            .map(|cert| Link::parse(&cert.der()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(other)?;
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs());
        // The root webpki ended the path at (not merely one with its name).
        let root =
            snapshot
                .bundle
                .root_of(path.anchor())
                .ok_or(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                ))?;
        // The leaf, signed by the first intermediate (or by the root).
        let leaf_issuer_key = links.first().map_or(&root.spki, |issuer| &issuer.spki);
        self.check_not_revoked(&snapshot, &svid.serial, &svid.issuer, leaf_issuer_key, now)?;
        // Each intermediate, signed by the next one up (or by the root).
        for (index, link) in links.iter().enumerate() {
            let issuer_key = links
                .get(index + 1)
                .map_or(&root.spki, |issuer| &issuer.spki);
            self.check_not_revoked(&snapshot, &link.serial, &link.issuer, issuer_key, now)?;
        }
        if !self.policy.allows(&svid.spiffe_id) {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        }
        Ok(PeerIdentity::new(svid, &links))
    }

    fn check_not_revoked(
        &self,
        snapshot: &Snapshot,
        serial: &[u8],
        issuer: &[u8],
        issuer_key: &[u8],
        now: SystemTime,
    ) -> Result<(), rustls::Error> {
        let Some(crl) = snapshot.crls.get(issuer) else {
            // webpki has just verified this issuer's key; a CRL of it that
            // arrives later is then checked when it is loaded.
            self.source.learn_issuer_key(issuer, issuer_key);
            return match self.revocation.allow_missing {
                true => Ok(()),
                false => Err(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownRevocationStatus,
                )),
            };
        };
        let first_use = !crl.is_verified();
        crl.verify_with(issuer_key).map_err(|reason| {
            tracing::warn!(%reason, "a CRL does not verify; refusing its issuer's certificates");
            rustls::Error::InvalidCertRevocationList(CertRevocationListError::BadSignature)
        })?;
        if first_use {
            // Later CRLs of this issuer are then checked when loaded.
            self.source.learn_issuer_key(issuer, issuer_key);
        }
        if let StaleCrls::Refuse { grace } = self.revocation.stale
            // A grace too long to add up never expires.
            && crl.next_update.checked_add(grace).is_some_and(|deadline| now > deadline)
        {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ExpiredRevocationList,
            ));
        }
        if crl.contains(serial) {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(())
    }
}
