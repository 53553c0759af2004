//! A CA's signing key, whose private key bytes are wiped from memory when
//! it is dropped.
//!
//! rcgen keeps the key's PKCS#8 DER next to ring's key object; its
//! `zeroize` feature lets us wipe the DER. ring's own copy of the private
//! scalar is out of our reach: ring does not wipe it, and offers no way to.

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};
use zeroize::{Zeroize, Zeroizing};

/// A CA's key pair; wiped where the libraries allow when dropped.
pub(crate) struct CaKey(KeyPair);

impl CaKey {
    /// Takes ownership of a key pair.
    pub(crate) fn new(key: KeyPair) -> Self {
        Self(key)
    }

    /// The private key as PKCS#8 PEM, itself wiped when dropped.
    pub(crate) fn pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.serialize_pem())
    }
}

impl Drop for CaKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.der_bytes()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.0.algorithm()
    }
}

impl SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ca::KeyType;

    #[test]
    fn a_ca_key_signs_and_shows_the_same_public_key_as_its_key_pair() {
        let pair = KeyType::P256.generate().unwrap();
        let public = pair.subject_public_key_info();
        let pem = pair.serialize_pem();
        let key = CaKey::new(pair);
        assert_eq!(key.subject_public_key_info(), public);
        assert_eq!(*key.pem(), pem);
        assert!(!key.sign(b"message").unwrap().is_empty());
    }

    #[test]
    fn zeroizing_the_key_pair_takes_its_private_key_bytes() {
        // What `CaKey`'s drop does, observed on the key pair itself: the
        // zeroize crate overwrites the bytes, then empties the vector.
        let mut pair = KeyType::P256.generate().unwrap();
        assert!(!pair.serialized_der().is_empty());
        pair.zeroize();
        assert!(pair.serialized_der().is_empty());
    }
}
