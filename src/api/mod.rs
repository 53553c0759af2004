//! The HTTP API (v1), as an axum [`Router`] built by [`app`]. Tests can call
//! it without a socket; `crate::server` serves it over TLS.

mod admin;
mod bundle;
mod client_auth;
mod error;
mod health;
mod json_body;
mod svid;

use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use client_auth::{Admin, Caller, ClientAuthenticator, PeerCertificates, authenticate};
pub use error::ApiError;
pub use json_body::{BODY_TIMEOUT, JsonBody, MAX_BODY_BYTES};

use crate::csr::KeyPolicy;
use crate::issuance::{Issuance, TtlPolicy};
use crate::namespace::Namespace;

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
    /// The CA's own namespace.
    pub namespace: Namespace,
    /// Checks client certificates.
    pub authenticator: ClientAuthenticator,
    /// Lifetimes of SVIDs.
    pub ttl: TtlPolicy,
    /// Accepted agent keys.
    pub keys: KeyPolicy,
    /// The SPIFFE bundle (JWKS), rendered once.
    spiffe_bundle: String,
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
    pub fn new(issuance: Issuance, ttl: TtlPolicy, keys: KeyPolicy) -> anyhow::Result<Self> {
        let ca = issuance.ca();
        let namespace = Namespace::new(ca.trust_domain());
        let authenticator = ClientAuthenticator::new(ca)?;
        let spiffe_bundle = bundle::spiffe_bundle_json(ca)?;
        Ok(Self {
            inner: Arc::new(StateInner {
                issuance,
                namespace,
                authenticator,
                ttl,
                keys,
                spiffe_bundle,
            }),
        })
    }
}

/// The API's router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/bundle", get(bundle::pem))
        .route("/v1/bundle.spiffe", get(bundle::spiffe))
        .route("/v1/svid", post(svid::issue))
        .route("/admin/v1/join-tokens", post(admin::create_join_token))
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn(json_body::buffer_body))
        .with_state(state)
}

#[cfg(test)]
mod tests;
