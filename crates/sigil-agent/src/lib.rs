//! `sigil-agent`: what an agent embeds to get its SPIFFE X509-SVID from a
//! Sigil CA at start-up and keep it current without a human.
//!
//! - **Bootstrap** from the CA's URL and its root fingerprint (or a bundle
//!   file): only the pinned root is trusted from the first fetch; every
//!   later connection to the CA is verified against it (`sigil-verifier`).
//! - **Attest** with a join token, a platform JWT read from a file at each
//!   attestation ([`JwtFile`]), or any [`Attestor`]; the key pair is made
//!   here (P-256 by default, Ed25519 as an option) and never leaves.
//! - **Renew** in the background over mTLS with a fresh key each time, at
//!   about half the remaining lifetime with jitter, with backoff while the
//!   CA is unreachable, keeping the current SVID until it expires, and
//!   stopping with [`Event::Revoked`] when the CA says so.
//! - **Restart** without a new token: with [`AgentBuilder::files`], a valid
//!   SVID on disk is renewed over mTLS.
//! - **Present** the current SVID: [`Agent::client_config`] and
//!   [`Agent::server_config`] pick up each renewal on new handshakes.
//! - **Watch** [`Agent::events`]: issued, renewed, renewal failed, revoked.
//!
//! # Quick start
//!
//! ```no_run
//! use sigil_agent::{Agent, SvidFiles};
//! use sigil_verifier::Policy;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let agent = Agent::builder("https://ca.internal:8443")
//!     .fingerprint("sha256:…")
//!     // Needed only when the files hold no valid SVID.
//!     .join_token(&std::env::var("SIGIL_JOIN_TOKEN").unwrap_or_default())
//!     .files(SvidFiles::new("/var/lib/my-agent/identity"))
//!     .start()
//!     .await?;
//! println!("I am {}", agent.svid().spiffe_id());
//!
//! // Call a tool that must prove it is the CRM.
//! let tls = agent.client_config(Policy::deny_all().allow("spiffe://example.org/tools/crm")?)?;
//! # let _ = tls;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod attestation;
mod error;
mod event;
mod files;
mod key;
mod renewal;
mod requests;
mod resolver;
mod svid;

pub use agent::{Agent, AgentBuilder};
pub use attestation::{Attestor, BoxFuture, JoinToken, JwtFile};
pub use error::Error;
pub use event::Event;
pub use files::{BUNDLE_FILE, CRLS_FILE, KEY_FILE, SVID_FILE, SvidFiles};
pub use key::KeyType;
pub use svid::Svid;
