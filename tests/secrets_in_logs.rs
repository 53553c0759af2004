//! No log line, at any level, and no error body contains key material or a
//! join token: a real `sigil serve` at `RUST_LOG=trace` goes through
//! issuance, renewal, refusals and admin calls, and its log and every
//! answer are searched for each secret it held.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

/// Pieces of a PEM's base64 body, long enough that a match is no accident.
fn fingerprints(pem_text: &str) -> Vec<String> {
    let body: String = pem_text
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    body.as_bytes()
        .chunks(24)
        .filter(|chunk| chunk.len() == 24)
        .map(|chunk| String::from_utf8(chunk.to_vec()).unwrap())
        .collect()
}

#[test]
fn no_log_line_or_error_body_holds_a_key_or_a_join_token() {
    let dir = DataDir::init();
    let server = Server::spawn_logging(
        &["serve", "--data-dir", dir.arg(), "--listen", "127.0.0.1:0"],
        dir.path.clone(),
        "trace",
    );
    let token = server.token_with(json!({
        "spiffe_id": "spiffe://example.org/agents/quiet",
        "uses": 1,
    }));
    let mut bodies = Vec::new();

    // Issuance, then renewal, with the agent's own key.
    let (agent_key, csr) = p256_csr();
    let issued = server.redeem(&token, &csr);
    assert_eq!(issued.status, 200);
    let svid: serde_json::Value = issued.json().unwrap();
    let chain = svid["cert_chain_pem"].as_str().unwrap();
    let (_, renew_csr) = p256_csr();
    let renewed = block_on(
        server
            .client_as(chain, &agent_key.serialize_pem())
            .post_json("/v1/renew", &json!({"csr": renew_csr})),
    )
    .unwrap();
    assert_eq!(renewed.status, 200);

    // Refusals that carry the secret in the request.
    let (_, csr) = p256_csr();
    let wrong_secret = format!("{}x", &token[..token.len() - 1]);
    for attempt in [
        json!({"csr": csr, "attestation": {"type": "join_token", "token": wrong_secret}}),
        json!({"csr": "not a CSR", "attestation": {"type": "join_token", "token": token}}),
        json!({"csr": csr, "attestation": {"type": "join_token", "token": token}, "ttl_seconds": 1}),
        json!({"csr": csr, "attestation": {"type": "join_token", "token": token}, "extra": token}),
    ] {
        let refused = server.post_svid(attempt);
        assert!(refused.status.is_client_error(), "{}", refused.status);
        bodies.push(String::from_utf8_lossy(&refused.body).into_owned());
    }
    // The token is used up now; one more try.
    let (_, csr) = p256_csr();
    let used_up = server.redeem(&token, &csr);
    assert_eq!(used_up.status, 401);
    bodies.push(String::from_utf8_lossy(&used_up.body).into_owned());

    // Admin calls.
    let admin = server.admin();
    let listed = block_on(admin.get("/admin/v1/certificates?status=all")).unwrap();
    assert_eq!(listed.status, 200);
    let revoked = block_on(admin.post_json(
        "/admin/v1/revocations",
        &json!({"serial": svid["serial"], "reason": "keyCompromise"}),
    ))
    .unwrap();
    assert_eq!(revoked.status, 200);
    let log = server.log();
    assert!(
        log.contains("svid.issue"),
        "the log was written at trace level"
    );

    let token_secret = join_token_secret(&token);
    let secrets: Vec<(String, Vec<String>)> = vec![
        ("the join token".to_owned(), vec![token.clone()]),
        (
            "the join token's secret".to_owned(),
            vec![token_secret.to_owned()],
        ),
        (
            "the agent's key".to_owned(),
            fingerprints(&agent_key.serialize_pem()),
        ),
        (
            "the root CA key".to_owned(),
            fingerprints(&dir.read("ca/root.key")),
        ),
        (
            "the issuing CA key".to_owned(),
            fingerprints(&dir.read("ca/issuing.key")),
        ),
        (
            "the audit key".to_owned(),
            fingerprints(&dir.read("audit/audit.key")),
        ),
        (
            "the admin's key".to_owned(),
            fingerprints(&dir.read("admin/svid.key")),
        ),
    ];
    for (what, pieces) in &secrets {
        assert!(!pieces.is_empty(), "{what}: nothing to look for");
        for piece in pieces {
            assert!(!log.contains(piece.as_str()), "{what} is in the log");
            for body in &bodies {
                assert!(
                    !body.contains(piece.as_str()),
                    "{what} is in an answer: {body}"
                );
            }
        }
    }
}
