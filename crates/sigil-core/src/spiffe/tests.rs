//! Every rule of the SPIFFE ID standard, accepted and rejected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
    let err =
        serde_json::from_value::<SpiffeId>(serde_json::json!("spiffe://example.org/")).unwrap_err();
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
