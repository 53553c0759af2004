//! Parsed SPIFFE IDs and trust domain names.
//!
//! [`SpiffeId`] and [`TrustDomain`] can only be built from input that follows
//! the [SPIFFE ID standard] exactly, so code that holds one never has to
//! validate it again:
//!
//! - the scheme is exactly `spiffe://` (lowercase);
//! - the trust domain is 1 to 255 bytes of `[a-z0-9.-_]` (no uppercase, no
//!   port, no userinfo);
//! - the path is empty or a sequence of `/segment`, where each segment is
//!   non-empty, made of `[a-zA-Z0-9.-_]`, and not `.` or `..`; there is no
//!   trailing `/`;
//! - there is no percent-encoding, query or fragment;
//! - the whole ID is at most 2048 bytes.
//!
//! Both types serialize (with serde) as their string form and are parsed,
//! with the same rules, when deserialized.
//!
//! ```
//! use sigil_core::SpiffeId;
//!
//! let id: SpiffeId = "spiffe://example.org/agent/build-7".parse()?;
//! assert_eq!(id.trust_domain().as_str(), "example.org");
//! assert_eq!(id.path(), "/agent/build-7");
//! assert_eq!(id.segments().collect::<Vec<_>>(), ["agent", "build-7"]);
//!
//! let agents: SpiffeId = "spiffe://example.org/agent".parse()?;
//! assert!(id.is_strictly_under(&agents));
//!
//! let err = "spiffe://example.org/agent/../admin".parse::<SpiffeId>().unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "invalid SPIFFE ID: path segment '.' or '..' is not allowed",
//! );
//! # Ok::<(), sigil_core::Error>(())
//! ```
//!
//! [SPIFFE ID standard]: https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde::ser::{Serialize, Serializer};

use crate::Error;

/// The only scheme a SPIFFE ID may have.
const SCHEME: &str = "spiffe://";
/// The longest trust domain name allowed, in bytes.
const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// The longest SPIFFE ID allowed, in bytes (scheme, trust domain and path).
const MAX_SPIFFE_ID_LEN: usize = 2048;

/// A SPIFFE trust domain name, such as `example.org`.
///
/// Guaranteed to be 1 to 255 bytes of `[a-z0-9.-_]`. Parse one with
/// [`str::parse`] from the bare name (not from `spiffe://example.org`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// The trust domain name, such as `example.org`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The SPIFFE ID of the trust domain itself: `spiffe://<name>`, with an
    /// empty path.
    pub fn id(&self) -> SpiffeId {
        let full = format!("{SCHEME}{}", self.0);
        SpiffeId {
            path_start: full.len(),
            full,
            trust_domain: self.clone(),
        }
    }

    /// The SPIFFE ID `spiffe://<name><path>` in this trust domain.
    ///
    /// `path` must be empty or start with `/`, and follow the same rules as
    /// the path of a parsed [`SpiffeId`] (for example `/agent/build-7`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSpiffeId`] if the path breaks a rule or the resulting
    /// ID would be longer than 2048 bytes.
    pub fn spiffe_id(&self, path: &str) -> Result<SpiffeId, Error> {
        check_path(path).map_err(|reason| Error::InvalidSpiffeId { reason })?;
        if SCHEME.len() + self.0.len() + path.len() > MAX_SPIFFE_ID_LEN {
            return Err(Error::InvalidSpiffeId {
                reason: "longer than 2048 bytes",
            });
        }
        let full = format!("{SCHEME}{}{path}", self.0);
        Ok(SpiffeId {
            path_start: full.len() - path.len(),
            full,
            trust_domain: self.clone(),
        })
    }
}

impl FromStr for TrustDomain {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        check_bare_trust_domain(s)?;
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<&str> for TrustDomain {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self, Error> {
        s.parse()
    }
}

impl TryFrom<String> for TrustDomain {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        check_bare_trust_domain(&s)?;
        Ok(Self(s))
    }
}

impl AsRef<str> for TrustDomain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TrustDomain").field(&self.0).finish()
    }
}

impl Serialize for TrustDomain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TrustDomain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseVisitor::<Self>::new(
            "a trust domain name such as 'example.org'",
        ))
    }
}

/// A SPIFFE ID, such as `spiffe://example.org/agent/build-7`.
///
/// Guaranteed to follow the SPIFFE ID standard (see the [module
/// documentation](self) for the rules). Parse one with [`str::parse`] or
/// [`TryFrom`], or build one with [`TrustDomain::spiffe_id`].
///
/// Equality, hashing and ordering are those of the full string.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    // `full` comes first so the derived ordering is the string's ordering;
    // the other fields are derived from it.
    /// The whole ID, `spiffe://<trust domain><path>`.
    full: String,
    /// Byte index in `full` where the path starts (`full.len()` if empty).
    path_start: usize,
    /// The trust domain, kept separately so it can be lent out.
    trust_domain: TrustDomain,
}

