//! JSON Web Key Sets (RFC 7517) of an issuer, and signature checks with
//! ring: RSA (PKCS#1 v1.5 and PSS), ECDSA P-256/P-384, Ed25519.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

use super::Refusal;
use super::jose::Algorithm;

/// The largest JWKS document read.
pub(crate) const MAX_JWKS_LEN: usize = 1024 * 1024;

/// One public key.
#[derive(Debug, Clone)]
pub(crate) struct Jwk {
    kid: Option<String>,
    /// The algorithm the key is pinned to, if the JWK says.
    alg: Option<String>,
    key: PublicKey,
}

#[derive(Debug, Clone)]
enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256(Vec<u8>),
    P384(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// The keys of one issuer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Map<String, serde_json::Value>>,
}

fn member<'a>(jwk: &'a serde_json::Map<String, serde_json::Value>, name: &str) -> Option<&'a str> {
    jwk.get(name).and_then(|value| value.as_str())
}

fn bytes(jwk: &serde_json::Map<String, serde_json::Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = member(jwk, name).ok_or_else(|| format!("a key lacks `{name}`"))?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("a key's `{name}` is not base64url"))
}

fn uncompressed_point(x: &[u8], y: &[u8], size: usize) -> Result<Vec<u8>, String> {
    if x.len() != size || y.len() != size {
        return Err("an EC key's coordinates have the wrong length".to_owned());
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    Ok(point)
}

impl Jwks {
    /// Reads a JWKS document. Keys of kinds this CA does not verify with
    /// (symmetric `oct` keys, encryption keys) are skipped; a malformed key
    /// of a kind it does is an error.
    pub(crate) fn parse(document: &[u8]) -> Result<Self, String> {
        if document.len() > MAX_JWKS_LEN {
            return Err(format!("the JWKS is larger than {MAX_JWKS_LEN} bytes"));
        }
        let parsed: JwksDocument = serde_json::from_slice(document)
            .map_err(|e| format!("not a JWKS document (`{{\"keys\": […]}}`): {e}"))?;
        let mut keys = Vec::new();
        for jwk in &parsed.keys {
            if member(jwk, "use").is_some_and(|usage| usage != "sig") {
                continue;
            }
            // One malformed key does not discard the others.
            let Ok(key) = Self::key(jwk) else {
                tracing::warn!(
                    kid = member(jwk, "kid"),
                    "skipping a malformed key in a JWKS"
                );
                continue;
            };
            let Some(key) = key else {
                continue;
            };
            keys.push(Jwk {
                kid: member(jwk, "kid").map(str::to_owned),
                alg: member(jwk, "alg").map(str::to_owned),
                key,
            });
        }
        Ok(Self { keys })
    }

    /// The key a JWK holds; `None` for kinds this CA does not verify with.
    fn key(jwk: &serde_json::Map<String, serde_json::Value>) -> Result<Option<PublicKey>, String> {
        Ok(Some(match (member(jwk, "kty"), member(jwk, "crv")) {
            (Some("RSA"), _) => PublicKey::Rsa {
                n: bytes(jwk, "n")?,
                e: bytes(jwk, "e")?,
            },
            (Some("EC"), Some("P-256")) => PublicKey::P256(uncompressed_point(
                &bytes(jwk, "x")?,
                &bytes(jwk, "y")?,
                32,
            )?),
            (Some("EC"), Some("P-384")) => PublicKey::P384(uncompressed_point(
                &bytes(jwk, "x")?,
                &bytes(jwk, "y")?,
                48,
            )?),
            (Some("OKP"), Some("Ed25519")) => PublicKey::Ed25519(bytes(jwk, "x")?),
            _ => return Ok(None),
        }))
    }

    /// How many usable keys the set holds.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The key a token's header points at: by `kid`, or, without one, the
    /// only key that fits the algorithm.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Jwk> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|key| key.kid.as_deref() == Some(kid) && key.fits(alg)),
            None => {
                let mut fitting = self.keys.iter().filter(|key| key.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Some(key),
                    _ => None,
                }
            }
        }
    }
}

impl Jwk {
    fn fits(&self, alg: Algorithm) -> bool {
        if self
            .alg
            .as_deref()
            .is_some_and(|pinned| pinned != alg.name())
        {
            return false;
        }
        use Algorithm as A;
        matches!(
            (&self.key, alg),
            (
                PublicKey::Rsa { .. },
                A::Rs256 | A::Rs384 | A::Rs512 | A::Ps256 | A::Ps384 | A::Ps512
            ) | (PublicKey::P256(_), A::Es256)
                | (PublicKey::P384(_), A::Es384)
                | (PublicKey::Ed25519(_), A::EdDsa)
        )
    }

    /// Checks `signature` over `message` with this key and `alg`.
    pub(crate) fn verify(
        &self,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), Refusal> {
        let bad = || Refusal::new("bad jwt signature", "the signature does not verify");
        if !self.fits(alg) {
            return Err(Refusal::new(
                "bad jwt signature",
                format!("the key is not for {}", alg.name()),
            ));
        }
        use Algorithm as A;
        let result = match (&self.key, alg) {
            (PublicKey::Rsa { n, e }, alg) => {
                let parameters: &signature::RsaParameters = match alg {
                    A::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    A::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    A::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    A::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    A::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                RsaPublicKeyComponents { n, e }.verify(parameters, message, signature)
            }
            (PublicKey::P256(point), _) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, signature)
            }
            (PublicKey::P384(point), _) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, signature)
            }
            (PublicKey::Ed25519(key), _) => {
                UnparsedPublicKey::new(&signature::ED25519, key).verify(message, signature)
            }
        };
        result.map_err(|_| bad())
    }
}
