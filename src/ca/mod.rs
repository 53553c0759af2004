//! The certificate authority: its root and issuing CA, and the X509-SVIDs it
//! signs.
//!
//! Every field of every certificate is decided here. A CSR contributes its
//! public key and nothing else (see [`crate::csr`]).

mod ca_key;
mod certificate;
mod crl;
mod files;
mod key_encryption;
mod key_type;
mod profile;
mod recovery;
mod root_rotation;
mod roots;
mod rotation;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use rcgen::{Issuer, KeyPair, PublicKeyData};
use rustls_pki_types::{CertificateDer, TrustAnchor};
use sigil_core::{SpiffeId, TrustDomain};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

pub use certificate::CaCertificate;
pub use crl::{DEFAULT_CRL_VALIDITY, ROOT_CRL_VALIDITY};
pub use files::{CaFiles, DEFAULT_ISSUING_LIFETIME, ROOT_LIFETIME};
pub use key_encryption::{PASSPHRASE_ENV, Passphrase};
pub use key_type::KeyType;
pub use profile::CLOCK_SKEW_ALLOWANCE;
pub(crate) use profile::whole_seconds;
pub use root_rotation::{RootActivation, RootAddition, activate_root, add_root, drop_root};
pub use roots::{NextRoot, RootsState};
pub use rotation::{Rotation, rotate_issuing};

use crate::csr::{KeyPolicy, VerifiedPublicKey, verify_csr_pem};
use crate::serial::Serial;
use ca_key::CaKey;

/// A loaded CA, ready to sign X509-SVIDs.
pub struct CertificateAuthority {
    trust_domain: TrustDomain,
    root: CaCertificate,
    issuing: CaCertificate,
    issuer: Issuer<'static, CaKey>,
    root_issuer: Issuer<'static, CaKey>,
    /// The other trusted roots: during a root rotation, the next root
    /// (in the bundle, signing nothing yet) or the previous one (kept
    /// while leaves chain to it). Each re-signs its CRL.
    other_roots: Vec<(CaCertificate, Issuer<'static, CaKey>)>,
    /// Where a root rotation stands.
    roots_state: RootsState,
    /// Every trusted root as a trust anchor, computed once.
    anchors: Vec<TrustAnchor<'static>>,
    /// The key ids of dropped roots and of the issuing CAs they signed.
    gone: Vec<String>,
    /// Issuing CAs rotated out: they sign no leaf, but their CRLs are
    /// re-signed and their leaves verified until those expire.
    retired: Vec<(CaCertificate, Issuer<'static, CaKey>)>,
    /// The issuing CA, then the retired ones, DER: what client
    /// authentication adds to a chain, computed once.
    intermediates: Vec<CertificateDer<'static>>,
    /// The bundle's PEM as the contents of a JSON string, escaped once:
    /// every issuance answer carries it.
    bundle_pem_json: String,
    crl_url_base: String,
    crl_validity: Duration,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("trust_domain", &self.trust_domain)
            .field("root", &self.root)
            .field("issuing", &self.issuing)
            .field("roots", &self.roots_state)
            .finish_non_exhaustive()
    }
}

/// Whose key a leaf certifies.
#[derive(Debug, Clone)]
pub enum SubjectKey {
    /// A key whose holder has proved possession already.
    Verified(VerifiedPublicKey),
    /// A CSR, verified in the same step as the signing: its signature is
    /// the proof of possession, and its public key all it contributes.
    Csr {
        /// The CSR, PEM.
        pem: String,
        /// The keys this CA accepts.
        policy: KeyPolicy,
    },
}

/// What a leaf certificate will say, all decided by the CA.
#[derive(Debug)]
pub struct LeafRequest<'a> {
    /// The only URI SAN.
    pub spiffe_id: &'a SpiffeId,
    /// The subject's key: a CSR's, verified here, just before signing, or
    /// a key verified before.
    pub key: &'a SubjectKey,
    /// DNS SANs an admin bound to the identity.
    pub dns_names: &'a [String],
    /// IP SANs an admin bound to the identity.
    pub ip_addresses: &'a [IpAddr],
    /// Requested lifetime; cut short at the issuing CA's end of validity.
    pub ttl: Duration,
}

/// A freshly signed X509-SVID.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// Its serial.
    pub serial: Serial,
    /// Its identity.
    pub spiffe_id: SpiffeId,
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The key id of the CA that signed it.
    pub issuer_key_id: String,
}

