//! Rotating the issuing CA of a running CA (`sigil ca rotate`, through
//! `POST /admin/v1/ca/rotate`), twice, while agents renew back to back and
//! a relying party with `sigil-verifier` checks every SVID they get: no
//! renewal and no verification fails, and the agents move to the new CA.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use sigil::client::{CaClient, ClientIdentity};

const AGENTS: usize = 4;

/// The relying party's verdict on a chain, with the bundle and the CRLs
/// served right now.
fn accepted(url: &str, bundle_pem: &str, chain_pem: &str) -> Result<(), String> {
    let anonymous = CaClient::new(url, bundle_pem, None).unwrap();
    let crls = block_on(anonymous.get("/v1/crls")).unwrap();
    sigil_verifier_verdict(bundle_pem, &crls.body, chain_pem)
}

#[test]
fn rotating_the_issuing_ca_while_agents_renew_fails_no_renewal_and_no_handshake() {
    let dir = DataDir::init();
    let server = dir.start();
    let (url, bundle) = (server.url.clone(), server.bundle_pem.clone());
    let tokens: Vec<String> = (0..AGENTS)
        .map(|index| server.token(&format!("spiffe://example.org/agents/rotating-{index}")))
        .collect();
    let stop = AtomicBool::new(false);
    let failures = Mutex::new(Vec::<String>::new());
    let issuers = Mutex::new(BTreeSet::<Vec<u8>>::new());
    let renewals = Mutex::new(0usize);
    std::thread::scope(|scope| {
        for (index, token) in tokens.iter().enumerate() {
            let (url, bundle, stop, failures, issuers, renewals) =
                (&url, &bundle, &stop, &failures, &issuers, &renewals);
            scope.spawn(move || {
                let (key, csr) = p256_csr();
                let anonymous = CaClient::new(url, bundle, None).unwrap();
                let request = json!({
                    "csr": csr,
                    "attestation": {"type": "join_token", "token": token},
                });
                let first: Value = block_on(anonymous.post_json("/v1/svid", &request))
                    .unwrap()
                    .json()
                    .unwrap();
                let mut chain = first["cert_chain_pem"].as_str().unwrap().to_owned();
                let mut key_pem = key.serialize_pem();
                while !stop.load(Ordering::Relaxed) {
                    let (next_key, next_csr) = p256_csr();
                    let client = CaClient::new(
                        url,
                        bundle,
                        Some(ClientIdentity {
                            chain_pem: &chain,
                            key_pem: &key_pem,
                        }),
                    )
                    .unwrap();
                    let answer = block_on(client.post_json("/v1/renew", &json!({"csr": next_csr})));
                    let answer = match answer {
                        Ok(answer) if answer.status == 200 => answer,
                        Ok(answer) => {
                            failures.lock().unwrap().push(format!(
                                "agent {index}: {} {}",
                                answer.status,
                                String::from_utf8_lossy(&answer.body)
                            ));
                            continue;
                        }
                        Err(error) => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("agent {index}: {error:#}"));
                            continue;
                        }
                    };
                    let body: Value = answer.json().unwrap();
                    chain = body["cert_chain_pem"].as_str().unwrap().to_owned();
                    key_pem = next_key.serialize_pem();
                    if let Err(refused) = accepted(url, bundle, &chain) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("agent {index}: refused: {refused}"));
                    }
                    issuers.lock().unwrap().insert(chain_der(&chain)[1].clone());
                    *renewals.lock().unwrap() += 1;
                }
            });
        }
        // Two rotations while the agents renew.
        for _ in 0..2 {
            std::thread::sleep(Duration::from_millis(300));
            let rotated = sigil(&["ca", "rotate", "--data-dir", dir.arg()]);
            assert!(rotated.status.success(), "{}", stderr(&rotated));
            assert!(
                stderr(&rotated).contains("in force now"),
                "{}",
                stderr(&rotated)
            );
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
    // The agents went through all three issuing CAs.
    let issuers = issuers.into_inner().unwrap();
    assert_eq!(issuers.len(), 3, "{} issuers", issuers.len());
    assert!(renewals.into_inner().unwrap() > AGENTS * 3);
    // The status lists the two retired ones.
    let status: Value = block_on(server.admin().get("/admin/v1/status"))
        .unwrap()
        .json()
        .unwrap();
    let retired = status["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|issuer| issuer["role"] == "retired")
        .count();
    assert_eq!(retired, 2, "{status}");
}

#[test]
fn an_issuing_ca_due_for_rotation_is_rotated_by_the_server_itself() {
    // An issuing CA of one day, and a schedule that rotates two days
    // before the end: due at once.
    let dir = DataDir::init_with(&["--issuing-ttl", "1d"]);
    std::fs::write(
        dir.file("sigil.toml"),
        "max_ttl = \"1h\"\nissuing_rotate_before = \"2d\"\nissuing_ttl = \"90d\"\n",
    )
    .unwrap();
    let server = dir.start();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status: Value = block_on(server.admin().get("/admin/v1/status"))
            .unwrap()
            .json()
            .unwrap();
        let roles: Vec<&str> = status["issuers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|issuer| issuer["role"].as_str().unwrap())
            .collect();
        if roles.contains(&"retired") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never rotated: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // The successor lives issuing_ttl (90 days), so it is not due again.
    let issuing = status["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|issuer| issuer["role"] == "issuing")
        .unwrap();
    let left = issuing["expires_in_seconds"].as_i64().unwrap();
    assert!((89 * 86_400..=90 * 86_400).contains(&left), "{status}");
    let audit: Value = block_on(server.admin().get("/admin/v1/audit?after=0&limit=1000"))
        .unwrap()
        .json()
        .unwrap();
    let rotations: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["action"] == "ca.rotate")
        .collect();
    assert_eq!(rotations.len(), 1, "{audit}");
    assert_eq!(rotations[0]["actor"], "scheduler");
}
