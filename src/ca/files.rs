//! A CA's certificates and keys as files: created by `sigil init`, read by
//! `sigil serve`.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rcgen::Issuer;
use sigil_core::TrustDomain;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::ca_key::CaKey;
use super::key_encryption::{self, Passphrase};
use super::roots::{RootsState, certificate_files};
use super::{CaCertificate, KeyType, profile};
use crate::datadir::{self, DataDir};
use crate::serial::Serial;

/// How long a root CA lives.
pub const ROOT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How long an issuing CA lives unless asked otherwise.
pub const DEFAULT_ISSUING_LIFETIME: Duration = Duration::from_secs(365 * 86_400);
/// CA certificates start this long before their creation, so that relying
/// parties with a slow clock accept them and every leaf's validity lies
/// within its issuer's.
pub(super) const CA_BACKDATE: Duration = Duration::from_secs(3600);

/// The PEM files of a CA. Keys are redacted in `Debug`.
#[derive(Clone)]
pub struct CaFiles {
    /// Root CA certificate.
    pub root_pem: String,
    /// Wiped from memory when dropped, as is every copy of a key's PEM
    /// text the CA makes.
    root_key_pem: Zeroizing<String>,
    /// Issuing CA certificate.
    pub issuing_pem: String,
    issuing_key_pem: Zeroizing<String>,
    /// Issuing CAs rotated out: certificate PEM and key PEM.
    retired: Vec<(String, Zeroizing<String>)>,
    /// The other roots trusted (a root rotation's next or previous one):
    /// certificate PEM and key PEM.
    other_roots: Vec<(String, Zeroizing<String>)>,
    /// Where a root rotation stands.
    roots: RootsState,
}

impl fmt::Debug for CaFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaFiles")
            .field("root_pem", &self.root_pem)
            .field("root_key_pem", &"<redacted>")
            .field("issuing_pem", &self.issuing_pem)
            .field("issuing_key_pem", &"<redacted>")
            .field("retired", &self.retired.len())
            .field("other_roots", &self.other_roots.len())
            .field("roots", &self.roots)
            .finish()
    }
}

impl CaFiles {
    /// Assembles CA files from PEM text (for the embedded development CA).
    pub fn from_pem(
        root_pem: &str,
        root_key_pem: &str,
        issuing_pem: &str,
        issuing_key_pem: &str,
    ) -> Self {
        Self {
            root_pem: root_pem.to_owned(),
            root_key_pem: Zeroizing::new(root_key_pem.to_owned()),
            issuing_pem: issuing_pem.to_owned(),
            issuing_key_pem: Zeroizing::new(issuing_key_pem.to_owned()),
            retired: Vec::new(),
            other_roots: Vec::new(),
            roots: RootsState::default(),
        }
    }

    /// Creates a new root and issuing CA for a trust domain. The issuing CA
    /// lives `issuing_lifetime`, and never past the root.
    ///
    /// # Errors
    ///
    /// Key generation or signing failed.
    pub fn generate(
        trust_domain: &TrustDomain,
        key_type: KeyType,
        issuing_lifetime: Duration,
        now: OffsetDateTime,
    ) -> anyhow::Result<Self> {
        let now = profile::whole_seconds(now);
        let not_before = now - CA_BACKDATE;
        let rcgen_err = |what: &'static str| move |e: rcgen::Error| anyhow!("{what}: {e}");
        let new_serial =
            || Serial::generate_at(now).map_err(|_| anyhow!("the random source failed"));

        let root_key = CaKey::new(key_type.generate().map_err(rcgen_err("root key"))?);
        let root_params = profile::root_params(
            trust_domain,
            &root_key,
            new_serial()?,
            not_before,
            now + ROOT_LIFETIME,
        )?;
        let root_cert = root_params
            .self_signed(&root_key)
            .map_err(rcgen_err("signing the root"))?;

        let issuing_key = CaKey::new(key_type.generate().map_err(rcgen_err("issuing key"))?);
        let issuing_params = profile::issuing_params(
            &issuing_key,
            new_serial()?,
            not_before,
            (now + issuing_lifetime).min(root_params.not_after),
        );
        let root_pem = root_cert.pem();
        let root_issuer = Issuer::new(root_params, root_key);
        let issuing_cert = issuing_params
            .signed_by(&issuing_key, &root_issuer)
            .map_err(rcgen_err("signing the issuing CA"))?;

        Ok(Self {
            root_pem,
            root_key_pem: root_issuer.key().pem(),
            issuing_pem: issuing_cert.pem(),
            issuing_key_pem: issuing_key.pem(),
            retired: Vec::new(),
            other_roots: Vec::new(),
            roots: RootsState::default(),
        })
    }

