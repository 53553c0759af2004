//! Which SPIFFE IDs a verifier accepts. Deny is the default: a policy
//! accepts nothing until a rule allows something, and there is no "allow
//! any" rule outside [`crate::danger`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use sigil_core::{SpiffeId, TrustDomain};

use crate::Error;

/// One rule of a [`Policy`].
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pattern {
    /// Exactly this ID: `spiffe://td/agents/support/7`.
    Exact(SpiffeId),
    /// Every ID strictly below this one, on segment boundaries:
    /// `spiffe://td/agents/support/*` matches `.../support/7` and
    /// `.../support/eu/7`, but neither `.../support` itself nor
    /// `.../support-evil`.
    Below(SpiffeId),
    /// Every workload ID of a trust domain: `spiffe://td/*`.
    TrustDomain(TrustDomain),
}

impl Pattern {
    /// Whether `id` matches.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        match self {
            Self::Exact(allowed) => id == allowed,
            Self::Below(prefix) => id.is_strictly_under(prefix),
            Self::TrustDomain(td) => id.is_strictly_under(&td.id()),
        }
    }
}

impl FromStr for Pattern {
    type Err = Error;

    /// Parses `spiffe://td/path` (exact), `spiffe://td/path/*` (below) or
    /// `spiffe://td/*` (the trust domain). A `*` anywhere else is refused,
    /// and so is a bare `spiffe://td`, which names no workload.
    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::Policy(format!("'{text}': {reason}"));
        let (id_text, wildcard) = match text.strip_suffix("/*") {
            Some(prefix) => (prefix, true),
            None => (text, false),
        };
        if id_text.contains('*') {
            return Err(invalid(
                "'*' is allowed only as the whole last segment".to_owned(),
            ));
        }
        let id: SpiffeId = id_text.parse().map_err(|e| invalid(format!("{e}")))?;
        match (wildcard, id.path().is_empty()) {
            (true, true) => Ok(Self::TrustDomain(id.trust_domain().clone())),
            (true, false) => Ok(Self::Below(id)),
            (false, false) => Ok(Self::Exact(id)),
            (false, true) => Err(invalid(
                "a trust domain alone names no workload; write spiffe://td/* for all of them"
                    .to_owned(),
            )),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(id) => write!(f, "{id}"),
            Self::Below(id) => write!(f, "{id}/*"),
            Self::TrustDomain(td) => write!(f, "{}/*", td.id()),
        }
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({self})")
    }
}

type Predicate = Arc<dyn Fn(&SpiffeId) -> bool + Send + Sync>;

/// The SPIFFE IDs a verifier accepts: the union of its rules. A new policy
/// allows nothing.
///
/// ```
/// use sigil_verifier::Policy;
///
/// let policy = Policy::deny_all()
///     .allow("spiffe://example.org/agents/support/*")?
///     .allow("spiffe://example.org/tools/crm")?;
/// assert!(policy.allows(&"spiffe://example.org/agents/support/7".parse()?));
/// assert!(!policy.allows(&"spiffe://example.org/agents/support".parse()?));
/// assert!(!policy.allows(&"spiffe://example.org/agents/support-evil/7".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct Policy {
    patterns: Vec<Pattern>,
    predicates: Vec<Predicate>,
    any: bool,
}

impl Policy {
    /// A policy that allows nothing yet.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// Adds a rule written as a pattern (see [`Pattern`]'s `FromStr`).
    ///
    /// # Errors
    ///
    /// The pattern does not parse.
    pub fn allow(self, pattern: &str) -> Result<Self, Error> {
        Ok(self.allow_pattern(pattern.parse()?))
    }

    /// Adds a parsed rule.
    pub fn allow_pattern(mut self, pattern: Pattern) -> Self {
        self.patterns.push(pattern);
        self
    }

    /// Adds a rule that allows exactly `id`.
    pub fn allow_id(self, id: SpiffeId) -> Self {
        self.allow_pattern(Pattern::Exact(id))
    }

