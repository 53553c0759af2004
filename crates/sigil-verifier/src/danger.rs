//! Settings that weaken what a verifier promises. Each is for a narrow
//! use, named as such.

use crate::policy::Policy;

/// A policy that allows every SPIFFE ID of the trust domain the chain
/// verifies to. Every other check (chain, SVID rules, revocation) still
/// runs; only authorisation is given up. Use it for a server that
/// authorises callers itself, per request, from their [`crate::PeerIdentity`].
pub fn allow_any_spiffe_id() -> Policy {
    Policy::allow_any()
}
