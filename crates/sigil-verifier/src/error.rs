//! The one error type of this crate.

/// Why trust material, a policy or a connection to the CA could not be set
/// up. Handshake refusals are `rustls::Error`s instead (see
/// [`crate::SpiffeClientVerifier`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PEM text did not parse, or held nothing of the expected kind.
    #[error("PEM: {0}")]
    Pem(String),
    /// A certificate in the trust material is unusable.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A CRL is malformed, unsigned by a known issuer, or older than the
    /// one held.
    #[error("CRL: {0}")]
    Crl(String),
    /// A policy pattern is not a SPIFFE ID or pattern.
    #[error("policy: {0}")]
    Policy(String),
    /// The root fingerprint is not `sha256:` and 64 hex digits, or no root
    /// the CA served matches it.
    #[error("fingerprint: {0}")]
    Fingerprint(String),
    /// The CA could not be reached: nothing was sent.
    #[error("CA at {url}: {message}")]
    Fetch {
        /// The CA's URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The CA's TLS certificate does not chain to a root this side trusts:
    /// nothing was sent. Either the CA has activated a root this side never
    /// fetched (it was away for the whole of the rotation's first step, or
    /// it pinned the old root's fingerprint afterwards), or something
    /// between this side and the CA presents a certificate of its own.
    #[error("CA at {url}: its TLS certificate does not chain to a trusted root: {message}")]
    UntrustedCa {
        /// The CA's URL.
        url: String,
        /// What the TLS handshake said.
        message: String,
    },
    /// A request was sent (or may have been), but no answer came back: the
    /// CA may have acted on it. Retrying a request that is not idempotent
    /// (a renewal) needs care.
    #[error("CA at {url}: no answer: {message}")]
    NoAnswer {
        /// The CA's URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The CA answered, but not with what was asked for.
    #[error("the CA answered {status}: {message}")]
    Answer {
        /// The HTTP status.
        status: u16,
        /// The CA's error code and message, or what was wrong with the
        /// answer.
        message: String,
    },
    /// A TLS configuration could not be built.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