impl SpiffeId {
    /// The whole ID, such as `spiffe://example.org/agent/build-7`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The trust domain the ID belongs to, such as `example.org`.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path: empty for a trust domain's own ID, otherwise `/` followed by
    /// segments separated by `/`, such as `/agent/build-7`.
    pub fn path(&self) -> &str {
        &self.full[self.path_start..]
    }

    /// The path segments, in order: `agent` then `build-7` for
    /// `spiffe://example.org/agent/build-7`, nothing for an empty path.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        // "" splits into [""] and "/a/b" into ["", "a", "b"]: the first item
        // is never a segment.
        self.path().split('/').skip(1)
    }

    /// Whether the ID belongs to trust domain `td`.
    pub fn is_member_of(&self, td: &TrustDomain) -> bool {
        self.trust_domain == *td
    }

    /// Whether the ID is strictly below `prefix`: same trust domain, and the
    /// path continues `prefix`'s path with at least one more segment.
    ///
    /// `spiffe://td/a/b` is under `spiffe://td/a`, but `spiffe://td/ab` is
    /// not, and no ID is under itself. Every ID with a non-empty path is under
    /// its trust domain's own ID, `spiffe://td`.
    pub fn is_strictly_under(&self, prefix: &SpiffeId) -> bool {
        self.trust_domain == prefix.trust_domain
            && self
                .path()
                .strip_prefix(prefix.path())
                // Paths never end in '/', so a rest starting with '/' holds a
                // whole, non-empty segment.
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// Checks `s` and returns where its path starts.
    fn check(s: &str) -> Result<(TrustDomain, usize), Error> {
        let invalid = |reason| Error::InvalidSpiffeId { reason };
        if s.is_empty() {
            return Err(invalid("input is empty"));
        }
        if s.len() > MAX_SPIFFE_ID_LEN {
            return Err(invalid("longer than 2048 bytes"));
        }
        let Some(rest) = s.strip_prefix(SCHEME) else {
            return Err(invalid("scheme must be 'spiffe://'"));
        };
        // In a URI, '?' and '#' end the authority and the path, so whatever
        // follows is a query or a fragment, wherever it appears.
        if let Some(i) = rest.find(['?', '#']) {
            return Err(invalid(if rest.as_bytes()[i] == b'?' {
                "query is not allowed"
            } else {
                "fragment is not allowed"
            }));
        }
        let (td, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if td.is_empty() {
            return Err(invalid("trust domain is missing"));
        }
        check_trust_domain(td).map_err(invalid)?;
        check_path(path).map_err(invalid)?;
        Ok((TrustDomain(td.to_owned()), s.len() - path.len()))
    }
}

impl FromStr for SpiffeId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let (trust_domain, path_start) = Self::check(s)?;
        Ok(Self {
            full: s.to_owned(),
            path_start,
            trust_domain,
        })
    }
}

impl TryFrom<&str> for SpiffeId {
    type Error = Error;

    fn try_from(s: &str) -> Result<Self, Error> {
        s.parse()
    }
}

impl TryFrom<String> for SpiffeId {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        let (trust_domain, path_start) = Self::check(&s)?;
        Ok(Self {
            full: s,
            path_start,
            trust_domain,
        })
    }
}

impl AsRef<str> for SpiffeId {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SpiffeId").field(&self.full).finish()
    }
}

impl Serialize for SpiffeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.full)
    }
}

impl<'de> Deserialize<'de> for SpiffeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseVisitor::<Self>::new(
            "a SPIFFE ID such as 'spiffe://example.org/service'",
        ))
    }
}

/// Deserializes a string by parsing it as `T`; a parse failure becomes a
/// serde error carrying the reason.
struct ParseVisitor<T> {
    expecting: &'static str,
    target: std::marker::PhantomData<T>,
}

impl<T> ParseVisitor<T> {
    fn new(expecting: &'static str) -> Self {
        Self {
            expecting,
            target: std::marker::PhantomData,
        }
    }
}

impl<T> Visitor<'_> for ParseVisitor<T>
where
    T: for<'a> TryFrom<&'a str, Error = Error> + TryFrom<String, Error = Error>,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        T::try_from(s).map_err(E::custom)
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<T, E> {
        T::try_from(s).map_err(E::custom)
    }
}

