//! The CA's own namespace, `spiffe://<td>/sigil/`: its server identity and
//! the admin identities. IDs there are minted only locally from the data
//! dir; no join token or other request can obtain one.

use anyhow::Context;
use sigil_core::{SpiffeId, TrustDomain};

/// The reserved identities of one trust domain.
#[derive(Debug, Clone)]
pub struct Namespace {
    trust_domain: TrustDomain,
    reserved: SpiffeId,
    admins: SpiffeId,
    server: SpiffeId,
}

impl Namespace {
    /// The namespace of a trust domain.
    pub fn new(trust_domain: &TrustDomain) -> Self {
        let fixed = |path: &str| {
            // Invariant: these constant paths satisfy the SPIFFE ID rules.
            #[allow(clippy::expect_used)]
            trust_domain
                .spiffe_id(path)
                .expect("constant path is valid")
        };
        Self {
            trust_domain: trust_domain.clone(),
            reserved: fixed("/sigil"),
            admins: fixed("/sigil/admin"),
            server: fixed("/sigil/server"),
        }
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// True for `spiffe://<td>/sigil` and everything below it.
    pub fn is_reserved(&self, id: &SpiffeId) -> bool {
        *id == self.reserved || id.is_strictly_under(&self.reserved)
    }

    /// True for the admin identities, `spiffe://<td>/sigil/admin/<name>`.
    pub fn is_admin(&self, id: &SpiffeId) -> bool {
        id.is_strictly_under(&self.admins)
    }

    /// The CA server's own identity.
    pub fn server(&self) -> &SpiffeId {
        &self.server
    }

    /// The admin identity with this name.
    ///
    /// # Errors
    ///
    /// The name is not a valid path segment (or segments).
    pub fn admin(&self, name: &str) -> anyhow::Result<SpiffeId> {
        self.trust_domain
            .spiffe_id(&format!("/sigil/admin/{name}"))
            .with_context(|| format!("'{name}' is not a valid admin name"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_sigil_subtree_is_reserved_and_only_it() {
        let ns = Namespace::new(&"example.org".parse().unwrap());
        let id = |s: &str| s.parse::<SpiffeId>().unwrap();
        assert!(ns.is_reserved(&id("spiffe://example.org/sigil")));
        assert!(ns.is_reserved(&id("spiffe://example.org/sigil/server")));
        assert!(ns.is_reserved(&id("spiffe://example.org/sigil/admin/x")));
        assert!(!ns.is_reserved(&id("spiffe://example.org/sigilx")));
        assert!(!ns.is_reserved(&id("spiffe://example.org/agents/sigil")));
        assert!(!ns.is_reserved(&id("spiffe://other.org/sigil/x")));
    }

    #[test]
    fn admins_are_strictly_below_sigil_admin() {
        let ns = Namespace::new(&"example.org".parse().unwrap());
        assert!(ns.is_admin(&ns.admin("alice").unwrap()));
        assert!(!ns.is_admin(&"spiffe://example.org/sigil/admin".parse().unwrap()));
        assert!(!ns.is_admin(ns.server()));
        assert!(!ns.is_admin(&"spiffe://other.org/sigil/admin/alice".parse().unwrap()));
        assert!(ns.admin("a/../b").is_err());
    }
}
