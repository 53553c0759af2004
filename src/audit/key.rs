//! The audit key: a dedicated Ed25519 key that signs checkpoints of the
//! audit log. It signs nothing else, so its compromise forges no
//! certificate, and no certificate key can forge a checkpoint.

use std::fmt;

use anyhow::{Context, anyhow};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use super::Checkpoint;
use crate::datadir::{self, DataDir};

/// The audit key pair. Redacted in `Debug`.
pub struct AuditKey {
    pair: Ed25519KeyPair,
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

impl AuditKey {
    /// Reads the data dir's audit key, creating it (mode 0600) if missing.
    ///
    /// # Errors
    ///
    /// The key cannot be read, parsed, generated or written.
    pub fn load_or_create(dir: &DataDir) -> anyhow::Result<Self> {
        let path = dir.audit_key();
        if !path.exists() {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .map_err(|_| anyhow!("generating the audit key"))?;
            let pem_text = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
            datadir::write_secret(&path, pem_text.as_bytes())?;
        }
        Self::load(dir)
    }

    /// Reads the data dir's audit key.
    ///
    /// # Errors
    ///
    /// The key is missing or does not parse.
    pub fn load(dir: &DataDir) -> anyhow::Result<Self> {
        let path = dir.audit_key();
        // The key's text is wiped from memory once parsed.
        let pem_text = zeroize::Zeroizing::new(datadir::read_secret(&path)?);
        let block = pem::parse(pem_text.as_bytes())
            .with_context(|| format!("{} is not PEM", path.display()))?;
        let pair = Ed25519KeyPair::from_pkcs8(block.contents())
            .map_err(|e| anyhow!("{} is not an Ed25519 key: {e}", path.display()))?;
        Ok(Self { pair })
    }

    /// Signs a checkpoint of record `seq` with hash `hash`.
    pub fn sign(&self, seq: u64, hash: &str) -> Vec<u8> {
        self.pair
            .sign(&Checkpoint::message(seq, hash))
            .as_ref()
            .to_vec()
    }

    /// True when the checkpoint's signature is this key's.
    pub fn verifies(&self, checkpoint: &Checkpoint) -> bool {
        UnparsedPublicKey::new(&ED25519, self.pair.public_key().as_ref())
            .verify(
                &Checkpoint::message(checkpoint.seq, &checkpoint.hash),
                &checkpoint.signature,
            )
            .is_ok()
    }
}