impl CertificateAuthority {
    /// Loads a CA from its files. `public_url` is where the CA is reachable;
    /// leaves name `<public_url>/v1/crl/<issuer-key-id>` as their CRL
    /// distribution point.
    ///
    /// # Errors
    ///
    /// A file does not parse, the issuing key does not match its
    /// certificate, or the root names no trust domain.
    pub fn load(files: &CaFiles, public_url: &str) -> anyhow::Result<Self> {
        let root = CaCertificate::from_pem(&files.root_pem).context("root CA certificate")?;
        let issuing =
            CaCertificate::from_pem(&files.issuing_pem).context("issuing CA certificate")?;
        let trust_domain =
            crate::svid::trust_domain_of_root(&root.der).map_err(anyhow::Error::msg)?;
        let issuer = signing_issuer(&issuing, &files.issuing_pem, files.issuing_key_pem())
            .context("issuing CA")?;
        let root_issuer =
            signing_issuer(&root, &files.root_pem, files.root_key_pem()).context("root CA")?;
        let mut other_roots = Vec::new();
        for (cert_pem, key_pem) in files.other_roots() {
            let certificate = CaCertificate::from_pem(cert_pem).context("root CA certificate")?;
            let domain =
                crate::svid::trust_domain_of_root(&certificate.der).map_err(anyhow::Error::msg)?;
            ensure!(
                domain == trust_domain,
                "root CA {} is for trust domain {domain}, not {trust_domain}",
                certificate.key_id
            );
            let signer = signing_issuer(&certificate, cert_pem, key_pem)
                .with_context(|| format!("root CA {}", certificate.key_id))?;
            other_roots.push((certificate, signer));
        }
        let trusted = |certificate: &CaCertificate| {
            certificate.authority_key_id().is_none_or(|parent| {
                parent == root.key_id || other_roots.iter().any(|(other, _)| other.key_id == parent)
            })
        };
        ensure!(
            trusted(&issuing),
            "the issuing CA {} was signed by a root the CA no longer trusts",
            issuing.key_id
        );
        let mut retired = Vec::new();
        let mut gone = files.roots_state().dropped.clone();
        for (cert_pem, key_pem) in files.retired() {
            let certificate =
                CaCertificate::from_pem(cert_pem).context("retired issuing CA certificate")?;
            // A rotation cut short leaves a copy of the active CA here, and
            // a dropped root takes the issuing CAs it signed with it.
            if certificate.key_id == issuing.key_id {
                continue;
            }
            if !trusted(&certificate) {
                gone.push(certificate.key_id);
                continue;
            }
            let signer = signing_issuer(&certificate, cert_pem, key_pem)
                .with_context(|| format!("retired issuing CA {}", certificate.key_id))?;
            retired.push((certificate, signer));
        }
        let intermediates = std::iter::once(&issuing)
            .chain(retired.iter().map(|(certificate, _)| certificate))
            .map(|certificate| certificate.der.clone())
            .collect();
        let anchors = std::iter::once(&root)
            .chain(other_roots.iter().map(|(certificate, _)| certificate))
            .map(|certificate| {
                webpki::anchor_from_trusted_cert(&certificate.der)
                    .map(|anchor| anchor.to_owned())
                    .map_err(|e| anyhow!("root CA {} as trust anchor: {e}", certificate.key_id))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut ca = Self {
            bundle_pem_json: String::new(),
            trust_domain,
            root,
            issuing,
            issuer,
            root_issuer,
            other_roots,
            roots_state: files.roots_state().clone(),
            anchors,
            gone,
            retired,
            intermediates,
            crl_url_base: format!("{}/v1/crl/", public_url.trim_end_matches('/')),
            crl_validity: crl::DEFAULT_CRL_VALIDITY,
        };
        // JSON escapes character by character: the bundle's escaped PEM is
        // its roots' escaped PEMs, one after another.
        ca.bundle_pem_json = ca.roots().map(CaCertificate::pem_json).collect();
        Ok(ca)
    }

    /// Sets how long the issuing CA's CRLs are valid (their nextUpdate).
    #[must_use]
    pub fn with_crl_validity(mut self, validity: Duration) -> Self {
        self.crl_validity = validity;
        self
    }

    /// The trust domain this CA serves.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The active root: the one that signs the issuing CA.
    pub fn root(&self) -> &CaCertificate {
        &self.root
    }

    /// Every trusted root, the active one first.
    pub fn roots(&self) -> impl Iterator<Item = &CaCertificate> {
        std::iter::once(&self.root).chain(self.other_roots.iter().map(|(root, _)| root))
    }

    /// The root added beside the active one by a root rotation, and when it
    /// takes over.
    pub fn next_root(&self) -> Option<(&CaCertificate, OffsetDateTime)> {
        let next = self.roots_state.next.as_ref()?;
        self.roots()
            .find(|root| root.key_id == next.key_id)
            .map(|root| (root, next.activate_at))
    }

    /// Roots a root rotation replaced, still trusted while leaves chain to
    /// them.
    pub fn previous_roots(&self) -> impl Iterator<Item = &CaCertificate> {
        let next = self
            .roots_state
            .next
            .as_ref()
            .map(|next| next.key_id.as_str());
        self.roots()
            .skip(1)
            .filter(move |root| Some(root.key_id.as_str()) != next)
    }

    /// The key ids of the CAs that publish a CRL at `now`: the issuing CA,
    /// the retired ones until they expire (when their last leaf has), and
    /// every trusted root.
    pub fn crl_issuers(&self, now: OffsetDateTime) -> Vec<&str> {
        let retired = self
            .retired()
            .filter(move |retired| retired.not_after > now)
            .map(CaCertificate::key_id);
        std::iter::once(self.issuing.key_id())
            .chain(retired)
            .chain(self.roots().map(CaCertificate::key_id))
            .collect()
    }

    /// Whether no leaf chains to the CA `key_id` any more at `now`, so
    /// that its CRL need not be published: a root a rotation dropped, an
    /// issuing CA it took with it, or a retired issuing CA that has expired.
    pub fn crl_no_longer_needed(&self, key_id: &str, now: OffsetDateTime) -> bool {
        self.gone.iter().any(|gone| gone == key_id)
            || self
                .retired()
                .any(|retired| retired.key_id == key_id && retired.not_after <= now)
    }

    /// Every CA certificate with its role: `root` (active), `next_root`,
    /// `previous_root`, `issuing` and `retired`.
    pub fn certificates_by_role(&self) -> Vec<(&'static str, &CaCertificate)> {
        let next = self.next_root().map(|(next, _)| next);
        std::iter::once(("root", &self.root))
            .chain(next.map(|next| ("next_root", next)))
            .chain(self.previous_roots().map(|root| ("previous_root", root)))
            .chain(std::iter::once(("issuing", &self.issuing)))
            .chain(self.retired().map(|retired| ("retired", retired)))
            .collect()
    }

    /// The SPIFFE bundle's sequence number: it grows whenever the roots
    /// change.
    pub fn bundle_sequence(&self) -> u64 {
        self.roots_state.sequence
    }

    /// Every trusted root, as a trust anchor.
    pub fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }

    /// The key ids of the issuing CAs, active or retired, a root signed.
    pub fn issuing_cas_under(&self, root_key_id: &str) -> Vec<String> {
        std::iter::once(&self.issuing)
            .chain(self.retired())
            .filter(|issuing| issuing.authority_key_id() == Some(root_key_id))
            .map(|issuing| issuing.key_id.clone())
            .collect()
    }

    /// The active issuing CA.
    pub fn issuing(&self) -> &CaCertificate {
        &self.issuing
    }

    /// The retired issuing CAs.
    pub fn retired(&self) -> impl Iterator<Item = &CaCertificate> {
        self.retired.iter().map(|(certificate, _)| certificate)
    }

    /// Every issuing CA a live leaf may chain to: the active one, then the
    /// retired ones.
    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        &self.intermediates
    }

