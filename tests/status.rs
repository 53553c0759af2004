//! `GET /admin/v1/status` and `sigil status`: health, the issuers and when
//! they expire, certificate counts, CRL ages and the last audit record,
//! checked against the store itself.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use x509_parser::prelude::FromDer;

fn last_audit_seq(dir: &DataDir) -> i64 {
    let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
    conn.query_row("SELECT max(seq) FROM audit_events", [], |row| row.get(0))
        .unwrap()
}

#[test]
fn status_shows_issuers_counts_crls_and_the_audit_log_as_the_store_has_them() {
    let dir = DataDir::init();
    let server = dir.start();
    let mut serials = Vec::new();
    for name in ["kept", "dropped"] {
        let token = server.token(&format!("spiffe://example.org/agents/{name}"));
        let issued: Value = server.redeem(&token, &p256_csr().1).json().unwrap();
        serials.push(issued["serial"].as_str().unwrap().to_owned());
    }
    let revoked = block_on(server.admin().post_json(
        "/admin/v1/revocations",
        &json!({"serial": serials[1], "reason": "keyCompromise"}),
    ))
    .unwrap();
    assert_eq!(revoked.status, 200);

    let response = block_on(server.admin().get("/admin/v1/status")).unwrap();
    assert_eq!(response.status, 200);
    let status: Value = response.json().unwrap();
    assert_eq!(status["health"], "ok", "{status}");
    assert_eq!(status["trust_domain"], TRUST_DOMAIN);
    let issuers = status["issuers"].as_array().unwrap();
    assert_eq!(
        issuers
            .iter()
            .map(|i| i["role"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["root", "issuing"]
    );
    let expires = |i: usize| issuers[i]["expires_in_seconds"].as_i64().unwrap();
    // A fresh CA: the issuing CA lives about a year, the root ten.
    assert!(
        (360 * 86_400..=366 * 86_400).contains(&expires(1)),
        "{status}"
    );
    assert!(expires(0) > expires(1), "{status}");

    // Counts as the store has them: the admin credentials and the CA's
    // own server certificate are certificates too.
    let issued = u64::try_from(dir.count("certificates")).unwrap();
    let counts = &status["certificates"];
    assert_eq!(counts["issued"], issued, "{status}");
    assert_eq!(counts["revoked"], 1, "{status}");
    assert_eq!(counts["live"], issued - 1, "{status}");

    // One CRL per issuer, fresh, numbered as the CRL endpoint serves it.
    let crls = status["crls"].as_array().unwrap();
    assert_eq!(crls.len(), 2, "{status}");
    for crl in crls {
        let age = crl["age_seconds"].as_i64().unwrap();
        assert!((0..3_600).contains(&age), "{crl}");
    }
    let issuing_key_id = issuers[1]["key_id"].as_str().unwrap();
    let served = block_on(server.anonymous().get(&format!("/v1/crl/{issuing_key_id}"))).unwrap();
    assert_eq!(served.status, 200);
    let (_, parsed) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&served.body).unwrap();
    let number = crls
        .iter()
        .find(|crl| crl["issuer_key_id"] == issuing_key_id)
        .unwrap()["number"]
        .as_u64()
        .unwrap();
    assert_eq!(
        parsed.crl_number().map(|n| n.to_string()),
        Some(number.to_string())
    );

    // Stopping writes the audit log's pending records; before that, the
    // status shows what the store holds now.
    assert_eq!(status["last_audit_seq"], last_audit_seq(&dir), "{status}");
}

#[test]
fn sigil_status_prints_a_summary_or_json_and_refuses_agents() {
    let dir = DataDir::init();
    let server = dir.start();
    let text = sigil(&["status", "--data-dir", dir.arg()]);
    assert!(text.status.success(), "{}", stderr(&text));
    let printed = stdout(&text);
    for expected in [
        "health        ok",
        "trust domain  example.org",
        "root CA",
        "issuing CA",
        "certificates",
        "audit log",
    ] {
        assert!(printed.contains(expected), "{expected} in:\n{printed}");
    }
    let json = sigil(&["status", "--json", "--data-dir", dir.arg()]);
    assert!(json.status.success(), "{}", stderr(&json));
    let status: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(status["health"], "ok");

    // Only admins see it.
    let token = server.token("spiffe://example.org/agents/curious");
    let (key, csr) = p256_csr();
    let issued: Value = server.redeem(&token, &csr).json().unwrap();
    let agent = server.client_as(
        issued["cert_chain_pem"].as_str().unwrap(),
        &key.serialize_pem(),
    );
    assert_error(
        &block_on(agent.get("/admin/v1/status")).unwrap(),
        403,
        "forbidden",
    );
}
