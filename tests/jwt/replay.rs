//! Each `jti` is accepted once per issuer: concurrent copies of a token
//! get one SVID between them, a restart forgets nothing, and another
//! issuer's tokens may reuse the same jti.

use serde_json::json;
use sigil::client::CaClient;

use crate::common::*;
use crate::fixture::*;

#[test]
fn concurrent_copies_of_a_token_get_one_svid() {
    let ca = Ca::start();
    let token = ca.idps.k8s_ec.token(&k8s_claims("agents", "support-bot"));
    let (url, bundle) = (ca.server.url.clone(), ca.server.bundle_pem.clone());
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let copies: Vec<_> = (0..8)
            .map(|_| {
                let (url, bundle, token) = (url.clone(), bundle.clone(), token.clone());
                scope.spawn(move || {
                    let client = CaClient::new(&url, &bundle, None).unwrap();
                    let (_, csr) = p256_csr();
                    let body = json!({
                        "csr": csr,
                        "attestation": {"type": "jwt", "attestor": "k8s-prod", "token": token},
                    });
                    let response = block_on(client.post_json("/v1/svid", &body)).unwrap();
                    if response.status != 200 {
                        assert_refused(&response, "already used");
                    }
                    response.status.as_u16()
                })
            })
            .collect();
        copies
            .into_iter()
            .map(|copy| copy.join().unwrap())
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|status| **status == 200).count(),
        1,
        "{statuses:?}"
    );
    let (dir, _) = ca.stop();
    let records = audit_records(&dir);
    assert_eq!(jwt_issues(&records).len(), 1);
    assert_eq!(
        refusal_counts(&records).into_iter().collect::<Vec<_>>(),
        [("jwt k8s-prod: replayed jti".to_owned(), 7)]
    );
}

#[test]
fn a_spent_jti_stays_spent_across_a_restart_and_is_per_issuer() {
    let ca = Ca::start();
    let claims = k8s_claims("agents", "support-bot");
    let token = ca.idps.k8s_rsa.token(&claims);
    assert_eq!(issued_id(&ca.attest("k8s-prod", &token)), K8S_ID);
    // GitHub's tokens live in another jti space: the same jti is new there.
    let mut github = github_claims("example/agent");
    github["jti"] = claims["jti"].clone();
    assert_eq!(
        issued_id(&ca.attest("github", &ca.idps.github_ed.token(&github))),
        GITHUB_ID
    );

    let Ca { dir, server, idps } = ca;
    assert!(server.terminate().success());
    let server = start_logging(&dir);
    assert_refused(&attest(&server, "k8s-prod", &token), "already used");
    // The restarted server knows the keys and accepts a fresh token.
    let fresh = idps.k8s_rsa.token(&k8s_claims("agents", "support-bot"));
    assert_eq!(issued_id(&attest(&server, "k8s-prod", &fresh)), K8S_ID);
    assert!(server.terminate().success());
    let records = audit_records(&dir);
    assert_eq!(jwt_issues(&records).len(), 3);
    assert_eq!(
        refusal_counts(&records).into_iter().collect::<Vec<_>>(),
        [("jwt k8s-prod: replayed jti".to_owned(), 1)]
    );
}
