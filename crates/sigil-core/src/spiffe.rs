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
mod tests;