    /// Reads the CA files of a data directory, decrypting keys encrypted at
    /// rest with `passphrase`.
    ///
    /// # Errors
    ///
    /// The directory holds no CA, a file cannot be read, a key is encrypted
    /// and no passphrase (or a wrong one) was given, or a passphrase was
    /// given for keys that are not encrypted (they are not protected the
    /// way the operator believes).
    pub fn read(dir: &DataDir, passphrase: Option<&Passphrase>) -> anyhow::Result<Self> {
        dir.require_initialised()?;
        super::recovery::finish_rotation(dir)?;
        let read_key = |path: &std::path::Path| -> anyhow::Result<Zeroizing<String>> {
            let text = Zeroizing::new(datadir::read_secret(path)?);
            let encrypted = key_encryption::is_encrypted(&text);
            match (encrypted, passphrase) {
                (true, Some(passphrase)) => key_encryption::decrypt(&text, passphrase)
                    .with_context(|| format!("decrypting {}", path.display())),
                (true, None) => bail!(
                    "{} is encrypted: give its passphrase with --ca-passphrase-file FILE \
                     or the {} environment variable",
                    path.display(),
                    key_encryption::PASSPHRASE_ENV
                ),
                (false, Some(_)) => bail!(
                    "a CA passphrase was given, but {} is not encrypted; drop the passphrase, \
                     or encrypt the key in place (`openssl pkcs8 -topk8 -scrypt`, see \
                     docs/operations.md)",
                    path.display()
                ),
                (false, None) => Ok(text),
            }
        };
        let issuing_pem = datadir::read_text(&dir.issuing_cert())?;
        let issuing = CaCertificate::from_pem(&issuing_pem).context("issuing CA certificate")?;
        let roots = super::recovery::finish_activation(dir, &issuing)?;
        let mut retired = Vec::new();
        // The roots that signed an issuing CA held here.
        let mut signers: Vec<String> = issuing.authority_key_id.iter().cloned().collect();
        for cert in certificate_files(&dir.retired_dir())? {
            let pem = datadir::read_text(&cert)?;
            let certificate = CaCertificate::from_pem(&pem)
                .with_context(|| format!("reading {}", cert.display()))?;
            signers.extend(certificate.authority_key_id);
            retired.push((pem, read_key(&cert.with_extension("key"))?));
        }
        let mut active = None;
        let mut other_roots = Vec::new();
        for (index, cert) in root_files(dir)?.enumerate() {
            let pem = datadir::read_text(&cert)?;
            let key_id = CaCertificate::from_pem(&pem)
                .with_context(|| format!("reading {}", cert.display()))?
                .key_id;
            let is_active = is_active_root(&roots, index, &key_id);
            let is_next = roots
                .next
                .as_ref()
                .is_some_and(|next| next.key_id == key_id);
            // Dropped roots are not trusted: their keys are not even read.
            // Nor is a root that is neither active, next nor the signer of
            // an issuing CA: one whose addition a crash cut short.
            if roots.dropped.contains(&key_id)
                || !(is_active || is_next || signers.contains(&key_id))
            {
                continue;
            }
            let pair = (pem, read_key(&cert.with_extension("key"))?);
            if is_active && active.is_none() {
                active = Some(pair);
            } else {
                other_roots.push(pair);
            }
        }
        let (root_pem, root_key_pem) = active.with_context(|| no_active_root(dir, &roots))?;
        let files = Self {
            root_pem,
            root_key_pem,
            issuing_pem,
            issuing_key_pem: read_key(&dir.issuing_key())?,
            retired,
            other_roots,
            roots,
        };
        // A root rotation writes the bundle after its state: a crash in
        // between leaves it behind, which local clients would trust.
        let bundle = files.bundle_pem();
        if std::fs::read_to_string(dir.bundle()).ok().as_deref() != Some(bundle.as_str()) {
            datadir::write_public(&dir.bundle(), bundle.as_bytes())
                .context("writing the trust bundle")?;
        }
        Ok(files)
    }

    /// Writes the CA files and the trust bundle into a data directory; keys
    /// with mode 0600, encrypted with `passphrase` if one is given.
    ///
    /// # Errors
    ///
    /// A file cannot be written, or a key cannot be encrypted.
    pub fn write(&self, dir: &DataDir, passphrase: Option<&Passphrase>) -> anyhow::Result<()> {
        let key_text = |pem: &Zeroizing<String>| match passphrase {
            Some(passphrase) => key_encryption::encrypt(pem, passphrase),
            None => Ok(pem.clone()),
        };
        // Both encrypted before either is written: no half-written CA.
        let root_key = key_text(&self.root_key_pem)?;
        let issuing_key = key_text(&self.issuing_key_pem)?;
        datadir::write_secret(&dir.root_key(), root_key.as_bytes())?;
        datadir::write_secret(&dir.issuing_key(), issuing_key.as_bytes())?;
        datadir::write_public(&dir.root_cert(), self.root_pem.as_bytes())?;
        datadir::write_public(&dir.issuing_cert(), self.issuing_pem.as_bytes())?;
        datadir::write_public(&dir.bundle(), self.root_pem.as_bytes())
            .context("writing the trust bundle")
    }

