//! Rotating the issuing CA of a data dir: a new issuing CA, signed by the
//! root, takes over; the old one is retired, not revoked. A retired issuer
//! signs no new leaf, but its leaves stay valid and renewable, and its CRL
//! keeps being re-signed until the last of them has expired.
//!
//! The files change in an order that a crash cannot turn into a lost or
//! mismatched CA. The old pair is first copied to
//! `ca/retired/<key id>.{key,pem}` (its key text as it is on disk, so still
//! encrypted if it was); the new pair is written as
//! `ca/issuing.next.{key,pem}`, key first; then the key, and last the
//! certificate, are renamed over `ca/issuing.{key,pem}`. Every file is
//! written atomically. Loading the CA first finishes a rotation that a
//! crash interrupted once `issuing.next.pem` exists
//! ([`super::recovery::finish_rotation`]),
//! and ignores a retired copy of the active CA.

use std::time::Duration;

use anyhow::{Context, anyhow};
use rcgen::{Issuer, KeyPair, PublicKeyData};
use time::OffsetDateTime;

use super::ca_key::CaKey;
use super::files::CA_BACKDATE;
use super::key_encryption::{self, Passphrase};
use super::{CaCertificate, CaFiles, profile, recovery};
use crate::datadir::{self, DataDir};
use crate::serial::Serial;

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The key id of the issuing CA now retired.
    pub retired_key_id: String,
    /// The key id of the new issuing CA.
    pub issuing_key_id: String,
    /// When the new issuing CA expires.
    pub not_after: OffsetDateTime,
}

/// Replaces the issuing CA of `dir` (whose files, read with `passphrase`,
/// are `files`) with a new one of the same key type, living `lifetime`
/// (never past the root). The new key is encrypted with `passphrase` when
/// one is given.
///
/// # Errors
///
/// A key or certificate cannot be made or read, or a file written.
pub fn rotate_issuing(
    dir: &DataDir,
    files: &CaFiles,
    passphrase: Option<&Passphrase>,
    lifetime: Duration,
    now: OffsetDateTime,
) -> anyhow::Result<Rotation> {
    let root = (files.root_pem.as_str(), files.root_key_pem());
    rotate_issuing_under(dir, files, root, passphrase, lifetime, now)
}

/// [`rotate_issuing`], with the new issuing CA signed by `root` (its
/// certificate PEM and key PEM): a root rotation's next root.
pub(super) fn rotate_issuing_under(
    dir: &DataDir,
    files: &CaFiles,
    (root_pem, root_key_pem): (&str, &str),
    passphrase: Option<&Passphrase>,
    lifetime: Duration,
    now: OffsetDateTime,
) -> anyhow::Result<Rotation> {
    let now = profile::whole_seconds(now);
    let root = CaCertificate::from_pem(root_pem).context("root CA certificate")?;
    let current = CaCertificate::from_pem(&files.issuing_pem).context("issuing CA certificate")?;
    let root_key = CaKey::new(KeyPair::from_pem(root_key_pem).context("root CA key")?);
    let root_issuer = Issuer::from_ca_cert_pem(root_pem, root_key)
        .map_err(|e| anyhow!("loading the root CA: {e}"))?;
    // The same algorithm as the CA it replaces.
    // (Read as a `CaKey`, whose key bytes are wiped when it drops.)
    let algorithm =
        CaKey::new(KeyPair::from_pem(files.issuing_key_pem()).context("issuing CA key")?)
            .algorithm();
    let key =
        CaKey::new(KeyPair::generate_for(algorithm).map_err(|e| anyhow!("issuing key: {e}"))?);
    let serial = Serial::generate_at(now).map_err(|_| anyhow!("the random source failed"))?;
    let not_after = (now + lifetime).min(root.not_after());
    let certificate = profile::issuing_params(&key, serial, now - CA_BACKDATE, not_after)
        .signed_by(&key, &root_issuer)
        .map_err(|e| anyhow!("signing the issuing CA: {e}"))?;
    let issuing = CaCertificate::from_pem(&certificate.pem())?;
    let key_text = match passphrase {
        Some(passphrase) => key_encryption::encrypt(&key.pem(), passphrase)?,
        None => key.pem(),
    };

    // Retire the old pair first, its key as stored (the key creates the
    // directory owner-only); then stage the new pair and move it in.
    let retired_dir = dir.retired_dir();
    let retired_key_text = zeroize::Zeroizing::new(datadir::read_secret(&dir.issuing_key())?);
    datadir::write_secret(
        &retired_dir.join(format!("{}.key", current.key_id())),
        retired_key_text.as_bytes(),
    )?;
    datadir::write_public(
        &retired_dir.join(format!("{}.pem", current.key_id())),
        files.issuing_pem.as_bytes(),
    )?;
    datadir::write_secret(&recovery::next_key(dir), key_text.as_bytes())?;
    datadir::write_public(&recovery::next_cert(dir), certificate.pem().as_bytes())?;
    recovery::finish_rotation(dir)?;
    Ok(Rotation {
        retired_key_id: current.key_id().to_owned(),
        issuing_key_id: issuing.key_id().to_owned(),
        not_after: issuing.not_after(),
    })
}
