//! `sigil-verifier`: the rustls verifiers that servers (and agents) embed to
//! accept only peers with a valid, unrevoked SPIFFE X509-SVID whose SPIFFE
//! ID their policy allows, checked inside the TLS handshake.
//!
//! - [`SpiffeClientVerifier`] (servers checking callers) and
//!   [`SpiffeServerVerifier`] (agents checking a server by SPIFFE ID).
//! - [`Policy`]: exact IDs, prefixes on segment boundaries, a whole trust
//!   domain, or a predicate; deny by default.
//! - [`TrustSource`]: a fixed bundle and CRLs, or [`LiveSource`], which
//!   follows a Sigil CA and learns of a revocation within a second.
//! - Each CRL's signature is verified once, when it is loaded (or at the
//!   first handshake through its issuer, if the issuer was not known yet),
//!   and a serial is then looked up in a hash set: the cost of a handshake
//!   does not grow with the CRL.
//! - [`PeerIdentity`] and, with the `axum` feature, [`axum::serve`] and an
//!   extractor, so that handlers get the caller's identity.
//!
//! # Quick start
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use sigil_verifier::{Credentials, LiveSource, Policy, SpiffeClientVerifier};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Trust the CA's root by fingerprint; CRLs then stream in by long poll.
//! let source = LiveSource::from_fingerprint("https://ca.internal:8443", "sha256:…")?
//!     .start()
//!     .await?;
//! // Accept the support agents, and nobody else.
//! let policy = Policy::deny_all().allow("spiffe://example.org/agents/support/*")?;
//! let verifier = SpiffeClientVerifier::builder(source, policy).client_verifier();
//! // This server's own SVID.
//! let credentials = Credentials::from_files("svid.pem".as_ref(), "svid.key".as_ref())?;
//! let config = sigil_verifier::server_config(Arc::clone(&verifier), credentials)?;
//!
//! let app = axum::Router::new().route(
//!     "/",
//!     axum::routing::get(|peer: sigil_verifier::PeerIdentity| async move {
//!         format!("hello, {}", peer.spiffe_id())
//!     }),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8444").await?;
//! sigil_verifier::axum::serve(listener, Arc::new(config), verifier, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Revocation and resumption
//!
//! TLS 1.3 session resumption skips certificate verification. The
//! configurations built by [`server_config`] and [`client_config`] turn it
//! off, so every new connection runs every check; [`axum::serve`] also
//! runs the full check again after each handshake. Connections that are
//! already open are never re-verified by rustls: [`axum::serve`] checks
//! them again whenever [`TrustSource::subscribe`] ticks and closes them at
//! the peer's expiry; other servers can ask [`TrustSource::is_revoked`].
//!
//! # Stale CRLs
//!
//! If the CA stops publishing (or this process stops hearing from it), the
//! CRLs held grow old. By default a peer whose chain needs a CRL that is
//! past its nextUpdate by more than [`DEFAULT_STALE_GRACE`] is refused
//! ([`StaleCrls::Refuse`]); [`StaleCrls::UseLastKnown`] keeps using it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
mod bundle;
pub mod ca;
mod check;
mod config;
mod crl;
pub mod danger;
mod error;
mod identity;
mod live;
mod policy;
mod svid;
mod trust;
mod verifier;

pub use check::{DEFAULT_STALE_GRACE, StaleCrls};
pub use config::{
    Credentials, client_config, client_config_with_resolver, server_config,
    server_config_with_resolver,
};
pub use error::Error;
pub use identity::PeerIdentity;
pub use live::LiveSource;
pub use policy::{Pattern, Policy};
pub use svid::spiffe_id_of;
pub use trust::TrustSource;
pub use verifier::{SpiffeClientVerifier, SpiffeServerVerifier, VerifierBuilder};