/// Checks a bare trust domain name, as given to [`TrustDomain::from_str`].
fn check_bare_trust_domain(s: &str) -> Result<(), Error> {
    let invalid = |reason| Error::InvalidTrustDomain { reason };
    if s.is_empty() {
        return Err(invalid("trust domain is empty"));
    }
    if s.get(..SCHEME.len())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(SCHEME))
    {
        return Err(invalid(
            "expected a bare trust domain name such as 'example.org', not a SPIFFE ID",
        ));
    }
    if s.contains("://") {
        return Err(invalid(
            "expected a bare trust domain name such as 'example.org', not a URI",
        ));
    }
    check_trust_domain(s).map_err(invalid)
}

/// Checks a non-empty trust domain name against the standard's rules.
fn check_trust_domain(td: &str) -> Result<(), &'static str> {
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err("trust domain is longer than 255 bytes");
    }
    // Checked up front so "user:password@host" reports userinfo, not a port.
    if td.contains('@') {
        return Err("userinfo is not allowed");
    }
    if td.contains(':') {
        return Err("port is not allowed");
    }
    for b in td.bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {}
            b'A'..=b'Z' => return Err("trust domain must be lowercase"),
            b'/' => return Err("trust domain must not contain '/'"),
            _ => {
                return Err(special_reason(b)
                    .unwrap_or("trust domain contains a character outside [a-z0-9.-_]"));
            }
        }
    }
    Ok(())
}

/// Checks a path: empty, or `/segment` repeated.
fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Ok(());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err("path must be empty or start with '/'");
    };
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        if segment.is_empty() {
            return Err(if segments.peek().is_none() {
                "trailing '/' is not allowed"
            } else {
                "empty path segment"
            });
        }
        if segment == "." || segment == ".." {
            return Err("path segment '.' or '..' is not allowed");
        }
        for b in segment.bytes() {
            if !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')) {
                return Err(special_reason(b)
                    .unwrap_or("path segment contains a character outside [a-zA-Z0-9.-_]"));
            }
        }
    }
    Ok(())
}

