//! SPIFFE ID templates: literal text and claims named by JSON Pointer,
//! `spiffe://example.org/k8s/{/kubernetes.io/namespace}/sa/{/sub}`. A
//! claim fills exactly one path segment, or several when marked
//! `{/pointer:segments}`; every value is checked as a path segment on its
//! own. Nothing is escaped: a value that is not a clean segment is refused.

use serde_json::Value;
use sigil_core::SpiffeId;

use super::Refusal;
use crate::namespace::Namespace;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Claim { pointer: String, segments: bool },
}

/// A parsed template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

/// Whether `value` is one SPIFFE path segment: letters, digits, `.`, `-`
/// and `_`, and neither `.` nor `..`.
fn is_segment(value: &str) -> bool {
    !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Whether a JSON Pointer is well formed (RFC 6901): empty, or `/`
/// followed by reference tokens in which `~` is only `~0` or `~1`.
pub(crate) fn is_pointer(pointer: &str) -> bool {
    pointer.starts_with('/')
        && pointer
            .split('~')
            .skip(1)
            .all(|rest| rest.starts_with('0') || rest.starts_with('1'))
}

impl Template {
    /// Parses `text` and checks that it can only yield IDs of the CA's
    /// trust domain, outside the CA's reserved `/sigil/` namespace.
    pub(crate) fn parse(text: &str, namespace: &Namespace) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .map(|close| open + close)
                .ok_or_else(|| format!("'{text}': a '{{' is not closed"))?;
            let inner = &rest[open + 1..close];
            let (pointer, segments) = match inner.strip_suffix(":segments") {
                Some(pointer) => (pointer, true),
                None => (inner, false),
            };
            if !is_pointer(pointer) {
                return Err(format!(
                    "'{text}': '{{{inner}}}' is not a JSON Pointer such as {{/sub}} or {{/repository:segments}}"
                ));
            }
            parts.push(Part::Claim {
                pointer: pointer.to_owned(),
                segments,
            });
            rest = &rest[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("'{text}': a '}}' has no '{{'"));
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        let template = Self { parts };
        template.check(text, namespace)?;
        Ok(template)
    }

    /// The trust domain must be literal and the CA's, and no choice of
    /// claim values may reach `/sigil/`.
    fn check(&self, text: &str, namespace: &Namespace) -> Result<(), String> {
        let prefix = format!("spiffe://{}/", namespace.trust_domain());
        let Some(Part::Literal(first)) = self.parts.first() else {
            return Err(format!("'{text}' must start with {prefix}"));
        };
        if !first.starts_with(&prefix) {
            return Err(format!("'{text}' must start with {prefix}"));
        }
        // The first path segment is literal, so no claim chooses where in
        // the trust domain an ID lands (and none can say "sigil").
        let literal_path = &first[prefix.len()..];
        if !literal_path.contains('/') && self.parts.len() > 1 {
            return Err(format!(
                "'{text}': the first path segment must be literal text, such as spiffe://{}/k8s/…",
                namespace.trust_domain()
            ));
        }
        // Each claim is a whole segment (or segments), so that two sets of
        // claims can never make the same ID.
        for (index, part) in self.parts.iter().enumerate() {
            if let Part::Claim { pointer, .. } = part {
                let after_slash = matches!(
                    self.parts.get(index.wrapping_sub(1)),
                    Some(Part::Literal(before)) if before.ends_with('/')
                ) && index > 0;
                let before_slash = match self.parts.get(index + 1) {
                    None => true,
                    Some(Part::Literal(after)) => after.starts_with('/'),
                    Some(Part::Claim { .. }) => false,
                };
                if !after_slash || !before_slash {
                    return Err(format!(
                        "'{text}': {{{pointer}}} must fill whole path segments, between '/'s"
                    ));
                }
            }
        }
        let spanning = self
            .parts
            .iter()
            .filter(|part| matches!(part, Part::Claim { segments: true, .. }))
            .count();
        if spanning > 1 {
            return Err(format!(
                "'{text}': at most one claim may fill several segments (`:segments`)"
            ));
        }
        if !self
            .parts
            .iter()
            .any(|part| matches!(part, Part::Claim { .. }))
        {
            return Err(format!(
                "'{text}' names no claim: every workload would get one ID"
            ));
        }
        // With sample values, the result must be a valid SPIFFE ID...
        let sample = self.render_with(|_| "x".to_owned());
        let id: SpiffeId = sample
            .parse()
            .map_err(|e| format!("'{text}' does not make a SPIFFE ID ({sample}): {e}"))?;
        if namespace.is_reserved(&id) {
            return Err(format!(
                "'{text}' makes IDs under the CA's reserved /sigil/"
            ));
        }
        // ...and no claim may open the path: a token could say "sigil".
        let reaching = self.render_with(|_| "sigil".to_owned());
        if reaching
            .parse::<SpiffeId>()
            .is_ok_and(|id| namespace.is_reserved(&id))
        {
            return Err(format!(
                "'{text}': a claim fills the first path segment, so a token could name /sigil/; start the path with literal text"
            ));
        }
        Ok(())
    }

    fn render_with(&self, mut value: impl FnMut(&str) -> String) -> String {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Literal(text) => text.clone(),
                Part::Claim { pointer, .. } => value(pointer),
            })
            .collect()
    }

    /// The ID for these claims.
    pub(crate) fn render(&self, root: &Value, namespace: &Namespace) -> Result<SpiffeId, Refusal> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Claim { pointer, segments } => {
                    let value = claim_text(root, pointer)?;
                    let clean = match segments {
                        true => value.split('/').all(is_segment),
                        false => is_segment(&value),
                    };
                    if !clean {
                        return Err(Refusal::new(
                            "jwt claim not a path segment",
                            format!(
                                "claim {pointer} = {value:?} is not {}",
                                match segments {
                                    true => "made of clean path segments",
                                    false =>
                                        "one clean path segment (letters, digits, '.', '-', '_')",
                                }
                            ),
                        ));
                    }
                    out.push_str(&value);
                }
            }
        }
        let id: SpiffeId = out.parse().map_err(|e| {
            Refusal::new(
                "jwt claim not a path segment",
                format!("the claims make {out:?}, not a SPIFFE ID: {e}"),
            )
        })?;
        if namespace.is_reserved(&id) {
            return Err(Refusal::new(
                "jwt reserved identity",
                format!("{id} lies in the CA's reserved namespace"),
            ));
        }
        Ok(id)
    }
}

