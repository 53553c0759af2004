//! JWT attestation: a workload presents a token its platform signed
//! (Kubernetes service-account tokens, GitHub Actions or GitLab CI OIDC
//! tokens, cloud identity tokens); an attestor the admin configured checks
//! it and maps its claims to one SPIFFE ID.
//!
//! The checks, in order: the token's size and shape; its `alg`, which must
//! be one the attestor lists (never `none`, never HMAC); its signature,
//! against the issuer's JWKS (an unknown `kid` fetches a remote JWKS again,
//! at most once a second); `iss`, `aud`, `exp`, `nbf`, `iat` with a minute
//! of clock skew; `jti` (required unless the attestor says otherwise); the
//! attestor's `require` rules; and the SPIFFE ID template. Replay of a
//! `jti` is refused by the store, in the same transaction that records the
//! certificate.

mod claims;
pub mod config;
mod jose;
mod jwk;
mod keys;
mod template;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sigil_core::SpiffeId;
use time::OffsetDateTime;

use self::claims::{check_registered, check_required};
use self::config::JwtAttestorConfig;
use self::jose::{Algorithm, UnverifiedJws};
use self::keys::KeySource;
use self::template::Template;
use crate::namespace::Namespace;

/// Why a token was refused: a short fixed reason (for counting and the
/// audit log) and a message for the caller. Neither holds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A fixed reason, such as `jwt wrong audience`.
    pub reason: &'static str,
    /// What was wrong, for a human.
    pub message: String,
}

impl Refusal {
    pub(crate) fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// What a valid token proves.
#[derive(Debug, Clone)]
pub struct Attested {
    /// The SPIFFE ID the template made.
    pub spiffe_id: SpiffeId,
    /// The token's `sub`, for the audit log.
    pub subject: Option<String>,
    /// The token's issuer, for replay bookkeeping.
    pub issuer: String,
    /// The token's `jti`, if it has one.
    pub jti: Option<String>,
    /// Until when the token's `jti` must be remembered: its `exp` plus
    /// the clock skew the checks allow (a token is accepted that long).
    pub expires_at: OffsetDateTime,
    /// The longest SVID the attestor grants.
    pub max_ttl: Option<Duration>,
}

/// One configured attestor.
#[derive(Debug)]
pub struct JwtAttestor {
    name: String,
    issuer: String,
    keys: Arc<KeySource>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    template: Template,
    require: Vec<(String, Vec<String>)>,
    max_ttl: Option<Duration>,
    require_jti: bool,
}

impl JwtAttestor {
    /// Builds an attestor from its table; `dir` is where relative paths
    /// are read from.
    ///
    /// # Errors
    ///
    /// A message naming the attestor and what is wrong with it.
    pub async fn load(
        config: &JwtAttestorConfig,
        dir: &Path,
        namespace: &Namespace,
    ) -> Result<Self, String> {
        let name = &config.name;
        let fail = |message: String| format!("attestor {name:?}: {message}");
        if name.is_empty() {
            return Err("an attestor needs a name".to_owned());
        }
        if config.issuer.is_empty() {
            return Err(fail("`issuer` is empty".to_owned()));
        }
        if config.audiences.is_empty() {
            return Err(fail("`audiences` is empty: name at least one".to_owned()));
        }
        if config.algorithms.is_empty() {
            return Err(fail("`algorithms` is empty: name at least one".to_owned()));
        }
        let algorithms = config
            .algorithms
            .iter()
            .map(|alg| Algorithm::parse(alg))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(format!("`algorithms`: {e}")))?;
        let template = Template::parse(&config.spiffe_id, namespace)
            .map_err(|e| fail(format!("`spiffe_id`: {e}")))?;
        if config.max_ttl.is_some_and(|ttl| ttl.get().is_zero()) {
            return Err(fail("`max_ttl` must be more than 0s".to_owned()));
        }
        let mut require = Vec::new();
        for (pointer, values) in &config.require {
            if !template::is_pointer(pointer) {
                return Err(fail(format!(
                    "`require`: {pointer:?} is not a JSON Pointer (they start with '/')"
                )));
            }
            if values.values().is_empty() {
                return Err(fail(format!("`require`: {pointer:?} accepts no value")));
            }
            require.push((pointer.clone(), values.values().to_vec()));
        }
        let keys = Arc::new(
            KeySource::load(&config.jwks, dir)
                .await
                .map_err(|e| fail(format!("`jwks`: {e}")))?,
        );
        keys.spawn_refresh();
        Ok(Self {
            name: name.clone(),
            issuer: config.issuer.clone(),
            keys,
            audiences: config.audiences.clone(),
            algorithms,
            template,
            require,
            max_ttl: config.max_ttl.map(|ttl| ttl.get()),
            require_jti: config.require_jti,
        })
    }

