//! A tiny JWT signer, as an identity provider is one: keys made here
//! (RSA by openssl, ECDSA P-256 and Ed25519 by ring), their JWKs, and
//! compact JWS tokens (base64url header and payload, signed over
//! `header.payload`). Also the forgeries a hostile client sends: `alg:
//! none` and HS256 keyed with the public key.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::SystemRandom;
use ring::rsa::PublicKeyComponents;
use ring::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair,
};
use serde_json::{Value, json};

use crate::common::openssl;

pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// `base64url(header).base64url(claims)`, what a JWS signature covers.
pub(crate) fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

enum Key {
    Rsa {
        key: RsaKeyPair,
        /// The public key as SPKI PEM, what an attacker finds published.
        public_pem: String,
    },
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// One signing key of an identity provider, with its key id.
pub(crate) struct Signer {
    pub(crate) kid: String,
    key: Key,
}

impl Signer {
    /// An RSA 2048 key, made by openssl in `dir` (ring cannot make one).
    pub(crate) fn rsa(kid: &str, dir: &Path) -> Self {
        let file = format!("{kid}.rsa.pem");
        let made = openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &file,
            ],
            dir,
        );
        assert!(made.status.success(), "{made:?}");
        let public = openssl(&["pkey", "-in", &file, "-pubout"], dir);
        assert!(public.status.success(), "{public:?}");
        let pkcs8 = pem::parse(std::fs::read(dir.join(&file)).unwrap()).unwrap();
        assert_eq!(pkcs8.tag(), "PRIVATE KEY");
        Self {
            kid: kid.to_owned(),
            key: Key::Rsa {
                key: RsaKeyPair::from_pkcs8(pkcs8.contents()).unwrap(),
                public_pem: String::from_utf8(public.stdout).unwrap(),
            },
        }
    }

    pub(crate) fn es256(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self {
            kid: kid.to_owned(),
            key: Key::Es256(key),
        }
    }

    pub(crate) fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self {
            kid: kid.to_owned(),
            key: Key::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()),
        }
    }

    /// The JWS `alg` this key signs with.
    pub(crate) fn alg(&self) -> &'static str {
        match self.key {
            Key::Rsa { .. } => "RS256",
            Key::Es256(_) => "ES256",
            Key::Ed25519(_) => "EdDSA",
        }
    }

    /// The public key as a JWK, the way identity providers publish it.
    pub(crate) fn jwk(&self) -> Value {
        match &self.key {
            Key::Rsa { key, .. } => {
                let public = PublicKeyComponents::<Vec<u8>>::from(key.public());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256",
                       "n": b64(&public.n), "e": b64(&public.e)})
            }
            Key::Es256(key) => {
                let point = key.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig",
                       "alg": "ES256", "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            Key::Ed25519(key) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "use": "sig",
                       "alg": "EdDSA", "x": b64(key.public_key().as_ref())})
            }
        }
    }

    /// The RSA public key as PEM, the secret of the HS256 confusion attack.
    pub(crate) fn public_pem(&self) -> &str {
        match &self.key {
            Key::Rsa { public_pem, .. } => public_pem,
            _ => panic!("only the RSA key is published as PEM here"),
        }
    }

    /// Signs `header.claims` as given.
    pub(crate) fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let rng = SystemRandom::new();
        let signature = match &self.key {
            Key::Rsa { key, .. } => {
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    input.as_bytes(),
                    &mut signature,
                )
                .unwrap();
                signature
            }
            Key::Es256(key) => key.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Key::Ed25519(key) => key.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&signature))
    }

    /// A token with the usual header: `alg`, `kid`, `typ: JWT`.
    pub(crate) fn token(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }

    pub(crate) fn header(&self) -> Value {
        json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"})
    }
}

/// A JWKS document holding these keys.
pub(crate) fn jwks(signers: &[&Signer]) -> Value {
    json!({"keys": signers.iter().map(|signer| signer.jwk()).collect::<Vec<_>>()})
}

/// An unsecured JWS (`alg: none`): the signature part is empty.
pub(crate) fn unsigned(kid: &str, claims: &Value) -> String {
    let input = signing_input(&json!({"alg": "none", "kid": kid, "typ": "JWT"}), claims);
    format!("{input}.")
}

/// An HS256 token keyed with `secret` (the algorithm confusion attack uses
/// the issuer's public key, which anyone can read).
pub(crate) fn hs256(kid: &str, secret: &[u8], claims: &Value) -> String {
    let input = signing_input(&json!({"alg": "HS256", "kid": kid, "typ": "JWT"}), claims);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}