    /// Adds a custom rule: `id` is allowed when `predicate` says so.
    pub fn allow_if(
        mut self,
        predicate: impl Fn(&SpiffeId) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.predicates.push(Arc::new(predicate));
        self
    }

    /// Builds a policy from patterns.
    ///
    /// # Errors
    ///
    /// A pattern does not parse.
    pub fn from_patterns<S: AsRef<str>>(
        patterns: impl IntoIterator<Item = S>,
    ) -> Result<Self, Error> {
        patterns
            .into_iter()
            .try_fold(Self::deny_all(), |policy, pattern| {
                policy.allow(pattern.as_ref())
            })
    }

    /// Whether `id` is allowed.
    pub fn allows(&self, id: &SpiffeId) -> bool {
        self.any
            || self.patterns.iter().any(|pattern| pattern.matches(id))
            || self.predicates.iter().any(|predicate| predicate(id))
    }

    /// A policy that allows every ID; only [`crate::danger`] hands it out.
    pub(crate) fn allow_any() -> Self {
        Self {
            any: true,
            ..Self::default()
        }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("patterns", &self.patterns)
            .field("predicates", &self.predicates.len())
            .field("allow_any", &self.any)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(text: &str) -> SpiffeId {
        text.parse().unwrap()
    }

    #[test]
    fn a_new_policy_allows_nothing() {
        assert!(!Policy::deny_all().allows(&id("spiffe://td/a")));
    }

    #[test]
    fn below_matches_on_segment_boundaries_only() {
        let policy = Policy::deny_all()
            .allow("spiffe://td/agents/support/*")
            .unwrap();
        assert!(policy.allows(&id("spiffe://td/agents/support/7")));
        assert!(policy.allows(&id("spiffe://td/agents/support/eu/7")));
        assert!(!policy.allows(&id("spiffe://td/agents/support")));
        assert!(!policy.allows(&id("spiffe://td/agents/support-evil")));
        assert!(!policy.allows(&id("spiffe://td/agents/support-evil/7")));
        assert!(!policy.allows(&id("spiffe://other/agents/support/7")));
    }

    #[test]
    fn exact_matches_only_itself() {
        let policy = Policy::deny_all().allow("spiffe://td/tools/crm").unwrap();
        assert!(policy.allows(&id("spiffe://td/tools/crm")));
        assert!(!policy.allows(&id("spiffe://td/tools/crm/x")));
        assert!(!policy.allows(&id("spiffe://td/tools/crmx")));
    }

    #[test]
    fn trust_domain_pattern_matches_its_workloads_only() {
        let policy = Policy::deny_all().allow("spiffe://td/*").unwrap();
        assert!(policy.allows(&id("spiffe://td/a")));
        assert!(policy.allows(&id("spiffe://td/a/b")));
        assert!(!policy.allows(&id("spiffe://td")));
        assert!(!policy.allows(&id("spiffe://td.evil/a")));
    }

    #[test]
    fn custom_predicates_allow_what_they_say() {
        let policy = Policy::deny_all().allow_if(|id| id.path().ends_with("/ops"));
        assert!(policy.allows(&id("spiffe://td/x/ops")));
        assert!(!policy.allows(&id("spiffe://td/x/dev")));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        for bad in [
            "spiffe://td",
            "spiffe://td/a*",
            "spiffe://td/*/b",
            "spiffe://td/a/**",
            "https://td/a",
            "spiffe://td/a/",
            "*",
            "",
        ] {
            let error = bad.parse::<Pattern>().unwrap_err();
            assert!(matches!(error, Error::Policy(_)), "{bad}: {error}");
        }
    }

    #[test]
    fn patterns_print_as_they_parse() {
        for text in ["spiffe://td/a", "spiffe://td/a/b/*", "spiffe://td/*"] {
            assert_eq!(text.parse::<Pattern>().unwrap().to_string(), text);
        }
    }
}
