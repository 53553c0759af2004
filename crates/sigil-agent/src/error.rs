//! The one error type of this crate.

/// Why the agent could not get, keep or use its identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Trust material, the CA connection or a TLS configuration failed
    /// (a wrong fingerprint fails closed here).
    #[error(transparent)]
    Trust(#[from] sigil_verifier::Error),
    /// The CA refused to issue or renew. `code` is its error code, such as
    /// `invalid_attestation` for a spent or unknown join token.
    #[error("the CA refused ({status} {code}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The CA's error code.
        code: String,
        /// The CA's message.
        message: String,
        /// How long the CA asked to wait before trying again (its
        /// `Retry-After`, on a 429 or 503).
        retry_after: Option<std::time::Duration>,
    },
    /// The identity is revoked or banned: renewing is over. An operator
    /// must lift the ban and hand out a new join token.
    #[error("the identity is {code}: {message}")]
    Revoked {
        /// `revoked`, `banned` or `lineage_fork`.
        code: String,
        /// The CA's message.
        message: String,
    },
    /// Renewal has stopped for good (see the final [`crate::Event`]).
    #[error("renewal has stopped: {0}")]
    Stopped(String),
    /// There is no valid SVID to renew and no attestation to get a new one.
    #[error("{0}")]
    NoIdentity(String),
    /// The CA's answer is not what the API promises.
    #[error("the CA's answer: {0}")]
    Answer(String),
    /// A key or CSR could not be made.
    #[error("key: {0}")]
    Key(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether retrying later may help (the CA is unreachable, busy or
    /// failing, or a file could not be written), as opposed to a refusal
    /// that will not change.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Trust(
                sigil_verifier::Error::Fetch { .. }
                | sigil_verifier::Error::NoAnswer { .. }
                // A `Fetch` until it had a variant of its own: retried as
                // before, since what is in between may go away.
                | sigil_verifier::Error::UntrustedCa { .. },
            ) => true,
            // A proxy's 4xx without a Sigil error body says nothing final.
            Self::Refused { status, code, .. } => {
                *status == 429 || *status >= 500 || code == UNKNOWN_CODE
            }
            Self::Io { .. } | Self::Answer(_) | Self::Key(_) => true,
            _ => false,
        }
    }

    /// How long the CA asked to wait before the next attempt, if it did.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Refused { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the CA may have acted on the request although no usable
    /// answer came back (it was sent and the connection broke, or the answer
    /// did not parse).
    pub fn may_have_been_acted_on(&self) -> bool {
        matches!(
            self,
            Self::Trust(sigil_verifier::Error::NoAnswer { .. }) | Self::Answer(_)
        )
    }
}

/// The code given to a refusal without a Sigil error body.
pub(crate) const UNKNOWN_CODE: &str = "unknown";