/// The text of the claim at `pointer`, which must be a string (a number
/// would compare equal to its text in one spelling and not another).
pub(crate) fn claim_text(root: &Value, pointer: &str) -> Result<String, Refusal> {
    match root.pointer(pointer) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(Refusal::new(
            "jwt claim missing",
            format!("claim {pointer} is not a string"),
        )),
        None => Err(Refusal::new(
            "jwt claim missing",
            format!("the token has no claim {pointer}"),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn namespace() -> Namespace {
        Namespace::new(&"example.org".parse().unwrap())
    }

    fn claims(json: serde_json::Value) -> Value {
        json
    }

    #[test]
    fn kubernetes_claims_fill_one_segment_each() {
        let template = Template::parse(
            "spiffe://example.org/k8s/{/kubernetes.io/namespace}/sa/{/kubernetes.io/serviceaccount/name}",
            &namespace(),
        )
        .unwrap();
        let claims = claims(serde_json::json!({
            "kubernetes.io": {"namespace": "agents", "serviceaccount": {"name": "support-bot"}}
        }));
        assert_eq!(
            template.render(&claims, &namespace()).unwrap().as_str(),
            "spiffe://example.org/k8s/agents/sa/support-bot"
        );
    }

    #[test]
    fn segments_must_be_marked_and_each_is_checked() {
        let ns = namespace();
        let one = Template::parse("spiffe://example.org/ci/{/repository}", &ns).unwrap();
        let many = Template::parse("spiffe://example.org/ci/{/repository:segments}", &ns).unwrap();
        let repo = claims(serde_json::json!({"repository": "example/agent"}));
        assert!(one.render(&repo, &ns).is_err());
        assert_eq!(
            many.render(&repo, &ns).unwrap().as_str(),
            "spiffe://example.org/ci/example/agent"
        );
        for hostile in [
            "example/..",
            "example//agent",
            "../sigil",
            "a/b%2f",
            "a b",
            "",
            "/x",
        ] {
            let claims = claims(serde_json::json!({"repository": hostile}));
            assert!(many.render(&claims, &ns).is_err(), "{hostile:?}");
            assert!(one.render(&claims, &ns).is_err(), "{hostile:?}");
        }
    }

    #[test]
    fn templates_that_could_reach_the_reserved_namespace_are_refused() {
        let ns = namespace();
        for bad in [
            "spiffe://example.org/sigil/{/sub}",
            "spiffe://example.org/{/sub}",
            "spiffe://example.org/{/sub:segments}",
            "spiffe://other.org/a/{/sub}",
            "spiffe://example.org/a/b",
            "spiffe://example.org/a/{sub}",
            "spiffe://example.org/a/{/sub",
            "spiffe://example.org/a/}{/sub}",
            "spiffe://example.org/a/{/x~2}",
            "spiffe://example.org/s{/sub}/y",
            "spiffe://example.org/a/s{/sub}",
            "spiffe://example.org/a/{/sub}x",
            "spiffe://example.org/a/{/a}{/b}",
            "spiffe://example.org/a/{/a:segments}/{/b:segments}",
        ] {
            assert!(Template::parse(bad, &ns).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_missing_or_non_string_claim_is_refused() {
        let ns = namespace();
        let template = Template::parse("spiffe://example.org/a/{/sub}", &ns).unwrap();
        assert!(
            template
                .render(&claims(serde_json::json!({})), &ns)
                .is_err()
        );
        assert!(
            template
                .render(&claims(serde_json::json!({"sub": ["x"]})), &ns)
                .is_err()
        );
        // Numbers are not strings: "123" and 123 must not both pass.
        assert!(
            template
                .render(&claims(serde_json::json!({"sub": 123})), &ns)
                .is_err()
        );
    }
}