/// A more specific reason than "character outside ..." for characters that
/// mean something in a URI.
fn special_reason(b: u8) -> Option<&'static str> {
    match b {
        b'%' => Some("percent-encoding is not allowed"),
        b'?' => Some("query is not allowed"),
        b'#' => Some("fragment is not allowed"),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The reason `s` is not a valid SPIFFE ID; panics if it is one.
    fn id_reason(s: &str) -> &'static str {
        match s.parse::<SpiffeId>() {
            Err(Error::InvalidSpiffeId { reason }) => reason,
            other => panic!("expected InvalidSpiffeId for {s:?}, got {other:?}"),
        }
    }

    /// The reason `s` is not a valid trust domain; panics if it is one.
    fn td_reason(s: &str) -> &'static str {
        match s.parse::<TrustDomain>() {
            Err(Error::InvalidTrustDomain { reason }) => reason,
            other => panic!("expected InvalidTrustDomain for {s:?}, got {other:?}"),
        }
    }

    fn id(s: &str) -> SpiffeId {
        s.parse()
            .unwrap_or_else(|e| panic!("{s:?} should be valid: {e}"))
    }

    fn td(s: &str) -> TrustDomain {
        s.parse()
            .unwrap_or_else(|e| panic!("{s:?} should be valid: {e}"))
    }

    const OUTSIDE_CHARSET: &str = "path segment contains a character outside [a-zA-Z0-9.-_]";
    const TD_OUTSIDE_CHARSET: &str = "trust domain contains a character outside [a-z0-9.-_]";

    // ---- TrustDomain: character set and case ----

    #[test]
    fn trust_domain_accepts_a_plain_dns_name() {
        assert_eq!(td("example.org").as_str(), "example.org");
    }

    #[test]
    fn trust_domain_accepts_every_allowed_character() {
        let all = "abcdefghijklmnopqrstuvwxyz0123456789.-_";
        assert_eq!(td(all).as_str(), all);
        for name in [
            "a.b",
            "a-b",
            "a_b",
            ".",
            "-",
            "_",
            "0",
            "example_org-1.test",
        ] {
            assert_eq!(td(name).as_str(), name);
        }
    }

    #[test]
    fn trust_domain_rejects_uppercase() {
        assert_eq!(td_reason("Example.org"), "trust domain must be lowercase");
        assert_eq!(td_reason("EXAMPLE.ORG"), "trust domain must be lowercase");
        assert_eq!(td_reason("example.orG"), "trust domain must be lowercase");
    }

    #[test]
    fn trust_domain_rejects_characters_outside_the_allowed_set() {
        for name in [
            "a+b",
            "a~b",
            "a b",
            "exämple.org",
            "ü",
            "a!b",
            "a*b",
            "a$b",
            "a&b",
            "a'b",
            "a(b",
            "a=b",
            "a;b",
            "a,b",
            "a\\b",
            "a\tb",
            "a\0b",
        ] {
            assert_eq!(td_reason(name), TD_OUTSIDE_CHARSET, "{name:?}");
        }
    }

    #[test]
    fn trust_domain_rejects_percent_encoding() {
        assert_eq!(
            td_reason("ex%41mple.org"),
            "percent-encoding is not allowed"
        );
    }

    #[test]
    fn trust_domain_rejects_query_and_fragment_characters() {
        assert_eq!(td_reason("example.org?x"), "query is not allowed");
        assert_eq!(td_reason("example.org#x"), "fragment is not allowed");
    }

    #[test]
    fn trust_domain_rejects_a_path() {
        assert_eq!(
            td_reason("example.org/a"),
            "trust domain must not contain '/'"
        );
    }

    #[test]
    fn trust_domain_rejects_empty_input() {
        assert_eq!(td_reason(""), "trust domain is empty");
    }

    // ---- TrustDomain: length ----

    #[test]
    fn trust_domain_of_255_bytes_is_accepted() {
        let name = "a".repeat(255);
        assert_eq!(td(&name).as_str(), name);
    }

    #[test]
    fn trust_domain_of_256_bytes_is_rejected() {
        assert_eq!(
            td_reason(&"a".repeat(256)),
            "trust domain is longer than 255 bytes"
        );
    }

    // ---- TrustDomain: port, userinfo, scheme ----

    #[test]
    fn trust_domain_rejects_a_port() {
        assert_eq!(td_reason("example.org:8443"), "port is not allowed");
        assert_eq!(td_reason("example.org:"), "port is not allowed");
    }

    #[test]
    fn trust_domain_rejects_userinfo() {
        assert_eq!(td_reason("user@example.org"), "userinfo is not allowed");
        assert_eq!(
            td_reason("user:password@example.org"),
            "userinfo is not allowed"
        );
    }

    #[test]
    fn trust_domain_rejects_a_spiffe_id_with_a_helpful_reason() {
        for input in [
            "spiffe://example.org",
            "spiffe://example.org/a",
            "SPIFFE://example.org",
        ] {
            assert_eq!(
                td_reason(input),
                "expected a bare trust domain name such as 'example.org', not a SPIFFE ID",
                "{input:?}"
            );
        }
    }

    #[test]
    fn trust_domain_rejects_another_uri() {
        assert_eq!(
            td_reason("https://example.org"),
            "expected a bare trust domain name such as 'example.org', not a URI"
        );
    }

    // ---- TrustDomain: conversions and formatting ----

    #[test]
    fn trust_domain_try_from_str_and_string_agree_with_parse() {
        assert_eq!(
            TrustDomain::try_from("example.org").unwrap(),
            td("example.org")
        );
        assert_eq!(
            TrustDomain::try_from(String::from("example.org")).unwrap(),
            td("example.org")
        );
        assert!(TrustDomain::try_from("Example.org").is_err());
        assert!(TrustDomain::try_from(String::from("Example.org")).is_err());
    }

    #[test]
    fn trust_domain_display_round_trips() {
        let original = td("prod.example-1_org");
        let shown = original.to_string();
        assert_eq!(shown, "prod.example-1_org");
        assert_eq!(td(&shown), original);
        assert_eq!(original.as_ref(), "prod.example-1_org");
    }

    #[test]
    fn trust_domain_debug_shows_the_name() {
        assert_eq!(
            format!("{:?}", td("example.org")),
            r#"TrustDomain("example.org")"#
        );
    }

    #[test]
    fn trust_domain_error_displays_with_its_reason() {
        assert_eq!(
            "Example.org"
                .parse::<TrustDomain>()
                .unwrap_err()
                .to_string(),
            "invalid trust domain: trust domain must be lowercase"
        );
    }

    // ---- TrustDomain: building IDs ----

    #[test]
    fn trust_domain_id_is_the_trust_domain_with_an_empty_path() {
        let own = td("example.org").id();
        assert_eq!(own.as_str(), "spiffe://example.org");
        assert_eq!(own.path(), "");
        assert_eq!(own.trust_domain(), &td("example.org"));
        assert_eq!(own, id("spiffe://example.org"));
    }

    #[test]
    fn trust_domain_spiffe_id_appends_the_path() {
        let built = td("example.org").spiffe_id("/agent/build-7").unwrap();
        assert_eq!(built.as_str(), "spiffe://example.org/agent/build-7");
        assert_eq!(built.path(), "/agent/build-7");
        assert_eq!(built, id("spiffe://example.org/agent/build-7"));
    }

    #[test]
    fn trust_domain_spiffe_id_accepts_an_empty_path() {
        assert_eq!(
            td("example.org").spiffe_id("").unwrap(),
            td("example.org").id()
        );
    }

    #[test]
    fn trust_domain_spiffe_id_rejects_invalid_paths() {
        let domain = td("example.org");
        let reason = |path: &str| match domain.spiffe_id(path) {
            Err(Error::InvalidSpiffeId { reason }) => reason,
            other => panic!("expected InvalidSpiffeId for {path:?}, got {other:?}"),
        };
        assert_eq!(reason("agent"), "path must be empty or start with '/'");
        assert_eq!(reason("/"), "trailing '/' is not allowed");
        assert_eq!(reason("/a/"), "trailing '/' is not allowed");
        assert_eq!(reason("//a"), "empty path segment");
        assert_eq!(reason("/a/../b"), "path segment '.' or '..' is not allowed");
        assert_eq!(reason("/a/./b"), "path segment '.' or '..' is not allowed");
        assert_eq!(reason("/a%20b"), "percent-encoding is not allowed");
        assert_eq!(reason("/a?b"), "query is not allowed");
        assert_eq!(reason("/a#b"), "fragment is not allowed");
        assert_eq!(reason("/a+b"), OUTSIDE_CHARSET);
    }

    #[test]
    fn trust_domain_spiffe_id_enforces_the_2048_byte_limit() {
        let domain = td("example.org");
        // "spiffe://example.org" is 20 bytes; the path brings it to 2048.
        let path = format!("/{}", "a".repeat(2048 - 20 - 1));
        assert_eq!(domain.spiffe_id(&path).unwrap().as_str().len(), 2048);
        let path = format!("/{}", "a".repeat(2048 - 20));
        assert_eq!(
            domain.spiffe_id(&path),
            Err(Error::InvalidSpiffeId {
                reason: "longer than 2048 bytes"
            })
        );
    }

    // ---- TrustDomain: serde ----

    #[test]
    fn trust_domain_serde_round_trips_as_a_string() {
        let original = td("example.org");
        let json = serde_json::to_string(&original).unwrap();
        assert_eq!(json, r#""example.org""#);
        assert_eq!(
            serde_json::from_str::<TrustDomain>(&json).unwrap(),
            original
        );
    }

    #[test]
    fn trust_domain_serde_rejects_an_invalid_name_with_the_reason() {
        let err = serde_json::from_str::<TrustDomain>(r#""Example.org""#).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid trust domain: trust domain must be lowercase"),
            "{err}"
        );
        assert!(serde_json::from_str::<TrustDomain>("42").is_err());
    }

    // ---- SpiffeId: structure ----

    #[test]
    fn spiffe_id_parses_into_trust_domain_and_path() {
        let parsed = id("spiffe://example.org/agent/build-7");
        assert_eq!(parsed.as_str(), "spiffe://example.org/agent/build-7");
        assert_eq!(parsed.trust_domain(), &td("example.org"));
        assert_eq!(parsed.path(), "/agent/build-7");
        assert_eq!(parsed.segments().collect::<Vec<_>>(), ["agent", "build-7"]);
    }

    #[test]
    fn spiffe_id_with_an_empty_path_is_accepted() {
        let parsed = id("spiffe://example.org");
        assert_eq!(parsed.trust_domain().as_str(), "example.org");
        assert_eq!(parsed.path(), "");
        assert_eq!(parsed.segments().count(), 0);
    }

    #[test]
    fn spiffe_id_with_a_single_segment_is_accepted() {
        let parsed = id("spiffe://example.org/a");
        assert_eq!(parsed.path(), "/a");
        assert_eq!(parsed.segments().collect::<Vec<_>>(), ["a"]);
    }

    // ---- SpiffeId: path character set ----

    #[test]
    fn spiffe_id_accepts_every_allowed_path_character() {
        let all = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_";
        let parsed = id(&format!("spiffe://example.org/{all}"));
        assert_eq!(parsed.segments().collect::<Vec<_>>(), [all]);
        for segment in [
            "a.b", "a-b", "a_b", "-", "_", "a.", ".a", "..a", "a..", "...", "Agent",
        ] {
            let parsed = id(&format!("spiffe://example.org/x/{segment}"));
            assert_eq!(parsed.segments().last(), Some(segment));
        }
    }

    #[test]
    fn spiffe_id_path_may_contain_uppercase() {
        assert_eq!(
            id("spiffe://example.org/Agent/BUILD").path(),
            "/Agent/BUILD"
        );
    }

    #[test]
    fn spiffe_id_rejects_path_characters_outside_the_allowed_set() {
        for segment in [
            "a+b", "a~b", "a b", "ü", "exämple", "a!b", "a*b", "a$b", "a&b", "a'b", "a(b", "a)b",
            "a=b", "a;b", "a,b", "a:b", "a@b", "a\\b", "a\tb", "a\0b", "a[b", "a\"b",
        ] {
            assert_eq!(
                id_reason(&format!("spiffe://example.org/x/{segment}")),
                OUTSIDE_CHARSET,
                "{segment:?}"
            );
        }
    }

    // ---- SpiffeId: path segments ----

    #[test]
    fn spiffe_id_rejects_empty_path_segments() {
        for input in [
            "spiffe://example.org//a",
            "spiffe://example.org/a//b",
            "spiffe://example.org//",
        ] {
            assert_eq!(id_reason(input), "empty path segment", "{input:?}");
        }
    }

    #[test]
    fn spiffe_id_rejects_dot_and_dot_dot_segments() {
        for input in [
            "spiffe://example.org/.",
            "spiffe://example.org/..",
            "spiffe://example.org/a/./b",
            "spiffe://example.org/a/../b",
            "spiffe://example.org/a/.",
            "spiffe://example.org/a/..",
        ] {
            assert_eq!(
                id_reason(input),
                "path segment '.' or '..' is not allowed",
                "{input:?}"
            );
        }
    }

    #[test]
    fn spiffe_id_accepts_segments_that_only_look_like_dot_segments() {
        for input in [
            "spiffe://example.org/...",
            "spiffe://example.org/.a",
            "spiffe://example.org/a.",
            "spiffe://example.org/..a",
            "spiffe://example.org/.../b",
        ] {
            assert_eq!(id(input).as_str(), input);
        }
    }

    #[test]
    fn spiffe_id_rejects_a_trailing_slash() {
        for input in [
            "spiffe://example.org/",
            "spiffe://example.org/a/",
            "spiffe://example.org/a/b/",
        ] {
            assert_eq!(id_reason(input), "trailing '/' is not allowed", "{input:?}");
        }
    }

    // ---- SpiffeId: URI features that are not allowed ----

    #[test]
    fn spiffe_id_rejects_percent_encoding() {
        assert_eq!(
            id_reason("spiffe://example.org/a%20b"),
            "percent-encoding is not allowed"
        );
        assert_eq!(
            id_reason("spiffe://example.org/%41"),
            "percent-encoding is not allowed"
        );
        assert_eq!(
            id_reason("spiffe://ex%41mple.org/a"),
            "percent-encoding is not allowed"
        );
    }

    #[test]
    fn spiffe_id_rejects_a_query() {
        for input in [
            "spiffe://example.org/a?x=1",
            "spiffe://example.org?x=1",
            "spiffe://example.org/?x=1",
            "spiffe://example.org/a?",
            "spiffe://example.org/a?x=/b/",
            "spiffe://example.org?x=a@b:1",
        ] {
            assert_eq!(id_reason(input), "query is not allowed", "{input:?}");
        }
    }

    #[test]
    fn spiffe_id_rejects_a_fragment() {
        for input in [
            "spiffe://example.org/a#frag",
            "spiffe://example.org#frag",
            "spiffe://example.org/a#",
        ] {
            assert_eq!(id_reason(input), "fragment is not allowed", "{input:?}");
        }
    }

    #[test]
    fn spiffe_id_rejects_a_port() {
        for input in [
            "spiffe://example.org:8443/a",
            "spiffe://example.org:8443",
            "spiffe://example.org:/a",
        ] {
            assert_eq!(id_reason(input), "port is not allowed", "{input:?}");
        }
    }

    #[test]
    fn spiffe_id_rejects_userinfo() {
        for input in [
            "spiffe://user@example.org/a",
            "spiffe://user:password@example.org/a",
            "spiffe://@example.org",
        ] {
            assert_eq!(id_reason(input), "userinfo is not allowed", "{input:?}");
        }
    }

    // ---- SpiffeId: scheme ----

    #[test]
    fn spiffe_id_rejects_a_wrong_scheme() {
        for input in [
            "https://example.org/a",
            "spiffe:/example.org/a",
            "spiffe:example.org/a",
            "spiffe//example.org/a",
            "//example.org/a",
            "example.org/a",
            "spiffe",
            " spiffe://example.org/a",
        ] {
            assert_eq!(id_reason(input), "scheme must be 'spiffe://'", "{input:?}");
        }
    }

    #[test]
    fn spiffe_id_rejects_an_uppercase_scheme() {
        for input in [
            "SPIFFE://example.org/a",
            "Spiffe://example.org/a",
            "spiffE://example.org",
        ] {
            assert_eq!(id_reason(input), "scheme must be 'spiffe://'", "{input:?}");
        }
    }

    // ---- SpiffeId: trust domain ----

    #[test]
    fn spiffe_id_rejects_a_missing_trust_domain() {
        assert_eq!(id_reason("spiffe://"), "trust domain is missing");
        assert_eq!(id_reason("spiffe:///a"), "trust domain is missing");
    }

    #[test]
    fn spiffe_id_rejects_empty_input() {
        assert_eq!(id_reason(""), "input is empty");
    }

    #[test]
    fn spiffe_id_rejects_an_uppercase_trust_domain() {
        assert_eq!(
            id_reason("spiffe://Example.org/a"),
            "trust domain must be lowercase"
        );
    }

    #[test]
    fn spiffe_id_trust_domain_accepts_every_allowed_character() {
        let all = "abcdefghijklmnopqrstuvwxyz0123456789.-_";
        assert_eq!(
            id(&format!("spiffe://{all}/a")).trust_domain().as_str(),
            all
        );
        for name in ["a.b", "a-b", "a_b"] {
            assert_eq!(
                id(&format!("spiffe://{name}")).trust_domain().as_str(),
                name
            );
        }
    }

    #[test]
    fn spiffe_id_trust_domain_rejects_characters_outside_the_allowed_set() {
        for name in ["a+b", "a~b", "a b", "exämple.org", "ü", "a!b", "a*b", "a=b"] {
            assert_eq!(
                id_reason(&format!("spiffe://{name}/a")),
                TD_OUTSIDE_CHARSET,
                "{name:?}"
            );
        }
    }

    #[test]
    fn spiffe_id_with_a_255_byte_trust_domain_is_accepted() {
        let name = "a".repeat(255);
        assert_eq!(
            id(&format!("spiffe://{name}/a")).trust_domain().as_str(),
            name
        );
    }

    #[test]
    fn spiffe_id_with_a_256_byte_trust_domain_is_rejected() {
        assert_eq!(
            id_reason(&format!("spiffe://{}/a", "a".repeat(256))),
            "trust domain is longer than 255 bytes"
        );
    }

    // ---- SpiffeId: length ----

    #[test]
    fn spiffe_id_of_2048_bytes_is_accepted() {
        // "spiffe://example.org/" is 21 bytes.
        let input = format!("spiffe://example.org/{}", "a".repeat(2048 - 21));
        assert_eq!(input.len(), 2048);
        assert_eq!(id(&input).as_str(), input);
        // Also with many segments.
        let input = format!("spiffe://example.org{}", "/a".repeat((2048 - 20) / 2));
        assert_eq!(input.len(), 2048);
        assert_eq!(id(&input).segments().count(), (2048 - 20) / 2);
    }

    #[test]
    fn spiffe_id_of_2049_bytes_is_rejected() {
        let input = format!("spiffe://example.org/{}", "a".repeat(2049 - 21));
        assert_eq!(input.len(), 2049);
        assert_eq!(id_reason(&input), "longer than 2048 bytes");
    }

    // ---- SpiffeId: relations ----

    #[test]
    fn spiffe_id_is_member_of_its_own_trust_domain_only() {
        let parsed = id("spiffe://example.org/a");
        assert!(parsed.is_member_of(&td("example.org")));
        assert!(!parsed.is_member_of(&td("example.com")));
        assert!(!parsed.is_member_of(&td("example.org.evil")));
        assert!(td("example.org").id().is_member_of(&td("example.org")));
    }

    #[test]
    fn spiffe_id_is_strictly_under_its_parent_and_ancestors() {
        let child = id("spiffe://td/a/b");
        assert!(child.is_strictly_under(&id("spiffe://td/a")));
        assert!(child.is_strictly_under(&id("spiffe://td")));
        assert!(id("spiffe://td/a/b/c").is_strictly_under(&id("spiffe://td/a")));
    }

    #[test]
    fn spiffe_id_is_not_strictly_under_itself() {
        for input in ["spiffe://td", "spiffe://td/a", "spiffe://td/a/b"] {
            assert!(!id(input).is_strictly_under(&id(input)), "{input:?}");
        }
    }

    #[test]
    fn spiffe_id_is_not_strictly_under_a_prefix_that_is_not_a_whole_segment() {
        assert!(!id("spiffe://td/ab").is_strictly_under(&id("spiffe://td/a")));
        assert!(!id("spiffe://td/a.b").is_strictly_under(&id("spiffe://td/a")));
        assert!(!id("spiffe://td/a/bc").is_strictly_under(&id("spiffe://td/a/b")));
    }

    #[test]
    fn spiffe_id_with_a_path_is_strictly_under_its_trust_domain_id() {
        let root = td("td").id();
        for input in ["spiffe://td/a", "spiffe://td/a/b", "spiffe://td/..."] {
            assert!(id(input).is_strictly_under(&root), "{input:?}");
        }
        assert!(!root.is_strictly_under(&root));
    }

    #[test]
    fn spiffe_id_is_not_strictly_under_a_descendant_or_sibling() {
        assert!(!id("spiffe://td/a").is_strictly_under(&id("spiffe://td/a/b")));
        assert!(!id("spiffe://td").is_strictly_under(&id("spiffe://td/a")));
        assert!(!id("spiffe://td/b/c").is_strictly_under(&id("spiffe://td/a")));
    }

    #[test]
    fn spiffe_id_is_not_strictly_under_an_id_in_another_trust_domain() {
        assert!(!id("spiffe://td/a/b").is_strictly_under(&id("spiffe://other/a")));
        assert!(!id("spiffe://td/a").is_strictly_under(&id("spiffe://other")));
        assert!(!id("spiffe://td.x/a").is_strictly_under(&id("spiffe://td")));
    }

    // ---- SpiffeId: conversions, formatting, identity ----

    #[test]
    fn spiffe_id_try_from_str_and_string_agree_with_parse() {
        let input = "spiffe://example.org/a/b";
        assert_eq!(SpiffeId::try_from(input).unwrap(), id(input));
        let from_string = SpiffeId::try_from(input.to_owned()).unwrap();
        assert_eq!(from_string, id(input));
        assert_eq!(from_string.path(), "/a/b");
        assert_eq!(from_string.trust_domain().as_str(), "example.org");
        assert!(SpiffeId::try_from("spiffe://example.org/a/").is_err());
        assert!(SpiffeId::try_from(String::from("spiffe://example.org/a/")).is_err());
    }

    #[test]
    fn spiffe_id_display_round_trips() {
        for input in ["spiffe://example.org", "spiffe://example.org/a/B-c_d.e"] {
            let parsed = id(input);
            let shown = parsed.to_string();
            assert_eq!(shown, input);
            assert_eq!(parsed.as_ref(), input);
            assert_eq!(id(&shown), parsed);
        }
    }

    #[test]
    fn spiffe_id_debug_shows_the_whole_id() {
        assert_eq!(
            format!("{:?}", id("spiffe://example.org/a")),
            r#"SpiffeId("spiffe://example.org/a")"#
        );
    }

    #[test]
    fn spiffe_id_equality_hashing_and_ordering_follow_the_string() {
        let built = td("example.org").spiffe_id("/a").unwrap();
        let parsed = id("spiffe://example.org/a");
        assert_eq!(built, parsed);
        let set: HashSet<SpiffeId> = [built, parsed].into_iter().collect();
        assert_eq!(set.len(), 1);

        let mut ids = [
            id("spiffe://b/a"),
            id("spiffe://a/b"),
            id("spiffe://a"),
            id("spiffe://a/a"),
        ];
        ids.sort();
        let sorted: Vec<&str> = ids.iter().map(SpiffeId::as_str).collect();
        assert_eq!(
            sorted,
            ["spiffe://a", "spiffe://a/a", "spiffe://a/b", "spiffe://b/a"]
        );
    }

    #[test]
    fn spiffe_id_error_displays_with_its_reason() {
        assert_eq!(
            "spiffe://example.org/a?b"
                .parse::<SpiffeId>()
                .unwrap_err()
                .to_string(),
            "invalid SPIFFE ID: query is not allowed"
        );
    }

    // ---- SpiffeId: serde ----

    #[test]
    fn spiffe_id_serde_round_trips_as_a_string() {
        let original = id("spiffe://example.org/agent/build-7");
        let json = serde_json::to_string(&original).unwrap();
        assert_eq!(json, r#""spiffe://example.org/agent/build-7""#);
        assert_eq!(serde_json::from_str::<SpiffeId>(&json).unwrap(), original);
        // Through an owned string too (serde_json::Value hands over a String).
        let value = serde_json::to_value(&original).unwrap();
        assert_eq!(serde_json::from_value::<SpiffeId>(value).unwrap(), original);
    }

    #[test]
    fn spiffe_id_serde_rejects_an_invalid_id_with_the_reason() {
        let err = serde_json::from_str::<SpiffeId>(r#""spiffe://example.org/a/../b""#).unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid SPIFFE ID: path segment '.' or '..' is not allowed"),
            "{err}"
        );
        let err = serde_json::from_value::<SpiffeId>(serde_json::json!("spiffe://example.org/"))
            .unwrap_err();
        assert!(
            err.to_string().contains("trailing '/' is not allowed"),
            "{err}"
        );
    }

    #[test]
    fn spiffe_id_serde_rejects_a_non_string() {
        let err = serde_json::from_str::<SpiffeId>("42").unwrap_err();
        assert!(err.to_string().contains("a SPIFFE ID"), "{err}");
        assert!(serde_json::from_str::<SpiffeId>("null").is_err());
    }
}
