//! Valid tokens: each key type yields an SVID with the templated ID, the
//! attestor's max_ttl holds, the audit log records who attested (and
//! never the token), and a banned identity is refused.

use serde_json::{Value, json};
use sigil::client::Response;

use crate::common::*;
use crate::fixture::*;

fn seconds_left(response: &Response) -> i64 {
    let body: Value = response.json().unwrap();
    let leaf = &chain_der(body["cert_chain_pem"].as_str().unwrap())[0];
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).unwrap();
    cert.validity().not_after.timestamp() - now()
}

#[test]
fn valid_tokens_of_each_key_type_yield_the_templated_id() {
    let ca = Ca::start();
    let idps = &ca.idps;

    // Kubernetes, RS256 and ES256.
    let rs256 = idps.k8s_rsa.token(&k8s_claims("agents", "support-bot"));
    let issued = ca.attest("k8s-prod", &rs256);
    assert_eq!(issued_id(&issued), K8S_ID);
    // The server's default lifetime, 1h, is within the attestor's max_ttl.
    assert!((3000..=3600).contains(&seconds_left(&issued)));
    let es256 = idps.k8s_ec.token(&k8s_claims("tools", "indexer"));
    assert_eq!(
        issued_id(&ca.attest("k8s-prod", &es256)),
        "spiffe://example.org/k8s/tools/sa/indexer"
    );
    // A request for more than the attestor's max_ttl is refused, not cut
    // short; and it did not spend the token.
    let (_, csr) = p256_csr();
    let again = idps.k8s_rsa.token(&k8s_claims("agents", "support-bot"));
    let too_long = ca.server.post_svid(json!({
        "csr": csr,
        "attestation": {"type": "jwt", "attestor": "k8s-prod", "token": again},
        "ttl_seconds": 7200,
    }));
    assert_error(&too_long, 400, "invalid_ttl");
    assert!(String::from_utf8_lossy(&too_long.body).contains("at most 3600 s"));
    // Nor did a request whose CSR is no CSR.
    let bad_csr = ca.server.post_svid(json!({
        "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        "attestation": {"type": "jwt", "attestor": "k8s-prod", "token": again},
    }));
    assert_error(&bad_csr, 400, "invalid_csr");
    assert_eq!(issued_id(&ca.attest("k8s-prod", &again)), K8S_ID);

    // GitHub Actions, EdDSA and ES256; the repository fills two segments.
    let eddsa = idps.github_ed.token(&github_claims("example/agent"));
    let issued = ca.attest("github", &eddsa);
    assert_eq!(issued_id(&issued), GITHUB_ID);
    let left = seconds_left(&issued);
    assert!(
        (800..=900).contains(&left),
        "github max_ttl is 15m: {left}s"
    );
    let mut tag = github_claims("example/sigil-tools");
    tag["ref"] = json!("refs/tags/v1.2.0");
    tag["ref_type"] = json!("tag");
    tag["sub"] = json!("repo:example/sigil-tools:ref:refs/tags/v1.2.0");
    let gh_es256 = idps.github_ec.token(&tag);
    assert_eq!(
        issued_id(&ca.attest("github", &gh_es256)),
        "spiffe://example.org/ci/github/example/sigil-tools/tag"
    );

    // A token that expired 30 s ago is still within the minute of skew.
    let mut late = k8s_claims("agents", "late-bot");
    late["exp"] = json!(now() - 30);
    late["iat"] = json!(now() - 3630);
    late["nbf"] = json!(now() - 3630);
    let late = idps.k8s_ec.token(&late);
    assert_eq!(
        issued_id(&ca.attest("k8s-prod", &late)),
        "spiffe://example.org/k8s/agents/sa/late-bot"
    );

    let tokens = [rs256, es256, again, eddsa, gh_es256, late];
    let (dir, log) = ca.stop();
    // The server said what it issued, and to which attestor...
    assert!(
        log.contains("svid.issue") && log.contains("k8s-prod"),
        "{log}"
    );
    let records = audit_records(&dir);
    let issues = jwt_issues(&records);
    let summary: Vec<_> = issues
        .iter()
        .map(|record| {
            let details = &record["details"];
            (
                details["attestor"].as_str().unwrap(),
                details["issuer"].as_str().unwrap(),
                details["sub"].as_str().unwrap(),
                details["spiffe_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "k8s-prod",
                K8S_ISSUER,
                "system:serviceaccount:agents:support-bot",
                K8S_ID
            ),
            (
                "k8s-prod",
                K8S_ISSUER,
                "system:serviceaccount:tools:indexer",
                "spiffe://example.org/k8s/tools/sa/indexer"
            ),
            (
                "k8s-prod",
                K8S_ISSUER,
                "system:serviceaccount:agents:support-bot",
                K8S_ID
            ),
            (
                "github",
                GITHUB_ISSUER,
                "repo:example/agent:ref:refs/heads/main",
                GITHUB_ID
            ),
            (
                "github",
                GITHUB_ISSUER,
                "repo:example/sigil-tools:ref:refs/tags/v1.2.0",
                "spiffe://example.org/ci/github/example/sigil-tools/tag"
            ),
            (
                "k8s-prod",
                K8S_ISSUER,
                "system:serviceaccount:agents:late-bot",
                "spiffe://example.org/k8s/agents/sa/late-bot"
            ),
        ]
    );
    for record in &issues {
        assert_eq!(record["actor"], record["details"]["spiffe_id"], "{record}");
    }
    // The over-long request and the bad CSR were no refused attestation.
    assert!(refusal_counts(&records).is_empty());
    // No token shows, in the audit log or the server's log.
    let audit_text = serde_json::to_string(&records).unwrap();
    for token in &tokens {
        assert_nowhere(&audit_text, token, "audit log");
        assert_nowhere(&log, token, "server log");
    }
    let verified = sigil(&["audit", "verify", "--data-dir", dir.arg()]);
    assert!(verified.status.success(), "{}", stderr(&verified));
}

#[test]
fn a_banned_identity_is_refused_with_403_and_counted() {
    let ca = Ca::start();
    let token = ca.idps.k8s_rsa.token(&k8s_claims("agents", "support-bot"));
    assert_eq!(issued_id(&ca.attest("k8s-prod", &token)), K8S_ID);
    // Revoking every certificate of the ID bans it.
    let revoked = block_on(
        ca.server
            .admin()
            .post_json("/admin/v1/revocations", &json!({"spiffe_id": K8S_ID})),
    )
    .unwrap();
    assert_eq!(revoked.status, 200);
    let token = ca.idps.k8s_rsa.token(&k8s_claims("agents", "support-bot"));
    assert_error(&ca.attest("k8s-prod", &token), 403, "banned");
    // Another service account is not banned.
    let token = ca.idps.k8s_rsa.token(&k8s_claims("agents", "other-bot"));
    assert_eq!(
        issued_id(&ca.attest("k8s-prod", &token)),
        "spiffe://example.org/k8s/agents/sa/other-bot"
    );
    let (dir, _) = ca.stop();
    let counts = refusal_counts(&audit_records(&dir));
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [("jwt k8s-prod: banned identity".to_owned(), 1)]
    );
}
