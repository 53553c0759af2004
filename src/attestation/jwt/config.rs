//! How an admin writes a JWT attestor in `sigil.toml`:
//!
//! ```toml
//! [[attestor.jwt]]
//! name = "k8s-prod"
//! issuer = "https://kubernetes.default.svc"
//! jwks = { file = "k8s-jwks.json" }   # or { url = "https://…/jwks", refresh = "5m", ca_file = "idp-ca.pem" }
//! audiences = ["sigil"]
//! algorithms = ["RS256", "ES256"]     # EdDSA too; never none or HS*
//! spiffe_id = "spiffe://example.org/k8s/{/kubernetes.io/namespace}/sa/{/kubernetes.io/serviceaccount/name}"
//! require = { "/kubernetes.io/namespace" = ["agents", "tools"] }
//! max_ttl = "1h"
//! require_jti = true                  # the default
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::duration::HumanDuration;

/// One `[[attestor.jwt]]` table, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtAttestorConfig {
    /// What agents name in `{"type": "jwt", "attestor": …}`.
    pub name: String,
    /// The exact `iss` the tokens carry.
    pub issuer: String,
    /// Where the issuer's signing keys are.
    pub jwks: JwksConfig,
    /// The accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// The accepted `alg` values: RS256/384/512, PS256/384/512, ES256,
    /// ES384, EdDSA.
    pub algorithms: Vec<String>,
    /// The SPIFFE ID template: `{/json/pointer}` is one path segment,
    /// `{/json/pointer:segments}` may be several.
    pub spiffe_id: String,
    /// Claims that must hold one of the listed values (JSON Pointer →
    /// value or list of values).
    #[serde(default)]
    pub require: BTreeMap<String, OneOrMany>,
    /// The longest SVID this attestor grants (the server's maximum
    /// otherwise).
    #[serde(default)]
    pub max_ttl: Option<HumanDuration>,
    /// Whether a token must carry a `jti` (for replay protection).
    #[serde(default = "default_true")]
    pub require_jti: bool,
}

fn default_true() -> bool {
    true
}

/// `jwks = { file = "…" }` or `jwks = { url = "https://…", refresh = "5m",
/// ca_file = "…" }`. Relative paths are read from the config file's
/// directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    /// A JWKS document on disk.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A JWKS document served over HTTPS.
    #[serde(default)]
    pub url: Option<String>,
    /// How often the URL is fetched again (default 5 minutes).
    #[serde(default)]
    pub refresh: Option<HumanDuration>,
    /// Roots (PEM) for a private identity provider's HTTPS server, instead
    /// of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// A required claim value, or a list of accepted values.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Any of these values.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The accepted values.
    pub fn values(&self) -> &[String] {
        match self {
            Self::One(value) => std::slice::from_ref(value),
            Self::Many(values) => values,
        }
    }
}
