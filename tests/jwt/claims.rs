//! Tokens whose signature is good but whose claims are not: each is a 401
//! `invalid_attestation` that says what is wrong, and a refusal counted in
//! the audit log with its reason.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::*;
use crate::fixture::*;

/// Sets the claim at a JSON Pointer (whose parents exist), or removes it
/// when `value` is null.
fn set(claims: &mut Value, pointer: &str, value: Value) {
    let (parent, name) = pointer.rsplit_once('/').unwrap();
    let parent = claims.pointer_mut(parent).unwrap().as_object_mut().unwrap();
    if value.is_null() {
        parent.remove(name);
    } else {
        parent.insert(name.to_owned(), value);
    }
}

#[test]
fn tokens_with_bad_claims_are_refused_with_a_reason_and_counted() {
    let ca = Ca::start();
    let idps = &ca.idps;
    let now = now();
    let k8s = |changes: &[(&str, Value)]| {
        let mut claims = k8s_claims("agents", "support-bot");
        for (pointer, value) in changes {
            set(&mut claims, pointer, value.clone());
        }
        idps.k8s_rsa.token(&claims)
    };
    let github = |repository: &str| idps.github_ed.token(&github_claims(repository));

    // (attestor, token, what the answer says, the counted reason)
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "k8s-prod",
            k8s(&[("/aud", json!(["https://kubernetes.default.svc"]))]),
            "the token's audience is not one this attestor accepts",
            "jwt wrong audience",
        ),
        (
            "k8s-prod",
            k8s(&[("/aud", Value::Null)]),
            "the token's audience is not one this attestor accepts",
            "jwt wrong audience",
        ),
        (
            "k8s-prod",
            k8s(&[("/iss", json!("https://kubernetes.evil.example"))]),
            "the token's issuer is not this attestor's",
            "jwt wrong issuer",
        ),
        (
            // Kubernetes claims signed with a GitHub key: the key is the
            // github attestor's, the issuer is not.
            "github",
            idps.github_ec.token(&k8s_claims("agents", "support-bot")),
            "the token's issuer is not this attestor's",
            "jwt wrong issuer",
        ),
        (
            "k8s-prod",
            k8s(&[
                ("/exp", json!(now - 120)),
                ("/iat", json!(now - 3720)),
                ("/nbf", json!(now - 3720)),
            ]),
            "the token has expired",
            "jwt expired",
        ),
        (
            "k8s-prod",
            k8s(&[("/nbf", json!(now + 600)), ("/exp", json!(now + 4200))]),
            "the token is not valid yet (nbf)",
            "jwt not yet valid",
        ),
        (
            "k8s-prod",
            k8s(&[("/iat", json!(now + 600))]),
            "the token was issued in the future (iat)",
            "jwt not yet valid",
        ),
        (
            "k8s-prod",
            k8s(&[("/jti", Value::Null)]),
            "the token has no `jti`",
            "jwt without jti",
        ),
        (
            "k8s-prod",
            k8s(&[("/kubernetes.io/namespace", json!("kube-system"))]),
            "claim /kubernetes.io/namespace holds a value this attestor does not accept",
            "jwt requirement not met",
        ),
        (
            "github",
            github("evil/agent"),
            "claim /repository_owner holds a value this attestor does not accept",
            "jwt requirement not met",
        ),
        (
            "k8s-prod",
            k8s(&[(
                "/kubernetes.io/serviceaccount/name",
                json!("support/../../sigil"),
            )]),
            r#"claim /kubernetes.io/serviceaccount/name = "support/../../sigil" is not one clean path segment"#,
            "jwt claim not a path segment",
        ),
        (
            "k8s-prod",
            k8s(&[("/kubernetes.io/serviceaccount/name", json!(".."))]),
            r#"claim /kubernetes.io/serviceaccount/name = ".." is not one clean path segment"#,
            "jwt claim not a path segment",
        ),
        (
            "github",
            github("example/.."),
            r#"claim /repository = "example/.." is not made of clean path segments"#,
            "jwt claim not a path segment",
        ),
        (
            "github",
            github("example//sigil"),
            r#"claim /repository = "example//sigil" is not made of clean path segments"#,
            "jwt claim not a path segment",
        ),
        (
            "k8s-prod",
            k8s(&[("/kubernetes.io/serviceaccount", Value::Null)]),
            "the token has no claim /kubernetes.io/serviceaccount/name",
            "jwt claim missing",
        ),
        (
            "github",
            {
                let mut claims = github_claims("example/agent");
                claims["ref_type"] = json!(1);
                idps.github_ed.token(&claims)
            },
            "claim /ref_type is not a string",
            "jwt claim missing",
        ),
    ];
    let mut expected = BTreeMap::new();
    for (attestor, token, says, reason) in &cases {
        let message = assert_refused(&ca.attest(attestor, token), says);
        // The attestor's policy (its issuer, audiences, accepted values)
        // is not told to whoever knocks.
        for policy in ["kubernetes.default.svc", "tools", "\"example\""] {
            assert!(!message.contains(policy), "{message}");
        }
        *expected
            .entry(format!("jwt {attestor}: {reason}"))
            .or_insert(0) += 1;
    }
    // An attestor that is not configured: its name, the caller's text, is
    // counted under one reason.
    assert_refused(
        &ca.attest("k8s-staging", &k8s(&[])),
        "no attestor of that name is configured",
    );
    expected.insert("jwt: unknown attestor".to_owned(), 1);

    // A replayed jti: the same token twice.
    let token = k8s(&[]);
    assert_eq!(issued_id(&ca.attest("k8s-prod", &token)), K8S_ID);
    assert_refused(&ca.attest("k8s-prod", &token), "already used");
    // The jti is spent for its issuer, whichever key signed it again.
    let claims: Value = {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&crate::signer::unb64(payload)).unwrap()
    };
    assert_refused(
        &ca.attest("k8s-prod", &idps.k8s_ec.token(&claims)),
        "already used",
    );
    *expected
        .entry("jwt k8s-prod: replayed jti".to_owned())
        .or_insert(0) += 2;
    // A refused token does not spend its jti: with its audience put
    // right, a token with the same jti is accepted.
    let mut once_refused = k8s_claims("agents", "support-bot");
    once_refused["aud"] = json!("kubernetes");
    assert_refused(
        &ca.attest("k8s-prod", &idps.k8s_rsa.token(&once_refused)),
        "audience",
    );
    *expected
        .entry("jwt k8s-prod: jwt wrong audience".to_owned())
        .or_insert(0) += 1;
    once_refused["aud"] = json!("sigil");
    assert_eq!(
        issued_id(&ca.attest("k8s-prod", &idps.k8s_rsa.token(&once_refused))),
        K8S_ID
    );

    // Oversized: a validly signed token over 16 KiB in a body under 64 KiB
    // is refused as a token; a body over 64 KiB is refused before any
    // attestor sees it.
    let padded = k8s(&[("/padding", json!("p".repeat(17 * 1024)))]);
    assert!(padded.len() > 16 * 1024 && padded.len() < 60 * 1024);
    assert_refused(
        &ca.attest("k8s-prod", &padded),
        "the token is longer than 16384 bytes",
    );
    *expected
        .entry("jwt k8s-prod: oversized jwt".to_owned())
        .or_insert(0) += 1;
    let huge = k8s(&[("/padding", json!("p".repeat(64 * 1024)))]);
    assert_error(&ca.attest("k8s-prod", &huge), 413, "payload_too_large");

    let (dir, log) = ca.stop();
    let records = audit_records(&dir);
    assert_eq!(refusal_counts(&records), expected);
    // Two successes, and no token anywhere.
    assert_eq!(jwt_issues(&records).len(), 2);
    let audit_text = serde_json::to_string(&records).unwrap();
    for token in cases.iter().map(|case| &case.1).chain([&token, &padded]) {
        assert_nowhere(&audit_text, token, "audit log");
        assert_nowhere(&log, token, "server log");
    }
}
