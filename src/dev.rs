//! The development trust domain `dev.sigil.test`, committed in `certs-dev/`
//! with its keys public on purpose. `sigil serve --dev` runs on it; without
//! `--dev`, the server refuses these keys, which it recognises by the root
//! fingerprint.

use anyhow::bail;

use crate::ca::{CaFiles, fingerprint};
use crate::datadir::DataDir;

/// The development trust domain.
pub const TRUST_DOMAIN: &str = "dev.sigil.test";

const ROOT_PEM: &str = include_str!("../certs-dev/ca/root.pem");
const ROOT_KEY_PEM: &str = include_str!("../certs-dev/ca/root.key");
const ISSUING_PEM: &str = include_str!("../certs-dev/ca/issuing.pem");
const ISSUING_KEY_PEM: &str = include_str!("../certs-dev/ca/issuing.key");

/// The development CA's files.
pub fn files() -> CaFiles {
    CaFiles::from_pem(ROOT_PEM, ROOT_KEY_PEM, ISSUING_PEM, ISSUING_KEY_PEM)
}

/// True when `root_fingerprint` is the public development root's.
pub fn is_dev_root(root_fingerprint: &str) -> bool {
    pem::parse(ROOT_PEM).is_ok_and(|dev| fingerprint(dev.contents()) == root_fingerprint)
}

/// Makes `dir` a development data dir: copies the dev CA into a missing or
/// empty directory (keys with mode 0600, since git checks them out 0644),
/// or checks that an existing one holds the dev CA.
///
/// # Errors
///
/// The directory holds another CA, or cannot be written.
pub fn prepare(dir: &DataDir) -> anyhow::Result<()> {
    if dir.require_initialised().is_ok() {
        if !is_dev_root(&CaFiles::read_initial_root_fingerprint(dir)?) {
            bail!(
                "{} holds a CA that is not the development CA; --dev runs only on certs-dev/ (pick another --data-dir)",
                dir.path().display()
            );
        }
        return Ok(());
    }
    dir.create_empty()?;
    // The development keys are public: encrypting them would protect
    // nothing.
    files().write(dir, None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn root_fingerprint(files: &CaFiles) -> String {
        fingerprint(pem::parse(&files.root_pem).unwrap().contents())
    }

    #[test]
    fn the_dev_root_is_recognised_and_another_is_not() {
        assert!(is_dev_root(&root_fingerprint(&files())));
        let other = CaFiles::generate(
            &TRUST_DOMAIN.parse().unwrap(),
            crate::ca::KeyType::P256,
            crate::ca::DEFAULT_ISSUING_LIFETIME,
            time::OffsetDateTime::now_utc(),
        );
        assert!(!is_dev_root(&root_fingerprint(&other.unwrap())));
    }

    /// A root rotation does not hide the development CA: agents pin the
    /// new root, but the data dir still holds the public root and keys, and
    /// `serve` without `--dev` and `prepare` still recognise it.
    #[test]
    fn a_dev_data_dir_stays_recognised_after_a_root_rotation() {
        use crate::ca::{DEFAULT_ISSUING_LIFETIME, activate_root, add_root};

        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(temp.path().join("dev"));
        prepare(&dir).unwrap();
        let now = time::OffsetDateTime::now_utc();
        let current = CaFiles::read(&dir, None).unwrap();
        add_root(&dir, &current, None, now, now).unwrap();
        let current = CaFiles::read(&dir, None).unwrap();
        activate_root(&dir, &current, None, DEFAULT_ISSUING_LIFETIME, now).unwrap();

        let active = CaFiles::read_root_fingerprint(&dir).unwrap();
        assert!(!is_dev_root(&active), "agents pin the new root");
        assert!(is_dev_root(
            &CaFiles::read_initial_root_fingerprint(&dir).unwrap()
        ));
        prepare(&dir).unwrap();
    }
}
