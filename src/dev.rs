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

/// True when `files` hold the public development root.
pub fn is_dev_root(files: &CaFiles) -> bool {
    let fingerprint_of = |pem_text: &str| {
        pem::parse(pem_text)
            .ok()
            .map(|block| fingerprint(block.contents()))
    };
    match (fingerprint_of(&files.root_pem), fingerprint_of(ROOT_PEM)) {
        (Some(theirs), Some(dev)) => theirs == dev,
        _ => false,
    }
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
        if !is_dev_root(&CaFiles::read(dir)?) {
            bail!(
                "{} holds a CA that is not the development CA; --dev runs only on certs-dev/ (pick another --data-dir)",
                dir.path().display()
            );
        }
        return Ok(());
    }
    dir.create_empty()?;
    files().write(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_root_is_recognised_and_another_is_not() {
        assert!(is_dev_root(&files()));
        let other = CaFiles::generate(
            &TRUST_DOMAIN.parse().unwrap_or_else(|_| unreachable!()),
            crate::ca::KeyType::P256,
            crate::ca::DEFAULT_ISSUING_LIFETIME,
            time::OffsetDateTime::now_utc(),
        );
        assert!(!is_dev_root(&other.unwrap_or_else(|e| panic!("{e}"))));
    }
}
