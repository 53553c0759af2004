//! `sigil ca root rotate`: a new root joins the bundle beside the old one,
//! then signs the issuing CA; leaves of both roots verify with OpenSSL and
//! `sigil-verifier` against the bundle and the CRLs meanwhile. Bad
//! requests change nothing, and a root added to a stopped, encrypted CA
//! survives restarts and takes over when due. (The whole rotation under
//! load, through the old root's departure, is `tests/fleet_rotation.rs`.)
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{Value, json};

fn wait_until_active(server: &Server, root: &str) {
    wait_for_status(
        &server.admin(),
        Duration::from_secs(30),
        "the new root active",
        |s| keys_of(s, "root") == [root],
    );
}

/// The status's issuers without their countdowns (`expires_in_seconds`),
/// which tick between two reads.
fn issuers_at_rest(status: &Value) -> Value {
    let mut issuers = status["issuers"].clone();
    for issuer in issuers.as_array_mut().unwrap() {
        issuer.as_object_mut().unwrap().remove("expires_in_seconds");
    }
    issuers
}

/// Starts a live source of `server` that pins `fingerprint`.
fn live_source_pinning(
    server: &Server,
    fingerprint: &str,
) -> Result<sigil_verifier::TrustSource, sigil_verifier::Error> {
    block_on(async {
        sigil_verifier::LiveSource::from_fingerprint(&server.url, fingerprint)
            .unwrap()
            .start()
            .await
    })
}

/// The subject DN of the CA that signed a chain's issuing CA, and the
/// subject DN of a root, both DER.
fn issuing_ca_issuer(chain_pem: &str) -> Vec<u8> {
    let issuing = chain_der(chain_pem).remove(1);
    let (_, cert) = x509_parser::parse_x509_certificate(&issuing).unwrap();
    cert.issuer().as_raw().to_vec()
}

fn subject(der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.subject().as_raw().to_vec()
}

