//! What `sigil.toml` decides and SIGHUP reloads, swapped whole: who is an
//! admin, SVID lifetimes, accepted agent keys, rate limits and JWT
//! attestors. Issuance and renewal each read one snapshot
//! ([`AppState::policy`]) for their decisions, so a reload never mixes two
//! configurations in one certificate; open connections are not touched.

use std::sync::Arc;

use sigil_core::TrustDomain;

use super::{AppState, RateLimiters, RateLimits};
use crate::attestation::jwt::JwtAttestors;
use crate::csr::KeyPolicy;
use crate::issuance::TtlPolicy;
use crate::namespace::{AdminIds, Namespace};

/// The reloadable settings in force.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The CA's namespace, with who may use the admin API.
    pub namespace: Namespace,
    /// Lifetimes of SVIDs.
    pub ttl: TtlPolicy,
    /// Accepted agent keys.
    pub keys: KeyPolicy,
    /// The per-address limits, as configured.
    pub rate_limits: RateLimits,
    /// Their buckets (each kept across a reload that leaves its limit
    /// alone).
    pub rate_limiters: RateLimiters,
    /// The JWT attestors.
    pub jwt_attestors: Arc<JwtAttestors>,
}

impl Policy {
    /// The defaults for a trust domain: no JWT attestors, the default
    /// limits, every `/sigil/admin/` identity an admin.
    pub(super) fn new(trust_domain: &TrustDomain, ttl: TtlPolicy, keys: KeyPolicy) -> Self {
        Self {
            namespace: Namespace::new(trust_domain),
            ttl,
            keys,
            rate_limits: RateLimits::default(),
            rate_limiters: RateLimiters::new(RateLimits::default()),
            jwt_attestors: Arc::new(JwtAttestors::default()),
        }
    }
}

/// A new configuration's reloadable settings, as SIGHUP reads them.
#[derive(Debug, Clone)]
pub struct PolicyUpdate {
    /// Lifetimes of SVIDs.
    pub ttl: TtlPolicy,
    /// Accepted agent keys.
    pub keys: KeyPolicy,
    /// Per-address rate limits.
    pub rate_limits: RateLimits,
    /// Who may use the admin API, when not every `/sigil/admin/` identity.
    pub admins: Option<AdminIds>,
    /// The JWT attestors, already loaded.
    pub jwt_attestors: Arc<JwtAttestors>,
}

impl AppState {
    /// The settings in force now; hold it for the whole request.
    pub fn policy(&self) -> Arc<Policy> {
        self.inner.policy.load_full()
    }

    /// Puts `update` in force for every request that starts from now on.
    ///
    /// # Errors
    ///
    /// The admin IDs belong to another trust domain; the settings in force
    /// are kept.
    pub fn reload(&self, update: PolicyUpdate) -> anyhow::Result<()> {
        let current = self.policy();
        let mut namespace = Namespace::new(current.namespace.trust_domain());
        if let Some(admins) = update.admins {
            namespace = namespace.with_admins(admins)?;
        }
        let rate_limiters = current.rate_limiters.carried_over(update.rate_limits);
        self.inner.policy.store(Arc::new(Policy {
            namespace,
            ttl: update.ttl,
            keys: update.keys,
            rate_limits: update.rate_limits,
            rate_limiters,
            jwt_attestors: update.jwt_attestors,
        }));
        Ok(())
    }

    /// Changes the settings in force with `change`, before the state is
    /// shared (the builder methods).
    pub(super) fn change_policy(
        &self,
        change: impl FnOnce(&mut Policy) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut policy = Policy::clone(&self.policy());
        change(&mut policy)?;
        self.inner.policy.store(Arc::new(policy));
        Ok(())
    }
}
