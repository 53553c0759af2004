//! How an agent proves what it is when it has no SVID yet.

use std::future::Future;
use std::pin::Pin;

use sigil_core::wire::{Attestation, Secret};

use crate::Error;

/// A boxed future, as trait objects need.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Produces the attestation sent with the first CSR. Join tokens are built
/// in; other kinds (such as a JWT read from a file each time) implement
/// this.
pub trait Attestor: Send + Sync {
    /// The attestation for one issuance request.
    fn attestation(&self) -> BoxFuture<'_, Result<Attestation, Error>>;
}

/// A one-time join token an admin created for this agent's SPIFFE ID.
pub struct JoinToken(Secret);

impl JoinToken {
    /// Wraps the token text (`sigil_jt_…`).
    pub fn new(token: impl Into<String>) -> Self {
        Self(Secret::new(token.into().trim().to_owned()))
    }
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinToken(<redacted>)")
    }
}

impl Attestor for JoinToken {
    fn attestation(&self) -> BoxFuture<'_, Result<Attestation, Error>> {
        let attestation = Attestation::JoinToken {
            token: self.0.clone(),
        };
        Box::pin(async move { Ok(attestation) })
    }
}
