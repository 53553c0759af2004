//! What happens to the agent's identity, for the host program to watch.

use std::time::{Duration, SystemTime};

use sigil_core::SpiffeId;

/// One change in the agent's identity. Each prints as one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A first SVID, from an attestation.
    Issued {
        /// The identity.
        spiffe_id: SpiffeId,
        /// The new certificate's serial.
        serial: String,
        /// When it expires.
        not_after: SystemTime,
    },
    /// A new SVID and key, from a renewal over mTLS.
    Renewed {
        /// The identity.
        spiffe_id: SpiffeId,
        /// The new certificate's serial.
        serial: String,
        /// The serial it replaces.
        previous_serial: String,
        /// When the new one expires.
        not_after: SystemTime,
    },
    /// A renewal failed for a reason that may pass (the CA is unreachable
    /// or busy); the current SVID stays in use and renewal is retried.
    RenewalFailed {
        /// Why.
        error: String,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// The CA refused renewal for good: the identity is revoked or banned
    /// (or two holders of it were seen). Renewal has stopped; the current
    /// SVID is useless or soon will be.
    Revoked {
        /// The CA's error code (`revoked`, `banned`, `lineage_fork`, …).
        code: String,
        /// The CA's message.
        message: String,
    },
    /// The CA refused renewal for a reason that will not pass by itself
    /// (such as a lifetime it no longer allows), or renewal could not be
    /// confirmed safely. Renewal has stopped.
    Refused {
        /// The CA's error code, or `unconfirmed_renewal`.
        code: String,
        /// What happened.
        message: String,
    },
    /// The SVID expired before a renewal succeeded. Renewal has stopped;
    /// the agent needs a new attestation.
    Expired {
        /// The expired certificate's serial.
        serial: String,
    },
}

impl Event {
    /// Whether renewal has stopped after this event.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Revoked { .. } | Self::Refused { .. } | Self::Expired { .. }
        )
    }
}

fn seconds_left(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs()
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Issued {
                spiffe_id,
                serial,
                not_after,
            } => write!(
                f,
                "issued {spiffe_id} serial {serial}, expires in {}s",
                seconds_left(*not_after)
            ),
            Self::Renewed {
                spiffe_id,
                serial,
                previous_serial,
                not_after,
            } => write!(
                f,
                "renewed {spiffe_id} serial {serial} (was {previous_serial}), expires in {}s",
                seconds_left(*not_after)
            ),
            Self::RenewalFailed { error, retry_in } => write!(
                f,
                "renewal failed, retrying in {:.1}s: {error}",
                retry_in.as_secs_f64()
            ),
            Self::Revoked { code, message } => {
                write!(f, "renewal refused for good ({code}): {message}")
            }
            Self::Refused { code, message } => {
                write!(f, "renewal stopped ({code}): {message}")
            }
            Self::Expired { serial } => {
                write!(f, "certificate {serial} expired before it could be renewed")
            }
        }
    }
}
