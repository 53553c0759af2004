//! Renewal over mTLS, and renewal lines: only the newest certificate of a
//! line renews; its parent once more as a retry; anything else is a fork
//! that bans the identity.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

mod common;

use common::*;
use serde_json::{Value, json};

/// An SVID and its key, as the agent holds them.
#[derive(Clone)]
struct Held {
    chain_pem: String,
    key_pem: String,
    serial: String,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({})", self.serial)
    }
}

fn attest(server: &Server, spiffe_id: &str) -> Held {
    let token = server.token(spiffe_id);
    let (key, csr) = p256_csr();
    let response = server.redeem(&token, &csr);
    assert_eq!(response.status, 200);
    held(response.json().unwrap(), key)
}

fn held(body: Value, key: rcgen::KeyPair) -> Held {
    Held {
        chain_pem: body["cert_chain_pem"].as_str().unwrap().to_owned(),
        key_pem: key.serialize_pem(),
        serial: body["serial"].as_str().unwrap().to_owned(),
    }
}

fn renew_raw(server: &Server, from: &Held, body: Value) -> sigil::client::Response {
    let client = server.client_as(&from.chain_pem, &from.key_pem);
    block_on(client.post_json("/v1/renew", &body)).unwrap()
}

fn renew(server: &Server, from: &Held) -> Result<Held, sigil::client::Response> {
    let (key, csr) = p256_csr();
    let response = renew_raw(server, from, json!({"csr": csr}));
    if response.status != 200 {
        return Err(response);
    }
    Ok(held(response.json().unwrap(), key))
}

fn certificates(server: &Server, status: &str) -> Vec<Value> {
    let body: Value = block_on(server.admin().get(&format!(
        "/admin/v1/certificates?status={status}&limit=1000"
    )))
    .unwrap()
    .json()
    .unwrap();
    body["certificates"].as_array().unwrap().clone()
}

fn is_revoked(server: &Server, serial: &str) -> bool {
    certificates(server, "revoked")
        .iter()
        .any(|c| c["serial"] == serial)
}

#[test]
fn a_live_svid_renews_into_a_new_svid_of_the_same_identity_linked_to_it() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token_with(json!({
        "spiffe_id": "spiffe://example.org/agents/renewer",
        "dns_names": ["renewer.internal"],
    }));
    let (key, csr) = p256_csr();
    let first = held(server.redeem(&token, &csr).json().unwrap(), key);
    let second =
        renew(&server, &first).unwrap_or_else(|r| panic!("{}", String::from_utf8_lossy(&r.body)));
    assert_ne!(second.serial, first.serial);

    let der = chain_der(&second.chain_pem);
    let sans = sans_of(&der[0]);
    assert_eq!(
        sans,
        [
            r#"URI("spiffe://example.org/agents/renewer")"#,
            r#"DNSName("renewer.internal")"#
        ]
    );
    std::fs::write(dir.temp.path().join("chain.pem"), &second.chain_pem).unwrap();
    let verify = openssl(
        &[
            "verify",
            "-CAfile",
            dir.file("bundle.pem").to_str().unwrap(),
            "-untrusted",
            "chain.pem",
            "chain.pem",
        ],
        dir.temp.path(),
    );
    assert!(verify.status.success(), "{}", stderr(&verify));

    let listed = certificates(&server, "live");
    let entry = listed
        .iter()
        .find(|c| c["serial"] == second.serial.as_str())
        .unwrap();
    assert_eq!(entry["parent_serial"], first.serial.as_str());
    // The new one renews in turn.
    assert!(renew(&server, &second).is_ok());
}

