//! `sigil ca rotate`: a new issuing CA, signed by the root, takes over; the
//! old one is retired, not revoked. Its leaves stay valid and renewable,
//! its CRL stays published, and OpenSSL verifies leaves of both issuers
//! against the unchanged bundle and the CRLs.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::{Value, json};
use x509_parser::prelude::FromDer;

/// The issuing CA of a chain (its second certificate), DER.
fn issuer_of(held: &Held) -> Vec<u8> {
    chain_der(&held.chain_pem)[1].clone()
}

fn issuing_key_ids(server: &Server) -> Vec<(String, String)> {
    server.status()["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|issuer| {
            (
                issuer["role"].as_str().unwrap().to_owned(),
                issuer["key_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `openssl verify -crl_check_all` of a held chain against the bundle and
/// every CRL the CA serves.
fn openssl_verdict(dir: &DataDir, server: &Server, svid: &Held) -> (bool, String) {
    let crls = block_on(server.anonymous().get("/v1/crls")).unwrap();
    assert_eq!(crls.status, 200);
    openssl_verify_chain(dir, &svid.chain_pem, &crls.body)
}

#[test]
fn a_rotated_issuing_ca_takes_over_and_the_retired_one_keeps_its_leaves_valid() {
    let dir = DataDir::init();
    let bundle = dir.bundle_pem();
    let server = dir.start();
    let veteran = server.attest("spiffe://example.org/agents/veteran");
    let old_key_id = issuing_key_ids(&server)[1].1.clone();
    server.terminate();

    let rotated = sigil(&["ca", "rotate", "--offline", "--data-dir", dir.arg()]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let new_key_id = stdout(&rotated).trim().to_owned();
    assert_ne!(new_key_id, old_key_id);
    let retired = dir.file(&format!("ca/retired/{old_key_id}.key"));
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&retired), 0o600);
    assert_eq!(mode(&dir.file("ca/retired")), 0o700);
    assert_eq!(
        dir.bundle_pem(),
        bundle,
        "the root and bundle are unchanged"
    );

    let server = dir.start();
    assert_eq!(
        issuing_key_ids(&server),
        [
            ("root".to_owned(), issuing_key_ids(&server)[0].1.clone()),
            ("issuing".to_owned(), new_key_id.clone()),
            ("retired".to_owned(), old_key_id.clone()),
        ]
    );
    // New leaves come from the new issuing CA...
    let newcomer = server.attest("spiffe://example.org/agents/newcomer");
    assert_ne!(issuer_of(&newcomer), issuer_of(&veteran));
    // ...and a leaf of the retired one renews into one of the new.
    let renewed = server.renew(&veteran);
    assert_eq!(issuer_of(&renewed), issuer_of(&newcomer));

    // Every issuer's CRL is served, the retired one's too.
    let retired_crl = block_on(server.anonymous().get(&format!("/v1/crl/{old_key_id}"))).unwrap();
    assert_eq!(retired_crl.status, 200);
    // OpenSSL accepts leaves of both issuers against the same bundle...
    for svid in [&veteran, &newcomer, &renewed] {
        let (accepted, output) = openssl_verdict(&dir, &server, svid);
        assert!(accepted, "{output}");
    }
    // ...until a leaf of the retired issuer is revoked: its CRL says so.
    let revoked = block_on(server.admin().post_json(
        "/admin/v1/revocations",
        &json!({"serial": veteran.serial, "reason": "keyCompromise"}),
    ))
    .unwrap();
    assert_eq!(revoked.status, 200);
    let (accepted, output) = openssl_verdict(&dir, &server, &veteran);
    assert!(!accepted && output.contains("revoked"), "{output}");
    let (accepted, output) = openssl_verdict(&dir, &server, &newcomer);
    assert!(accepted, "{output}");
}

#[test]
fn a_rotation_cut_short_before_the_new_certificate_moved_in_is_finished_on_load() {
    let dir = DataDir::init();
    let rotated = sigil(&["ca", "rotate", "--offline", "--data-dir", dir.arg()]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let new_key_id = stdout(&rotated).trim().to_owned();
    // Replay the end of a rotation a crash cut short: the new key moved in,
    // its certificate still staged.
    let staged = dir.file("ca/issuing.next.pem");
    std::fs::rename(dir.file("ca/issuing.pem"), &staged).unwrap();
    let server = dir.start();
    assert!(!staged.exists());
    let issuers = issuing_key_ids(&server);
    assert_eq!(issuers[1], ("issuing".to_owned(), new_key_id));
    server.attest("spiffe://example.org/agents/after-crash");
}

#[test]
fn rotating_an_encrypted_ca_keeps_every_key_encrypted() {
    let (dir, pass) = DataDir::init_encrypted(&[]);
    let pass_arg = pass.to_str().unwrap().to_owned();
    let without = sigil(&["ca", "rotate", "--offline", "--data-dir", dir.arg()]);
    assert!(!without.status.success());
    assert!(
        stderr(&without).contains("is encrypted"),
        "{}",
        stderr(&without)
    );
    let rotated = sigil(&[
        "ca",
        "rotate",
        "--offline",
        "--data-dir",
        dir.arg(),
        "--ca-passphrase-file",
        &pass_arg,
    ]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let old = key_files(&dir.file("ca/retired"));
    assert_eq!(old.len(), 1);
    for key in [dir.file("ca/issuing.key"), old[0].clone()] {
        assert_encrypted_key(&key);
    }
    let server = dir.start_encrypted(&pass);
    server.attest("spiffe://example.org/agents/sealed");
}

/// `sigil-verifier`'s verdict on a held chain, with the bundle and every
/// CRL the CA serves (also the root's, which lists revoked issuing CAs).
fn verifier_verdict(dir: &DataDir, server: &Server, svid: &Held) -> Result<(), String> {
    let crls = block_on(server.anonymous().get("/v1/crls")).unwrap();
    sigil_verifier_verdict(&dir.bundle_pem(), &crls.body, &svid.chain_pem)
}

#[test]
fn rotating_with_revoke_current_revokes_the_old_issuing_ca_in_the_roots_crl() {
    let dir = DataDir::init();
    let server = dir.start();
    let veteran = server.attest("spiffe://example.org/agents/veteran");
    assert_eq!(verifier_verdict(&dir, &server, &veteran), Ok(()));
    let old_key_id = issuing_key_ids(&server)[1].1.clone();
    server.terminate();

    let rotated = sigil(&[
        "ca",
        "rotate",
        "--offline",
        "--revoke-current",
        "--data-dir",
        dir.arg(),
    ]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert!(
        stderr(&rotated).contains("revoked in the root's CRL"),
        "{}",
        stderr(&rotated)
    );

    let server = dir.start();
    let newcomer = server.attest("spiffe://example.org/agents/newcomer");
    // The old issuing CA's leaves are refused by OpenSSL and by
    // sigil-verifier; the new one's are accepted.
    let (accepted, output) = openssl_verdict(&dir, &server, &veteran);
    assert!(!accepted && output.contains("revoked"), "{output}");
    let refused = verifier_verdict(&dir, &server, &veteran).unwrap_err();
    assert!(refused.to_lowercase().contains("revoked"), "{refused}");
    let (accepted, output) = openssl_verdict(&dir, &server, &newcomer);
    assert!(accepted, "{output}");
    assert_eq!(verifier_verdict(&dir, &server, &newcomer), Ok(()));

    // The root's CRL lists exactly that one CA certificate.
    let root_key_id = issuing_key_ids(&server)[0].1.clone();
    let root_crl = block_on(server.anonymous().get(&format!("/v1/crl/{root_key_id}"))).unwrap();
    let (_, parsed) =
        x509_parser::revocation_list::CertificateRevocationList::from_der(&root_crl.body).unwrap();
    let old_issuing = chain_der(&veteran.chain_pem)[1].clone();
    let (_, old_issuing) = x509_parser::parse_x509_certificate(&old_issuing).unwrap();
    let listed: Vec<_> = parsed
        .iter_revoked_certificates()
        .map(|entry| entry.raw_serial().to_vec())
        .collect();
    assert_eq!(listed, [old_issuing.raw_serial().to_vec()]);
    // The audit log says who revoked which CA.
    let audit: Value = block_on(server.admin().get("/admin/v1/audit?after=0&limit=1000"))
        .unwrap()
        .json()
        .unwrap();
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|event| event["action"] == "ca.revoke" && event["subject"] == old_key_id.as_str()),
        "{audit}"
    );
}

#[test]
fn while_the_ca_is_served_no_second_server_and_no_offline_rotation_touch_its_files() {
    let dir = DataDir::init();
    let server = dir.start();
    let files = |dir: &DataDir| (dir.read("ca/issuing.pem"), dir.read("bundle.pem"));
    let before = files(&dir);

    let second = sigil(&["serve", "--data-dir", dir.arg(), "--listen", "127.0.0.1:0"]);
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("is another `sigil serve` running on this data dir?"),
        "{}",
        stderr(&second)
    );
    for offline in [
        &["ca", "rotate", "--offline"][..],
        &["ca", "root", "rotate", "--offline"][..],
    ] {
        let mut args = offline.to_vec();
        args.extend(["--data-dir", dir.arg()]);
        let refused = sigil(&args);
        assert!(!refused.status.success(), "{args:?} ran");
        assert!(
            stderr(&refused).contains("stop `sigil serve` first"),
            "{}",
            stderr(&refused)
        );
    }
    assert_eq!(files(&dir), before);
    assert!(!dir.file("ca/roots").exists());
    // The server is unharmed, and once it stops the CA rotates offline.
    server.attest("spiffe://example.org/agents/still-served");
    drop(server);
    let rotated = sigil(&["ca", "rotate", "--offline", "--data-dir", dir.arg()]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
}