    /// Every root currently trusted, PEM, the active one first.
    pub fn bundle_pem(&self) -> String {
        self.roots().map(CaCertificate::pem).collect()
    }

    /// [`Self::bundle_pem`] as the contents of a JSON string (escaped,
    /// without the quotes), rendered at load.
    pub fn bundle_pem_json(&self) -> &str {
        &self.bundle_pem_json
    }

    /// The issuing CA of a leaf it signed: the active one, or a retired one
    /// when a rotation came in between.
    pub fn issuer_of(&self, leaf: &IssuedCertificate) -> &CaCertificate {
        self.retired()
            .find(|retired| retired.key_id == leaf.issuer_key_id)
            .unwrap_or(&self.issuing)
    }

    /// The chain an SVID is served with: the leaf, then its issuing CA.
    pub fn chain_pem(&self, leaf: &IssuedCertificate) -> String {
        format!("{}{}", certificate_pem(&leaf.der), self.issuer_of(leaf).pem)
    }

    /// Signs an X509-SVID following the Sigil leaf profile. It records
    /// nothing, so it is not part of the API: the server issues through
    /// `Issuance`, which commits each certificate before handing it out
    /// (invariant 1). It is public only for the crypto floor of the
    /// issuance benchmark (`crates/sigil-bench`).
    ///
    /// # Errors
    ///
    /// The identity is outside this CA's trust domain, the TTL is zero or
    /// the issuing CA has expired, the CSR is refused (a
    /// [`crate::csr::CsrError`] inside the error), or signing failed.
    #[doc(hidden)]
    pub fn issue(
        &self,
        request: &LeafRequest<'_>,
        now: OffsetDateTime,
    ) -> anyhow::Result<IssuedCertificate> {
        ensure!(
            request.spiffe_id.is_member_of(&self.trust_domain),
            "{} is outside trust domain {}",
            request.spiffe_id,
            self.trust_domain
        );
        ensure!(
            !request.ttl.is_zero(),
            "a certificate needs a lifetime above zero"
        );
        // The serial carries the issuance time to the millisecond, before
        // the certificate's own times are cut to whole seconds.
        let serial = Serial::generate_at(now).map_err(|_| anyhow!("the random source failed"))?;
        let now = profile::whole_seconds(now);
        if now >= self.issuing.not_after {
            bail!("the issuing CA expired at {}", self.issuing.not_after);
        }
        let params = profile::leaf_params(profile::LeafFields {
            request,
            serial,
            now,
            issuer_not_before: self.issuing.not_before,
            issuer_not_after: self.issuing.not_after,
            crl_url: &format!("{}{}", self.crl_url_base, self.issuing.key_id),
        })?;
        let verified;
        let public_key = match request.key {
            SubjectKey::Verified(key) => key,
            SubjectKey::Csr { pem, policy } => {
                verified = verify_csr_pem(pem, *policy)?;
                &verified
            }
        };
        let cert = params
            .signed_by(public_key.rcgen(), &self.issuer)
            .map_err(|e| anyhow!("signing the certificate: {e}"))?;
        Ok(IssuedCertificate {
            serial,
            spiffe_id: request.spiffe_id.clone(),
            der: cert.der().clone(),
            not_before: params.not_before,
            not_after: params.not_after,
            issuer_key_id: self.issuing.key_id.clone(),
        })
    }
}

