//! The roots a data dir trusts, and where a root rotation stands.
//!
//! `sigil init` writes one root, `ca/root.{key,pem}`. A root rotation adds
//! others as `ca/roots/<key id>.{key,pem}`; root files never move or
//! change afterwards. What they mean is kept in `ca/roots.json`, rewritten
//! atomically at each step, so that a crash leaves either the step before
//! or the step after:
//!
//! - `sequence`: the SPIFFE bundle's `spiffe_sequence`, raised whenever the
//!   set of trusted roots changes;
//! - `active`: the key id of the root that signs the issuing CA (absent:
//!   `ca/root.pem`'s);
//! - `next`: a root added beside the active one, in the bundle but signing
//!   nothing yet, and when it takes over;
//! - `dropped`: roots no longer trusted, once nothing depended on them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::datadir::{self, DataDir};

/// A root added beside the active one, waiting to take over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NextRoot {
    /// Its key id.
    pub key_id: String,
    /// When it starts signing the issuing CA.
    #[serde(with = "time::serde::rfc3339")]
    pub activate_at: OffsetDateTime,
}

/// Where a data dir's root rotation stands (`ca/roots.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootsState {
    /// The SPIFFE bundle's sequence number.
    pub sequence: u64,
    /// The root signing the issuing CA, if not `ca/root.pem`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
    /// A root in the bundle that will take over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<NextRoot>,
    /// Roots no longer trusted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
}

impl Default for RootsState {
    fn default() -> Self {
        Self {
            sequence: 1,
            active: None,
            next: None,
            dropped: Vec::new(),
        }
    }
}

impl RootsState {
    /// Reads `ca/roots.json`; a data dir without one has never rotated its
    /// root.
    ///
    /// # Errors
    ///
    /// The file cannot be read or does not parse.
    pub fn read(dir: &DataDir) -> anyhow::Result<Self> {
        let path = state_file(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} does not parse", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes `ca/roots.json` atomically.
    ///
    /// # Errors
    ///
    /// The file cannot be written.
    pub fn write(&self, dir: &DataDir) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self).context("rendering the roots' state")?;
        datadir::write_public(&state_file(dir), format!("{text}\n").as_bytes())
    }
}

fn state_file(dir: &DataDir) -> PathBuf {
    dir.ca_dir().join("roots.json")
}

/// Where the roots added by rotations live.
pub(super) fn roots_dir(dir: &DataDir) -> PathBuf {
    dir.ca_dir().join("roots")
}

/// The certificate files ending in `.pem` in `directory`, by name (none
/// when it is missing).
pub(super) fn certificate_files(directory: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", directory.display()));
        }
    };
    let mut certificates = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", directory.display()))?
            .path();
        if path.extension().is_some_and(|extension| extension == "pem") {
            certificates.push(path);
        }
    }
    certificates.sort();
    Ok(certificates)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_without_a_state_file_has_sequence_one_and_no_rotation() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(temp.path());
        assert_eq!(RootsState::read(&dir).unwrap(), RootsState::default());
        assert_eq!(RootsState::default().sequence, 1);
    }

    #[test]
    fn the_state_survives_a_write_and_read_and_refuses_unknown_fields() {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(temp.path());
        let state = RootsState {
            sequence: 3,
            active: Some("ab".to_owned()),
            next: Some(NextRoot {
                key_id: "cd".to_owned(),
                activate_at: time::macros::datetime!(2027-01-02 03:04:05 UTC),
            }),
            dropped: vec!["ef".to_owned()],
        };
        state.write(&dir).unwrap();
        assert_eq!(RootsState::read(&dir).unwrap(), state);
        std::fs::write(state_file(&dir), r#"{"sequence": 2, "extra": 1}"#).unwrap();
        let error = RootsState::read(&dir).unwrap_err();
        assert!(format!("{error:#}").contains("does not parse"), "{error:#}");
    }
}
