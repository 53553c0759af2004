//! Compact JWS (RFC 7515) as platforms issue them: three base64url parts,
//! a header naming the algorithm and key, and the claims.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::Refusal;

/// The longest token accepted. Real ones are a few kilobytes; the request
/// body limit (64 KiB) is the outer bound.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The signature algorithms an attestor may accept: asymmetric only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

impl Algorithm {
    /// Parses an `alg` name. `none` and the HMAC algorithms are never
    /// accepted: with a public JWKS, an HMAC key is no secret.
    pub(crate) fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "RS256" => Self::Rs256,
            "RS384" => Self::Rs384,
            "RS512" => Self::Rs512,
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "EdDSA" => Self::EdDsa,
            "none" => return Err("alg none is never accepted".to_owned()),
            name if name.starts_with("HS") => {
                return Err(format!("{name} (HMAC) is never accepted"));
            }
            name => return Err(format!("unsupported algorithm {name}")),
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::EdDsa => "EdDSA",
        }
    }
}

/// A parsed token whose signature is not checked yet.
#[derive(Debug)]
pub(crate) struct UnverifiedJws {
    /// The header's `alg`, as written.
    pub(crate) alg: String,
    /// The header's `kid`, if any.
    pub(crate) kid: Option<String>,
    /// The claims object.
    pub(crate) claims: Map<String, Value>,
    /// What the signature covers: `header.payload` as sent.
    pub(crate) signing_input: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

fn decode(part: &str, what: &str) -> Result<Vec<u8>, Refusal> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Refusal::new("malformed jwt", format!("the {what} is not base64url")))
}

fn object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Refusal::new(
            "malformed jwt",
            format!("the {what} is not a JSON object"),
        )),
    }
}

impl UnverifiedJws {
    /// Splits and decodes a compact JWS. Nothing in it is trusted yet.
    pub(crate) fn parse(token: &str) -> Result<Self, Refusal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Refusal::new(
                "oversized jwt",
                format!("the token is longer than {MAX_TOKEN_LEN} bytes"),
            ));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::new(
                "malformed jwt",
                "a JWT has three dot-separated parts",
            ));
        };
        let header_json = object(&decode(header, "header")?, "header")?;
        if header_json.contains_key("crit") {
            return Err(Refusal::new(
                "malformed jwt",
                "the header has critical extensions this CA does not understand",
            ));
        }
        let alg = match header_json.get("alg") {
            Some(Value::String(alg)) => alg.clone(),
            _ => return Err(Refusal::new("malformed jwt", "the header names no alg")),
        };
        let kid = match header_json.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(Refusal::new("malformed jwt", "the kid is not a string")),
        };
        let claims = object(&decode(payload, "payload")?, "payload")?;
        Ok(Self {
            alg,
            kid,
            claims,
            signing_input: format!("{header}.{payload}").into_bytes(),
            signature: decode(signature, "signature")?,
        })
    }
}