/// An rcgen issuer for a CA certificate and its key, after checking that
/// they belong together.
fn signing_issuer(
    cert: &CaCertificate,
    cert_pem: &str,
    key_pem: &str,
) -> anyhow::Result<Issuer<'static, CaKey>> {
    let key = CaKey::new(KeyPair::from_pem(key_pem).context("key")?);
    let (_, parsed) = X509Certificate::from_der(&cert.der)?;
    ensure!(
        parsed.public_key().raw == key.subject_public_key_info().as_slice(),
        "the key does not match the certificate"
    );
    Issuer::from_ca_cert_pem(cert_pem, key).map_err(|e| anyhow!("loading the CA: {e}"))
}

/// `sha256:<64 lowercase hex>` of a certificate's DER.
pub fn fingerprint(der: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(ring::digest::digest(&ring::digest::SHA256, der))
    )
}

/// A certificate as PEM with `\n` line endings (the `pem` crate's default
/// is `\r\n`).
pub fn certificate_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// CA files for `example.org` (P-256, the default issuing lifetime): the
/// tests' usual CA.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn example_files() -> CaFiles {
    CaFiles::generate(
        &"example.org".parse().unwrap(),
        KeyType::P256,
        DEFAULT_ISSUING_LIFETIME,
        OffsetDateTime::now_utc(),
    )
    .unwrap()
}

/// The CA of [`example_files`], serving at `https://localhost:8443`.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn example_authority() -> CertificateAuthority {
    CertificateAuthority::load(&example_files(), "https://localhost:8443").unwrap()
}

#[cfg(test)]
mod tests;
