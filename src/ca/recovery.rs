//! Finishing, at load, a rotation that a crash cut short: each rotation
//! writes its new files first and what makes them count last, so loading
//! can always tell how far it got.
//!
//! - An issuing CA rotation stages the new pair as
//!   `ca/issuing.next.{key,pem}`, key first, then moves them into place:
//!   a staged certificate means the move is still to do
//!   ([`finish_rotation`]).
//! - A root's activation rotates the issuing CA (signed by the next root),
//!   then records the next root as active in `ca/roots.json`: an issuing CA
//!   signed by the next root means the record is still to do
//!   ([`finish_activation`]).

use std::path::PathBuf;

use anyhow::Context;

use super::CaCertificate;
use super::roots::RootsState;
use crate::datadir::DataDir;

/// Where an issuing CA rotation stages the new key.
pub(super) fn next_key(dir: &DataDir) -> PathBuf {
    dir.ca_dir().join("issuing.next.key")
}

/// Where an issuing CA rotation stages the new certificate.
pub(super) fn next_cert(dir: &DataDir) -> PathBuf {
    dir.ca_dir().join("issuing.next.pem")
}

/// Moves a staged issuing CA (`ca/issuing.next.{key,pem}`) into place:
/// the key, then the certificate. Nothing to do without a staged
/// certificate, which is written after its key.
///
/// # Errors
///
/// A file cannot be renamed.
pub(super) fn finish_rotation(dir: &DataDir) -> anyhow::Result<()> {
    let (key, cert) = (next_key(dir), next_cert(dir));
    if !cert.exists() {
        return Ok(());
    }
    // Absent when a crash came after its rename.
    if key.exists() {
        std::fs::rename(&key, dir.issuing_key())
            .with_context(|| format!("moving {} into place", key.display()))?;
    }
    std::fs::rename(&cert, dir.issuing_cert())
        .with_context(|| format!("moving {} into place", cert.display()))
}

/// Finishes an activation a crash interrupted: the issuing CA of `dir`
/// (`issuing`) is signed by the next root, so that root is active. Returns
/// the roots' state.
///
/// # Errors
///
/// The state cannot be read or written.
pub(super) fn finish_activation(
    dir: &DataDir,
    issuing: &CaCertificate,
) -> anyhow::Result<RootsState> {
    let mut state = RootsState::read(dir)?;
    let Some(next) = state.next.take() else {
        return Ok(state);
    };
    if issuing.authority_key_id() != Some(next.key_id.as_str()) {
        state.next = Some(next);
        return Ok(state);
    }
    state.active = Some(next.key_id);
    state.write(dir)?;
    Ok(state)
}
