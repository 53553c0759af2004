//! The CA's own namespace, `spiffe://<td>/sigil/`: its server identity and
//! the admin identities. IDs there are minted only locally from the data
//! dir; no join token or other request can obtain one.
//!
//! Who counts as an admin is everything under `spiffe://<td>/sigil/admin/`
//! unless `sigil serve` was configured with other [`AdminIds`].

use anyhow::{Context, bail};
use sigil_core::{SpiffeId, TrustDomain};

/// The reserved identities of one trust domain.
#[derive(Debug, Clone)]
pub struct Namespace {
    trust_domain: TrustDomain,
    reserved: SpiffeId,
    admins: AdminIds,
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
        let admins = AdminIds {
            trust_domain: trust_domain.clone(),
            patterns: vec![AdminPattern::Under(fixed("/sigil/admin"))],
        };
        Self {
            trust_domain: trust_domain.clone(),
            reserved: fixed("/sigil"),
            admins,
            server: fixed("/sigil/server"),
        }
    }

    /// This namespace with other admin identities.
    ///
    /// # Errors
    ///
    /// The admin IDs belong to another trust domain.
    pub fn with_admins(mut self, admins: AdminIds) -> anyhow::Result<Self> {
        if admins.trust_domain != self.trust_domain {
            bail!(
                "admin IDs of {} for a CA of {}",
                admins.trust_domain,
                self.trust_domain
            );
        }
        self.admins = admins;
        Ok(self)
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// True for `spiffe://<td>/sigil` and everything below it.
    pub fn is_reserved(&self, id: &SpiffeId) -> bool {
        *id == self.reserved || id.is_strictly_under(&self.reserved)
    }

    /// True for the admin identities: `spiffe://<td>/sigil/admin/<name>`,
    /// or what `admin_ids` in the server's configuration admits.
    pub fn is_admin(&self, id: &SpiffeId) -> bool {
        self.admins.admits(id)
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

/// The identities allowed to use the admin API: exact IDs, and
/// `<prefix>/*` patterns admitting every ID strictly below a prefix, all
/// under `spiffe://<td>/sigil/` and none of them the CA's own identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminIds {
    trust_domain: TrustDomain,
    patterns: Vec<AdminPattern>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AdminPattern {
    Exact(SpiffeId),
    Under(SpiffeId),
}

impl AdminIds {
    /// Parses `spiffe://<td>/sigil/…` IDs and `spiffe://<td>/sigil/…/*`
    /// patterns for a CA of `trust_domain`.
    ///
    /// # Errors
    ///
    /// The list is empty, or an entry is not a SPIFFE ID (with an optional
    /// trailing `/*`), belongs to another trust domain, lies outside
    /// `/sigil/`, or is or covers the CA's own `/sigil/server`.
    pub fn parse(trust_domain: &TrustDomain, entries: &[String]) -> anyhow::Result<Self> {
        if entries.is_empty() {
            bail!(
                "the list is empty, so no one could use the admin API; leave it out for the default"
            );
        }
        let namespace = Namespace::new(trust_domain);
        let patterns = entries
            .iter()
            .map(|entry| {
                AdminPattern::parse(&namespace, entry).with_context(|| format!("'{entry}'"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            trust_domain: trust_domain.clone(),
            patterns,
        })
    }

    fn admits(&self, id: &SpiffeId) -> bool {
        self.patterns.iter().any(|pattern| match pattern {
            AdminPattern::Exact(exact) => id == exact,
            AdminPattern::Under(prefix) => id.is_strictly_under(prefix),
        })
    }
}

impl AdminPattern {
    fn parse(namespace: &Namespace, entry: &str) -> anyhow::Result<Self> {
        let (text, wildcard) = match entry.strip_suffix("/*") {
            Some(prefix) => (prefix, true),
            None => (entry, false),
        };
        if text.contains('*') {
            bail!("only a trailing /* may stand for the IDs below a prefix");
        }
        let id: SpiffeId = text.parse().context("not a SPIFFE ID")?;
        if !id.is_member_of(&namespace.trust_domain) {
            bail!("not in this CA's trust domain, {}", namespace.trust_domain);
        }
        if !id.is_strictly_under(&namespace.reserved) {
            bail!(
                "admin IDs must lie under {}/, the CA's own namespace, which only \
                 `sigil admin credential` mints into",
                namespace.reserved
            );
        }
        let server = &namespace.server;
        if id == *server || id.is_strictly_under(server) {
            bail!("{server} is the CA server's own identity");
        }
        Ok(if wildcard {
            Self::Under(id)
        } else {
            Self::Exact(id)
        })
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

    #[test]
    fn configured_admin_ids_replace_the_default() {
        let td: TrustDomain = "example.org".parse().unwrap();
        let id = |s: &str| s.parse::<SpiffeId>().unwrap();
        let admins = AdminIds::parse(
            &td,
            &[
                "spiffe://example.org/sigil/admin/ops/*".to_owned(),
                "spiffe://example.org/sigil/admin/alice".to_owned(),
            ],
        )
        .unwrap();
        let ns = Namespace::new(&td).with_admins(admins).unwrap();
        assert!(ns.is_admin(&id("spiffe://example.org/sigil/admin/ops/bob")));
        assert!(ns.is_admin(&id("spiffe://example.org/sigil/admin/ops/a/b")));
        assert!(ns.is_admin(&id("spiffe://example.org/sigil/admin/alice")));
        assert!(!ns.is_admin(&id("spiffe://example.org/sigil/admin/ops")));
        assert!(!ns.is_admin(&id("spiffe://example.org/sigil/admin/alice/x")));
        assert!(!ns.is_admin(&id("spiffe://example.org/sigil/admin/admin")));
        assert!(!ns.is_admin(ns.server()));
    }

    #[test]
    fn admin_ids_outside_sigil_or_covering_the_server_are_refused() {
        let td: TrustDomain = "example.org".parse().unwrap();
        for bad in [
            "spiffe://example.org/agents/admin",
            "spiffe://example.org/agents/*",
            "spiffe://example.org/sigil",
            "spiffe://example.org/sigil/*",
            "spiffe://example.org/sigil/server",
            "spiffe://example.org/sigil/server/*",
            "spiffe://other.org/sigil/admin/*",
            "spiffe://example.org/sigil/admin/*/x",
            "spiffe://example.org/sigil/admin*",
            "sigil/admin/alice",
        ] {
            assert!(
                AdminIds::parse(&td, &[bad.to_owned()]).is_err(),
                "{bad} was accepted"
            );
        }
        assert!(AdminIds::parse(&td, &[]).is_err());
        let other = AdminIds::parse(
            &"other.org".parse().unwrap(),
            &["spiffe://other.org/sigil/admin/x".to_owned()],
        )
        .unwrap();
        assert!(Namespace::new(&td).with_admins(other).is_err());
    }
}