#[test]
fn renewal_is_refused_without_a_valid_live_certificate_of_this_ca() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--min-ttl", "1s"]);
    let (_, csr) = p256_csr();

    let anonymous = block_on(
        server
            .anonymous()
            .post_json("/v1/renew", &json!({"csr": csr})),
    )
    .unwrap();
    assert_error(&anonymous, 401, "client_certificate_required");

    let admin = block_on(server.admin().post_json("/v1/renew", &json!({"csr": csr}))).unwrap();
    assert_error(&admin, 403, "reserved_identity");

    let other = DataDir::init();
    let other_server = other.start();
    let foreign = attest(&other_server, "spiffe://example.org/agents/elsewhere");
    assert_error(
        &renew_raw(&server, &foreign, json!({"csr": csr})),
        401,
        "invalid_client_certificate",
    );

    let revoked = attest(&server, "spiffe://example.org/agents/revoked");
    let response = block_on(
        server
            .admin()
            .post_json("/admin/v1/revocations", &json!({"serial": revoked.serial})),
    )
    .unwrap();
    assert_eq!(response.status, 200);
    assert_error(
        &renew_raw(&server, &revoked, json!({"csr": csr})),
        403,
        "revoked",
    );

    let token = server.token("spiffe://example.org/agents/brief");
    let (key, brief_csr) = p256_csr();
    let response = server.post_svid(json!({
        "csr": brief_csr,
        "attestation": {"type": "join_token", "token": token},
        "ttl_seconds": 1,
    }));
    let brief = held(response.json().unwrap(), key);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_error(
        &renew_raw(&server, &brief, json!({"csr": csr})),
        401,
        "invalid_client_certificate",
    );

    let live = attest(&server, "spiffe://example.org/agents/live");
    assert_error(
        &renew_raw(&server, &live, json!({"csr": "nope"})),
        400,
        "invalid_csr",
    );
    // A CSR whose proof-of-possession signature does not verify: checked
    // in the job that would sign, before anything is signed or recorded.
    let (_, good) = p256_csr();
    let mut der = pem::parse(&good).unwrap().into_contents();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let forged = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    assert_error(
        &renew_raw(&server, &live, json!({"csr": forged})),
        400,
        "invalid_csr",
    );
    assert_error(
        &renew_raw(&server, &live, json!({"csr": csr, "ttl_seconds": 999_999})),
        400,
        "invalid_ttl",
    );
    assert!(
        renew(&server, &live).is_ok(),
        "refused requests did not disturb the line"
    );
}

#[test]
fn a_retry_from_the_parent_works_once_and_revokes_the_unused_successor() {
    let dir = DataDir::init();
    let server = dir.start();
    let first = attest(&server, "spiffe://example.org/agents/flaky-net");
    let lost = renew(&server, &first).unwrap();
    // The response to `lost` never arrived; the agent retries with `first`.
    let retried = renew(&server, &first).unwrap();
    assert!(
        is_revoked(&server, &lost.serial),
        "the unused successor is revoked"
    );
    assert!(!is_revoked(&server, &retried.serial));
    assert!(
        renew(&server, &retried).is_ok(),
        "the retried line continues"
    );
}

#[test]
fn a_renewal_from_a_certificate_the_line_moved_on_from_bans_the_identity() {
    let dir = DataDir::init();
    let server = dir.start();
    let id = "spiffe://example.org/agents/cloned";
    let first = attest(&server, id);
    let second = renew(&server, &first).unwrap();
    let third = renew(&server, &second).unwrap();
    // A thief kept `first` and renews now.
    let fork = renew(&server, &first).unwrap_err();
    assert_error(&fork, 403, "lineage_fork");
    for held in [&first, &second, &third] {
        assert!(is_revoked(&server, &held.serial), "{held:?} is still live");
    }
    assert_error(&renew(&server, &third).unwrap_err(), 403, "banned");
    let create = block_on(
        server
            .admin()
            .post_json("/admin/v1/join-tokens", &json!({"spiffe_id": id})),
    )
    .unwrap();
    assert_error(&create, 403, "banned");
}

#[test]
fn a_second_retry_is_a_fork() {
    let dir = DataDir::init();
    let server = dir.start();
    let first = attest(&server, "spiffe://example.org/agents/twice");
    let _lost = renew(&server, &first).unwrap();
    let _retried = renew(&server, &first).unwrap();
    assert_error(&renew(&server, &first).unwrap_err(), 403, "lineage_fork");
}

