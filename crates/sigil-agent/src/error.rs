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
    /// failing), as opposed to a refusal that will not change.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Trust(sigil_verifier::Error::Fetch { .. }) => true,
            Self::Refused { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}
