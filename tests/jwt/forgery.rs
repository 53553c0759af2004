//! Forged tokens: a bad signature, `alg: none`, HS256 keyed with the
//! issuer's public key, an unknown `kid`, a key of the wrong kind or of
//! another issuer. Each is a 401 that says what is wrong and a refusal
//! counted in the audit log.

use std::collections::BTreeMap;

use serde_json::json;

use crate::fixture::*;
use crate::signer::{Signer, b64, hs256, signing_input, unsigned};

#[test]
fn forged_tokens_are_refused_with_a_reason_and_counted() {
    let ca = Ca::start();
    let idps = &ca.idps;
    let claims = k8s_claims("agents", "support-bot");
    let good = idps.k8s_rsa.token(&claims);
    let [header, _, signature] =
        <[&str; 3]>::try_from(good.split('.').collect::<Vec<_>>()).unwrap();

    // The payload changed after signing: another service account.
    let mut escalated = claims.clone();
    escalated["kubernetes.io"]["serviceaccount"]["name"] = json!("admin-bot");
    let tampered = format!(
        "{header}.{}.{signature}",
        b64(escalated.to_string().as_bytes())
    );
    // An attacker's own key, claiming a kid the issuer has.
    let impostor = Signer::es256("k8s-ec-1").token(&claims);
    // The same, without a kid: the set's only ES256 key is tried.
    let impostor_no_kid = Signer::es256("x").sign(&json!({"alg": "ES256", "typ": "JWT"}), &claims);
    // The right key, an empty signature.
    let empty_signature = format!("{}.", signing_input(&idps.k8s_rsa.header(), &claims));
    // ES256 over the RSA key's kid: no key of that kid and kind.
    let wrong_kind = idps
        .k8s_ec
        .sign(&json!({"alg": "ES256", "kid": "k8s-rsa-1"}), &claims);
    // The issuer's public key (PEM, or the JWKS as published) as an HMAC
    // secret: the algorithm confusion attack.
    let jwks_file = std::fs::read(ca.dir.file("k8s-jwks.json")).unwrap();
    let hs256_pem = hs256("k8s-rsa-1", idps.k8s_rsa.public_pem().as_bytes(), &claims);
    let hs256_jwks = hs256("k8s-rsa-1", &jwks_file, &claims);
    let none = unsigned("k8s-rsa-1", &claims);
    let none_capitalised = format!(
        "{}.",
        signing_input(&json!({"alg": "None", "typ": "JWT"}), &claims)
    );
    // An EdDSA key (GitHub's) for an attestor that takes RS256 and ES256.
    let eddsa = idps.github_ed.token(&claims);
    // A kid the issuer never published; a key of the other issuer.
    let unknown_kid = Signer::es256("k8s-ec-2").token(&claims);
    let other_issuers_key = idps.k8s_ec.token(&github_claims("example/agent"));
    let critical = idps.k8s_rsa.sign(
        &json!({"alg": "RS256", "kid": "k8s-rsa-1", "crit": ["x-sigil-test"]}),
        &claims,
    );

    // (attestor, token, what the answer says, the counted reason)
    let cases: Vec<(&str, &str, &str, &str)> = vec![
        (
            "k8s-prod",
            &tampered,
            "the signature does not verify",
            "bad jwt signature",
        ),
        (
            "k8s-prod",
            &impostor,
            "the signature does not verify",
            "bad jwt signature",
        ),
        (
            "k8s-prod",
            &impostor_no_kid,
            "the signature does not verify",
            "bad jwt signature",
        ),
        (
            "k8s-prod",
            &empty_signature,
            "the signature does not verify",
            "bad jwt signature",
        ),
        (
            "k8s-prod",
            &wrong_kind,
            r#"the issuer has no key "k8s-rsa-1" for ES256"#,
            "jwt unknown key",
        ),
        (
            "k8s-prod",
            &hs256_pem,
            r#"alg "HS256" is not one this attestor accepts"#,
            "jwt algorithm not allowed",
        ),
        (
            "k8s-prod",
            &hs256_jwks,
            r#"alg "HS256" is not one this attestor accepts"#,
            "jwt algorithm not allowed",
        ),
        (
            "k8s-prod",
            &none,
            r#"alg "none" is not one this attestor accepts"#,
            "jwt algorithm not allowed",
        ),
        (
            "k8s-prod",
            &none_capitalised,
            r#"alg "None" is not one this attestor accepts"#,
            "jwt algorithm not allowed",
        ),
        (
            "k8s-prod",
            &eddsa,
            r#"alg "EdDSA" is not one this attestor accepts"#,
            "jwt algorithm not allowed",
        ),
        (
            "k8s-prod",
            &unknown_kid,
            r#"the issuer has no key "k8s-ec-2""#,
            "jwt unknown key",
        ),
        (
            "github",
            &other_issuers_key,
            r#"the issuer has no key "k8s-ec-1""#,
            "jwt unknown key",
        ),
        (
            "k8s-prod",
            "not-a-jwt",
            "a JWT has three dot-separated parts",
            "malformed jwt",
        ),
        (
            "k8s-prod",
            &critical,
            "critical extensions",
            "malformed jwt",
        ),
    ];
    let mut expected = BTreeMap::new();
    for (attestor, token, says, reason) in &cases {
        assert_refused(&ca.attest(attestor, token), says);
        *expected
            .entry(format!("jwt {attestor}: {reason}"))
            .or_insert(0) += 1;
    }
    // None of it spent the jti: the genuine token is still good.
    assert_eq!(issued_id(&ca.attest("k8s-prod", &good)), K8S_ID);

    let (dir, log) = ca.stop();
    let records = audit_records(&dir);
    assert_eq!(refusal_counts(&records), expected);
    let issues = jwt_issues(&records);
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0]["details"]["spiffe_id"], K8S_ID);
    let audit_text = serde_json::to_string(&records).unwrap();
    for token in cases.iter().map(|case| case.1).chain([good.as_str()]) {
        assert_nowhere(&audit_text, token, "audit log");
        assert_nowhere(&log, token, "server log");
    }
}