#[test]
fn two_parallel_renewals_of_one_certificate_cannot_both_continue_the_line() {
    let dir = DataDir::init();
    let server = dir.start();
    let first = attest(&server, "spiffe://example.org/agents/racer");
    let client = server.client_as(&first.chain_pem, &first.key_pem);
    let (key_a, csr_a) = p256_csr();
    let (key_b, csr_b) = p256_csr();
    let (a, b) = block_on(async {
        let body_a = json!({"csr": csr_a});
        let body_b = json!({"csr": csr_b});
        tokio::join!(
            client.post_json("/v1/renew", &body_a),
            client.post_json("/v1/renew", &body_b)
        )
    });
    let outcome = |response: sigil::client::Response, key| match response.status.as_u16() {
        200 => Ok(held(response.json().unwrap(), key)),
        _ => Err(response),
    };
    let (a, b) = (outcome(a.unwrap(), key_a), outcome(b.unwrap(), key_b));
    let continued: Vec<Held> = [a, b]
        .into_iter()
        .filter_map(Result::ok)
        .filter(|held| !is_revoked(&server, &held.serial))
        .collect();
    assert_eq!(continued.len(), 1, "exactly one renewal heads the line");
    assert!(renew(&server, &continued[0]).is_ok());
}

#[test]
fn a_thief_who_retries_from_the_parent_is_caught_when_the_agent_renews_its_superseded_head() {
    let dir = DataDir::init();
    let server = dir.start();
    let id = "spiffe://example.org/agents/parent-stolen";
    let parent = attest(&server, id);
    let agents_head = renew(&server, &parent).unwrap();
    // The thief holds `parent` and renews: it looks like a retry.
    let thiefs_head = renew(&server, &parent).unwrap();
    assert!(is_revoked(&server, &agents_head.serial));
    // The agent renews its (superseded) head: that proves two holders.
    assert_error(
        &renew(&server, &agents_head).unwrap_err(),
        403,
        "lineage_fork",
    );
    assert!(
        is_revoked(&server, &thiefs_head.serial),
        "the thief's line is revoked"
    );
    assert_error(&renew(&server, &thiefs_head).unwrap_err(), 403, "banned");
}

#[test]
fn a_parent_cannot_retry_past_a_head_an_admin_revoked() {
    let dir = DataDir::init();
    let server = dir.start();
    let parent = attest(&server, "spiffe://example.org/agents/compromised");
    let head = renew(&server, &parent).unwrap();
    let response = block_on(server.admin().post_json(
        "/admin/v1/revocations",
        &json!({"serial": head.serial, "reason": "keyCompromise"}),
    ))
    .unwrap();
    assert_eq!(response.status, 200);
    assert_error(&renew(&server, &parent).unwrap_err(), 403, "lineage_fork");
    assert!(
        certificates(&server, "live")
            .iter()
            .all(|c| c["spiffe_id"] != "spiffe://example.org/agents/compromised")
    );
}

#[test]
fn an_address_over_its_renewal_limit_gets_429_and_can_still_attest() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--renewal-limit", "0.01", "--renewal-burst", "2"]);
    let mut current = attest(&server, "spiffe://example.org/agents/eager");
    for _ in 0..2 {
        current = renew(&server, &current).unwrap();
    }
    let before = dir.count("certificates");
    let limited = renew(&server, &current).unwrap_err();
    assert_error(&limited, 429, "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    assert_eq!(dir.count("certificates"), before, "nothing issued");
    // Renewals have their own buckets: the same address still attests.
    attest(&server, "spiffe://example.org/agents/starting");
}

#[test]
fn an_address_over_its_attestation_limit_can_still_renew() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--rate-limit", "0.01", "--rate-burst", "3"]);
    // A token and an attestation: two of the three.
    let agent = attest(&server, "spiffe://example.org/agents/steady");
    let limited = (0..3)
        .map(|_| server.post_svid(json!({})))
        .find(|response| response.status == 429)
        .expect("the attestation limit was reached");
    assert_error(&limited, 429, "rate_limited");
    // Renewals have their own buckets.
    renew(&server, &agent).unwrap();
}
