//! The HTTP API (v1), as an axum [`Router`] built by [`app`]. Tests can call
//! it without a socket; `crate::server` serves it over TLS.

mod admin;
mod audit;
mod bundle;
mod ca_root;
pub use ca_root::ServerIdentityHooks;
mod ca_rotate;
mod client_auth;
mod crl;
mod error;
mod health;
mod json_body;
mod jwt_attestation;
mod metrics;
mod openapi;
mod policy;
mod rate_limit;
mod renew;
mod request_id;
mod revocations;
mod status;
mod svid;
mod svid_response;
mod token_grants;

use std::ops::Deref;

use arc_swap::ArcSwap;
use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};

pub use client_auth::{Admin, Caller, PeerAddr, PeerCertificates, SourceIp, authenticate};
pub use crl::{BUNDLE_SEQUENCE_HEADER, CRL_NUMBER_HEADER};
pub use error::ApiError;
pub use json_body::{BODY_TIMEOUT, JsonBody, MAX_BODY_BYTES};
pub use policy::{Policy, PolicyUpdate};
pub use rate_limit::{RateLimit, RateLimiter, RateLimiters, RateLimits};
pub use request_id::REQUEST_ID_HEADER;
pub use token_grants::TokenGrants;

use crate::attestation::jwt::JwtAttestors;
use crate::audit::RefusalCounter;
use crate::crl_board::CrlBoard;
use crate::csr::KeyPolicy;
use crate::hostname::Host;
use crate::issuance::{Issuance, TtlPolicy};
use crate::metrics::Metrics;
use crate::namespace::AdminIds;
use crate::rotation::RotationSettings;

/// The rotation settings, the lock that makes rotations one at a time,
/// and who to tell of a root rotation's steps.
#[derive(Debug)]
struct RotationState {
    settings: RotationSettings,
    lock: tokio::sync::Mutex<()>,
    /// Wakes the rotation schedule: a root rotation began.
    schedule: tokio::sync::Notify,
    /// Has the server take a new certificate when a new root takes over,
    /// and knows under which issuing CA the one in use is.
    server_identity: ServerIdentityHooks,
    /// When a new root last took over (since this start).
    activated_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct StateInner {
    /// Signs and records certificates.
    pub issuance: Issuance,
    /// What `sigil.toml` decides, reloaded on SIGHUP.
    policy: ArcSwap<Policy>,
    /// The CRLs currently published.
    pub crls: Arc<CrlBoard>,
    /// Anonymous refusals, counted until they are written to the audit log.
    pub refusals: Arc<RefusalCounter>,
    /// The names the CA's own server certificate carries; no token may
    /// bind them to a workload, which could then pass for the CA.
    pub ca_hosts: Vec<Host>,
    /// Join-token grants read from the store moments ago.
    pub token_grants: TokenGrants,
    /// What `GET /metrics` reports.
    pub metrics: Arc<Metrics>,
    /// The status page's certificate counts, computed moments ago.
    status_counts: status::CountsCache,
    /// How to rotate the issuing CA, when the server knows its data dir.
    rotation: Option<RotationState>,
}

impl StateInner {
    /// An attestation was refused: counted for the audit log, and charged
    /// to the address's failed-attestation limit.
    pub(crate) fn attestation_refused(&self, reason: &str, source: Option<std::net::IpAddr>) {
        self.refusals.count(reason, source);
        if let Some(ip) = source {
            // Over the limit already: the next attempt is refused anyway.
            let _ = self
                .policy
                .load()
                .rate_limiters
                .failed_attestations
                .take(ip, std::time::Instant::now());
        }
    }

    /// 429 for an address that failed too many attestations lately.
    ///
    /// # Errors
    ///
    /// The address is over its failed-attestation limit.
    pub(crate) fn admit_attestation(
        &self,
        source: Option<std::net::IpAddr>,
    ) -> Result<(), ApiError> {
        let Some(ip) = source else { return Ok(()) };
        match self
            .policy
            .load()
            .rate_limiters
            .failed_attestations
            .exhausted(ip, std::time::Instant::now())
        {
            Some(wait) => {
                self.refusals.count("too many failed attestations", source);
                self.metrics.rate_limited("failed_attestations");
                Err(ApiError::rate_limited(wait))
            }
            None => Ok(()),
        }
    }
}

impl Deref for AppState {
    type Target = StateInner;