#[test]
fn a_new_root_joins_the_bundle_then_signs_the_issuing_ca_and_both_roots_leaves_verify() {
    let dir = DataDir::init();
    let mut server = dir.start();
    let veteran = server.attest("spiffe://example.org/agents/veteran");
    let before = server.status();
    assert_eq!(before["spiffe_sequence"], 1);

    // Bad requests are refused, and change nothing.
    let admin = server.admin();
    for (body, expected) in [
        (json!({"activate_after_seconds": 31_536_001u64}), "365 days"),
        (json!({"activate_after": 5}), "unknown field"),
        (json!({"activate_after_seconds": -1}), "expected u64"),
    ] {
        let refused = block_on(admin.post_json("/admin/v1/ca/root/rotate", &body)).unwrap();
        assert_error(&refused, 400, "invalid_request");
        let message = String::from_utf8_lossy(&refused.body).into_owned();
        assert!(message.contains(expected), "{message}");
    }
    let too_long = sigil(&[
        "ca",
        "root",
        "rotate",
        "--activate-after",
        "366d",
        "--data-dir",
        dir.arg(),
    ]);
    assert!(!too_long.status.success());
    assert!(stderr(&too_long).contains("365d"), "{}", stderr(&too_long));
    assert_eq!(issuers_at_rest(&server.status()), issuers_at_rest(&before));
    assert!(!dir.file("ca/roots.json").exists());

    // Step 1: both roots in every form of the bundle.
    let rotated = sigil(&[
        "ca",
        "root",
        "rotate",
        "--activate-after",
        "3s",
        "--data-dir",
        dir.arg(),
    ]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let fingerprint = stdout(&rotated).trim().to_owned();
    // Until it takes over, agents still pin the first root.
    let pinned = sigil(&["fingerprint", "--data-dir", dir.arg()]);
    assert_eq!(stdout(&pinned).trim(), dir.fingerprint);
    for said in ["takes over at", "warning: the new root takes over in 3s"] {
        assert!(stderr(&rotated).contains(said), "{}", stderr(&rotated));
    }
    // The test's clients trust the data dir's bundle, which now holds both
    // roots: the server's own certificate moves to the new root's chain at
    // step 2.
    server.bundle_pem = dir.read("bundle.pem");
    let added = server.status();
    assert_eq!(added["spiffe_sequence"], 2);
    let old_root = keys_of(&added, "root")[0].to_owned();
    let new_root = keys_of(&added, "next_root")[0].to_owned();
    let next = added["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|issuer| issuer["role"] == "next_root")
        .unwrap();
    assert_eq!(next["fingerprint"], fingerprint.as_str());
    assert!(next["activates_at"].is_string());
    assert_eq!(keys_of(&added, "issuing"), keys_of(&before, "issuing"));

    let bundle = block_on(server.anonymous().get("/v1/bundle")).unwrap();
    assert_eq!(bundle.headers["sigil-bundle-sequence"], "2");
    let roots = chain_der(std::str::from_utf8(&bundle.body).unwrap());
    assert_eq!(roots.len(), 2);
    assert_eq!(chain_der(&dir.read("bundle.pem")), roots);
    assert!(
        roots
            .iter()
            .any(|der| sigil::ca::fingerprint(der) == fingerprint)
    );
    let spiffe: Value = block_on(server.anonymous().get("/v1/bundle.spiffe"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(spiffe["spiffe_sequence"], 2);
    let mut authorities = Vec::new();
    for key in spiffe["keys"].as_array().unwrap() {
        let x5c = key["x5c"][0].as_str().unwrap();
        authorities.extend(
            base64::engine::general_purpose::STANDARD
                .decode(x5c)
                .unwrap(),
        );
    }
    let parsed = spiffe::X509Bundle::parse_from_der(
        spiffe::TrustDomain::new("example.org").unwrap(),
        &authorities,
    )
    .unwrap();
    assert_eq!(parsed.authorities().len(), 2);
    let crls = block_on(server.anonymous().get(&format!("/v1/crl/{new_root}"))).unwrap();
    assert_eq!(crls.status, 200, "the new root publishes its CRL at once");

    // One root rotation at a time.
    let again = sigil(&["ca", "root", "rotate", "--data-dir", dir.arg()]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("under way"), "{}", stderr(&again));
    let conflict = block_on(admin.post_json("/admin/v1/ca/root/rotate", &json!({}))).unwrap();
    assert_error(&conflict, 409, "conflict");
    assert_eq!(server.status()["spiffe_sequence"], 2);
    let text = sigil(&["status", "--data-dir", dir.arg()]);
    assert!(stdout(&text).contains("next root CA"), "{}", stdout(&text));
    assert!(stdout(&text).contains(&fingerprint), "{}", stdout(&text));
    assert!(
        stdout(&text).contains("spiffe_sequence 2"),
        "{}",
        stdout(&text)
    );

    // Step 2: the new root signs the issuing CA; the old root stays.
    wait_until_active(&server, &new_root);
    let activated = server.status();
    assert_eq!(keys_of(&activated, "previous_root"), [old_root.as_str()]);
    assert_eq!(activated["spiffe_sequence"], 2, "the bundle did not change");
    let new_root_der = roots
        .iter()
        .find(|der| sigil::ca::fingerprint(der) == fingerprint)
        .unwrap();
    let newcomer = server.attest("spiffe://example.org/agents/newcomer");
    assert_eq!(
        issuing_ca_issuer(&newcomer.chain_pem),
        subject(new_root_der)
    );
    // `sigil fingerprint` now prints the new root's, and an agent that pins
    // it starts, once the server has its own certificate of the new root
    // (it takes it in the background after the switch).
    let pinned = sigil(&["fingerprint", "--data-dir", dir.arg()]);
    assert_eq!(stdout(&pinned).trim(), fingerprint);
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(error) = live_source_pinning(&server, &fingerprint) {
        assert!(Instant::now() < deadline, "pinning the new root: {error}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // An agent that pins the old root and starts only now cannot trust the
    // server's certificate; it is told why, and what to pin instead.
    match live_source_pinning(&server, &dir.fingerprint) {
        Err(sigil_verifier::Error::Fingerprint(message)) => {
            for said in [dir.fingerprint.as_str(), "activated a new root", "sigil"] {
                assert!(message.contains(said), "{message}");
            }
        }
        other => panic!("expected a fingerprint error, got {:?}", other.err()),
    }
    // A leaf of the old root renews into the new root's chain.
    let renewed = server.renew(&veteran);
    let renewed_chain = renewed.chain_pem.as_str();
    assert_eq!(issuing_ca_issuer(renewed_chain), subject(new_root_der));

    // Both roots' leaves verify with OpenSSL and sigil-verifier, against
    // the bundle and every CRL the CA serves.
    let crls = block_on(server.anonymous().get("/v1/crls")).unwrap();
    assert_eq!(crls.status, 200);
    for chain in [&veteran.chain_pem, &newcomer.chain_pem] {
        let (passed, said) = openssl_verify_chain(&dir, chain, &crls.body);
        assert!(passed, "{said}");
        sigil_verifier_verdict(&dir.read("bundle.pem"), &crls.body, chain).unwrap();
    }
}

#[test]
fn a_root_added_to_a_stopped_encrypted_ca_survives_restarts_and_takes_over_when_due() {
    let (dir, pass) = DataDir::init_encrypted(&[]);
    let rotated = sigil(&[
        "ca",
        "root",
        "rotate",
        "--offline",
        "--activate-after",
        "2s",
        "--data-dir",
        dir.arg(),
        "--ca-passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert!(stderr(&rotated).contains("restart"), "{}", stderr(&rotated));
    let keys = key_files(&dir.file("ca/roots"));
    assert_eq!(keys.len(), 1);
    let mut server = dir.start_encrypted(&pass);
    server.bundle_pem = dir.read("bundle.pem");
    let new_root = keys_of(&server.status(), "next_root")[0].to_owned();
    wait_until_active(&server, &new_root);
    server.attest("spiffe://example.org/agents/sealed");
    drop(server);
    for key in [keys[0].clone(), dir.file("ca/issuing.key")] {
        assert_encrypted_key(&key);
    }
    // After a restart the old root is still kept: leaves chain to it.
    let server = dir.start_encrypted(&pass);
    let after = server.status();
    assert_eq!(keys_of(&after, "root"), [new_root.as_str()]);
    assert_eq!(keys_of(&after, "previous_root").len(), 1, "{after:#}");
    assert_eq!(after["spiffe_sequence"], 2);
}
