//! The error type shared by everything in `sigil-core`.

/// Everything that can go wrong in `sigil-core`.
///
/// Each variant carries a short, human-readable `reason` that says exactly
/// which rule the input broke, so it can be shown to an operator as is.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A string is not a valid SPIFFE ID.
    #[error("invalid SPIFFE ID: {reason}")]
    InvalidSpiffeId {
        /// Which rule of the SPIFFE ID standard the input broke.
        reason: &'static str,
    },
    /// A string is not a valid trust domain name.
    #[error("invalid trust domain: {reason}")]
    InvalidTrustDomain {
        /// Which rule of the SPIFFE ID standard the input broke.
        reason: &'static str,
    },
}
