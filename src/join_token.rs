//! Join tokens: one-time secrets an admin creates for one SPIFFE ID.
//!
//! A token reads `sigil_jt_<id>_<secret>`: the fixed prefix lets secret
//! scanners find leaked tokens, the 16-hex-digit id is the public lookup key,
//! and the secret carries 256 random bits. The CA stores only the SHA-256 of
//! the whole token and compares hashes in constant time, so neither the
//! database nor a timing side channel gives a token away.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use sigil_core::wire::Secret;
use subtle::ConstantTimeEq;

/// What every join token starts with.
pub const PREFIX: &str = "sigil_jt_";
const ID_HEX_LEN: usize = 16;
const SECRET_BYTES: usize = 32;
const SECRET_B64_LEN: usize = 43;
const TOKEN_LEN: usize = PREFIX.len() + ID_HEX_LEN + 1 + SECRET_B64_LEN;

/// The SHA-256 of a whole token: all the store keeps.
pub type TokenHash = [u8; 32];

/// A freshly minted token, shown to the admin once.
#[derive(Debug)]
pub struct MintedToken {
    /// The public lookup key.
    pub id: String,
    /// The whole token.
    pub token: Secret,
    /// Its hash, for the store.
    pub hash: TokenHash,
}

/// Mints a new token.
///
/// # Errors
///
/// The operating system's random source failed.
pub fn mint() -> Result<MintedToken, ring::error::Unspecified> {
    let rng = SystemRandom::new();
    let mut id = [0u8; ID_HEX_LEN / 2];
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill(&mut id)?;
    rng.fill(&mut secret)?;
    let id = hex::encode(id);
    let token = Secret::new(format!("{PREFIX}{id}_{}", URL_SAFE_NO_PAD.encode(secret)));
    let hash = hash(&token);
    Ok(MintedToken { id, token, hash })
}

/// Reads the lookup id out of a presented token; `None` if the token does
/// not have the shape of a Sigil join token.
pub fn lookup_id(token: &Secret) -> Option<&str> {
    let text = token.expose();
    // ASCII first: byte offsets below must fall on character boundaries.
    if !text.is_ascii() || text.len() != TOKEN_LEN || !text.starts_with(PREFIX) {
        return None;
    }
    let rest = &text[PREFIX.len()..];
    let (id, secret) = rest.split_at(ID_HEX_LEN);
    let secret = secret.strip_prefix('_')?;
    let id_ok = id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let secret_ok = secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some(id)
}

/// The SHA-256 of a whole token.
pub fn hash(token: &Secret) -> TokenHash {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.expose().as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Compares two token hashes in constant time.
pub fn hashes_match(stored: &[u8], presented: &TokenHash) -> bool {
    stored.ct_eq(presented.as_slice()).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_have_the_prefix_and_their_id_and_hash() {
        let minted = mint().unwrap();
        assert!(minted.token.expose().starts_with("sigil_jt_"));
        assert_eq!(lookup_id(&minted.token), Some(minted.id.as_str()));
        assert!(hashes_match(&minted.hash, &hash(&minted.token)));
        assert_ne!(mint().unwrap().token, minted.token);
    }

    #[test]
    fn malformed_tokens_have_no_lookup_id() {
        let good = mint().unwrap().token.expose().to_owned();
        let cases = [
            String::new(),
            "sigil_jt_".to_owned(),
            good.replacen("sigil_jt_", "sigil_xx_", 1),
            format!("{good}x"),
            good[..good.len() - 1].to_owned(),
            good.replacen('_', "-", 3),
            format!("{}G{}", &good[..9], &good[10..]),
            format!("{}!", &good[..good.len() - 1]),
            // A two-byte character straddling the end of the id.
            format!("sigil_jt_{}\u{e9}_{}", "0".repeat(15), "A".repeat(42)),
            format!("{}\u{e9}", &good[..good.len() - 2]),
        ];
        for bad in cases {
            assert_eq!(lookup_id(&Secret::new(bad.clone())), None, "{bad}");
        }
    }

    #[test]
    fn a_different_secret_does_not_match_the_stored_hash() {
        let minted = mint().unwrap();
        let mut other = minted.token.expose().to_owned();
        let last = other.pop().unwrap();
        other.push(if last == 'A' { 'B' } else { 'A' });
        assert!(!hashes_match(&minted.hash, &hash(&Secret::new(other))));
        assert!(!hashes_match(&minted.hash[..31], &minted.hash));
    }
}