    fn deref(&self) -> &StateInner {
        &self.inner
    }
}

impl AppState {
    /// Assembles the state.
    ///
    /// # Errors
    ///
    /// The CA's certificates cannot be turned into a trust anchor or a
    /// SPIFFE bundle.
    pub fn new(
        issuance: Issuance,
        ttl: TtlPolicy,
        keys: KeyPolicy,
        crls: Arc<CrlBoard>,
        refusals: Arc<RefusalCounter>,
    ) -> anyhow::Result<Self> {
        let ca = issuance.ca();
        let policy = Policy::new(ca.trust_domain(), ttl, keys);
        // Refuse at start a root the SPIFFE bundle cannot show.
        bundle::spiffe_bundle_json(&ca)?;
        Ok(Self {
            inner: Arc::new(StateInner {
                issuance,
                policy: ArcSwap::from_pointee(policy),
                crls,
                refusals,
                ca_hosts: Vec::new(),
                token_grants: TokenGrants::default(),
                metrics: Arc::new(Metrics::new()),
                status_counts: status::CountsCache::default(),
                rotation: None,
            }),
        })
    }
}

impl AppState {
    /// Sets where the metrics are kept (shared with the store, which
    /// reports its commits there).
    ///
    /// Call it before the state is shared; a shared state keeps its own.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.metrics = metrics;
        }
        self
    }

    /// Lets `POST /admin/v1/ca/rotate` rotate the issuing CA.
    ///
    /// Call it before the state is shared; a shared state keeps its own.
    #[must_use]
    pub fn with_rotation(mut self, settings: RotationSettings) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.rotation = Some(RotationState {
                settings,
                lock: tokio::sync::Mutex::new(()),
                schedule: tokio::sync::Notify::new(),
                server_identity: ServerIdentityHooks::default(),
                activated_at: std::sync::Mutex::new(None),
            });
        }
        self
    }

    /// Sets the per-address rate limits.
    #[must_use]
    pub fn with_rate_limits(self, limits: RateLimits) -> Self {
        // Infallible: the change cannot fail.
        let _ = self.change_policy(|policy| {
            policy.rate_limits = limits;
            policy.rate_limiters = RateLimiters::new(limits);
            Ok(())
        });
        self
    }

    /// Sets who may use the admin API.
    ///
    /// # Errors
    ///
    /// The admin IDs belong to another trust domain.
    pub fn with_admins(self, admins: AdminIds) -> anyhow::Result<Self> {
        self.change_policy(|policy| {
            policy.namespace = policy.namespace.clone().with_admins(admins)?;
            Ok(())
        })?;
        Ok(self)
    }

    /// Sets the JWT attestors.
    #[must_use]
    pub fn with_jwt_attestors(self, attestors: Arc<JwtAttestors>) -> Self {
        // Infallible: the change cannot fail.
        let _ = self.change_policy(|policy| {
            policy.jwt_attestors = attestors;
            Ok(())
        });
        self
    }

    /// Sets the names the CA's own server certificate carries.
    ///
    /// Call it before the state is shared; a shared state keeps its names.
    #[must_use]
    pub fn with_ca_hosts(mut self, hosts: Vec<Host>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.ca_hosts = hosts;
        }
        self
    }
}

/// The API's router.
pub fn app(state: AppState) -> Router {
    // The routes that cost the CA work are rate-limited per address, and
    // renewals apart from the rest.
    let renewals = Router::new()
        .route("/v1/renew", post(renew::renew))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit_renewals,
        ));
    let limited = Router::new()
        .route("/v1/svid", post(svid::issue))
        .route("/admin/v1/join-tokens", post(admin::create_join_token))
        .route("/admin/v1/revocations", post(revocations::revoke))
        .route("/admin/v1/bans/{spiffe_id}", delete(revocations::lift_ban))
        .route("/admin/v1/certificates", get(revocations::list))
        .route("/admin/v1/audit", get(audit::page))
        .route("/admin/v1/status", get(status::status))
        .route("/admin/v1/ca/rotate", post(ca_rotate::rotate))
        .route("/admin/v1/ca/root/rotate", post(ca_root::rotate))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit_requests,
        ));
    Router::new()
        .route("/v1/bundle", get(bundle::pem))
        .route("/v1/bundle.spiffe", get(bundle::spiffe))
        .route("/v1/crl", get(crl::active))
        .route("/v1/crl/{issuer_key_id}", get(crl::by_issuer))
        .route("/v1/crls", get(crl::all))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(metrics::render))
        .route("/openapi.json", get(openapi::document))
        .merge(limited)
        .merge(renewals)
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        // Inside the body reader: a slow upload is the client's time.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(json_body::buffer_body))
        .layer(axum::middleware::from_fn(request_id::assign))
        .with_state(state)
}

#[cfg(test)]
mod tests;