    /// The attestor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks `token` and maps it to a SPIFFE ID.
    ///
    /// # Errors
    ///
    /// Why the token is refused.
    pub async fn attest(
        &self,
        token: &str,
        namespace: &Namespace,
        now: OffsetDateTime,
    ) -> Result<Attested, Refusal> {
        let jws = UnverifiedJws::parse(token)?;
        let alg = Algorithm::parse(&jws.alg)
            .ok()
            .filter(|alg| self.algorithms.contains(alg))
            .ok_or_else(|| {
                Refusal::new(
                    "jwt algorithm not allowed",
                    format!("alg {:?} is not one this attestor accepts", jws.alg),
                )
            })?;
        let mut keys = self.keys.current();
        // Only a named, unknown key fetches the set again: a token without
        // a kid never does.
        if jws.kid.is_some()
            && keys.find(jws.kid.as_deref(), alg).is_none()
            && let Some(refreshed) = self.keys.refresh_for_unknown_key().await
        {
            keys = refreshed;
        }
        let key = keys.find(jws.kid.as_deref(), alg).ok_or_else(|| {
            Refusal::new(
                "jwt unknown key",
                match &jws.kid {
                    Some(kid) => format!("the issuer has no key {kid:?} for {}", alg.name()),
                    None => "the token names no kid and the key set has no single key for its alg"
                        .to_owned(),
                },
            )
        })?;
        key.verify(alg, &jws.signing_input, &jws.signature)?;
        let registered = check_registered(
            &jws.claims,
            &self.issuer,
            &self.audiences,
            self.require_jti,
            now,
        )?;
        let claims = serde_json::Value::Object(jws.claims);
        check_required(&claims, &self.require)?;
        let spiffe_id = self.template.render(&claims, namespace)?;
        Ok(Attested {
            spiffe_id,
            subject: registered.subject,
            issuer: self.issuer.clone(),
            jti: registered.jti,
            expires_at: registered
                .expires_at
                .saturating_add(time::Duration::seconds(claims::CLOCK_SKEW)),
            max_ttl: self.max_ttl,
        })
    }
}

/// Every configured attestor, by name.
#[derive(Debug, Default)]
pub struct JwtAttestors {
    by_name: HashMap<String, Arc<JwtAttestor>>,
}

impl JwtAttestors {
    /// Builds every attestor; names must be unique.
    ///
    /// # Errors
    ///
    /// A message naming the attestor and what is wrong with it.
    pub async fn load(
        configs: &[JwtAttestorConfig],
        dir: &Path,
        namespace: &Namespace,
    ) -> Result<Self, String> {
        let mut by_name = HashMap::new();
        for config in configs {
            let attestor = JwtAttestor::load(config, dir, namespace).await?;
            if by_name
                .insert(config.name.clone(), Arc::new(attestor))
                .is_some()
            {
                return Err(format!("two attestors are named {:?}", config.name));
            }
        }
        Ok(Self { by_name })
    }

    /// The attestor of that name.
    pub fn get(&self, name: &str) -> Option<Arc<JwtAttestor>> {
        self.by_name.get(name).cloned()
    }

    /// Whether none is configured.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}
