//! The key algorithms the CA signs with.

use std::fmt;
use std::str::FromStr;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};

/// The algorithm of a CA key (root, issuing CA, the server's own key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyType {
    /// ECDSA on NIST P-256 with SHA-256, the default.
    #[default]
    P256,
    /// Ed25519.
    Ed25519,
}

impl KeyType {
    /// Generates a fresh key pair of this type.
    ///
    /// # Errors
    ///
    /// The random source or the key generation failed.
    pub fn generate(self) -> Result<KeyPair, rcgen::Error> {
        match self {
            Self::P256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            Self::Ed25519 => KeyPair::generate_for(&PKCS_ED25519),
        }
    }
}

impl FromStr for KeyType {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "p256" => Ok(Self::P256),
            "ed25519" => Ok(Self::Ed25519),
            other => Err(format!("unknown key type '{other}'; use p256 or ed25519")),
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::P256 => "p256",
            Self::Ed25519 => "ed25519",
        })
    }
}