    /// The fingerprint of the root `sigil init` made (`ca/root.pem`, which
    /// never moves, whatever root rotations followed), read from its
    /// certificate alone: no key, so no passphrase, is needed. It tells
    /// which CA a data dir holds (the development CA's, say).
    ///
    /// # Errors
    ///
    /// The directory holds no CA, or its root certificate cannot be read.
    pub fn read_initial_root_fingerprint(dir: &DataDir) -> anyhow::Result<String> {
        dir.require_initialised()?;
        let path = dir.root_cert();
        let root = pem::parse(datadir::read_text(&path)?)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(super::fingerprint(root.contents()))
    }

    /// The fingerprint of the data directory's active root, the one agents
    /// pin: the initial root until a root rotation activates another. Read
    /// from certificates alone: no key, so no passphrase, is needed.
    ///
    /// # Errors
    ///
    /// The directory holds no CA, or its root certificates cannot be read.
    pub fn read_root_fingerprint(dir: &DataDir) -> anyhow::Result<String> {
        dir.require_initialised()?;
        // The active root: `ca/root.pem` until a root rotation activates
        // another (ca/roots.json names it). No key is read.
        let roots = super::roots::RootsState::read(dir)?;
        for (index, path) in root_files(dir)?.enumerate() {
            let root = CaCertificate::from_pem(&datadir::read_text(&path)?)
                .with_context(|| format!("reading {}", path.display()))?;
            if is_active_root(&roots, index, &root.key_id) {
                return Ok(super::fingerprint(root.der()));
            }
        }
        Err(anyhow!(no_active_root(dir, &roots)))
    }

    /// The issuing CA key, PEM.
    pub(crate) fn issuing_key_pem(&self) -> &str {
        &self.issuing_key_pem
    }

    /// The root CA key, PEM.
    pub(crate) fn root_key_pem(&self) -> &str {
        &self.root_key_pem
    }

    /// The retired issuing CAs: (certificate PEM, key PEM).
    pub(crate) fn retired(&self) -> impl Iterator<Item = (&str, &str)> {
        self.retired
            .iter()
            .map(|(cert, key)| (cert.as_str(), key.as_str()))
    }

    /// The trusted roots besides the active one: (certificate PEM, key
    /// PEM).
    pub(crate) fn other_roots(&self) -> impl Iterator<Item = (&str, &str)> {
        self.other_roots
            .iter()
            .map(|(cert, key)| (cert.as_str(), key.as_str()))
    }

    /// Where a root rotation stands.
    pub fn roots_state(&self) -> &RootsState {
        &self.roots
    }

    /// Every trusted root, PEM, the active one first: the trust bundle.
    pub fn bundle_pem(&self) -> String {
        std::iter::once(self.root_pem.as_str())
            .chain(self.other_roots.iter().map(|(cert, _)| cert.as_str()))
            .collect()
    }
}

/// Every root certificate file: `ca/root.pem` (the first root, index 0),
/// then those root rotations added.
fn root_files(dir: &DataDir) -> anyhow::Result<impl Iterator<Item = std::path::PathBuf>> {
    Ok(std::iter::once(dir.root_cert()).chain(certificate_files(&super::roots::roots_dir(dir))?))
}

/// Whether the root `key_id`, the `index`th of [`root_files`], is the active
/// one: the one `ca/roots.json` names, or the first root without it.
fn is_active_root(roots: &super::roots::RootsState, index: usize, key_id: &str) -> bool {
    match &roots.active {
        Some(active) => active == key_id,
        None => index == 0,
    }
}

fn no_active_root(dir: &DataDir, roots: &super::roots::RootsState) -> String {
    format!(
        "the active root {} (ca/roots.json) is not in {}",
        roots.active.as_deref().unwrap_or("ca/root.pem"),
        dir.ca_dir().display()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn debug_output_redacts_the_keys() {
        let files = crate::ca::example_files();
        let debug = format!("{files:?}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        for key in [&files.root_key_pem, &files.issuing_key_pem] {
            let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
            assert!(!debug.contains(&body[..32]));
        }
        let ca = crate::ca::CertificateAuthority::load(&files, "https://localhost").unwrap();
        let debug = format!("{ca:?}");
        assert!(
            !debug.contains("PRIVATE KEY") && !debug.contains("BEGIN"),
            "{debug}"
        );
    }
}
