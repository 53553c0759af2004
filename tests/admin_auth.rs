//! The admin API accepts only admin SVIDs of this CA that are in its store,
//! and answers every refusal in JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use rcgen::{
    CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber,
};
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, X509Certificate};

fn create_token(client: &sigil::client::CaClient) -> sigil::client::Response {
    block_on(client.post_json(
        "/admin/v1/join-tokens",
        &json!({"spiffe_id": "spiffe://example.org/agents/x"}),
    ))
    .unwrap()
}

/// A leaf for `spiffe_id` signed with this data dir's issuing CA key, but
/// never recorded in its store: what a forger holding a copy of the key
/// could make.
fn unrecorded_leaf(dir: &DataDir, spiffe_id: &str, serial: Option<Vec<u8>>) -> (String, String) {
    let issuing_key = KeyPair::from_pem(&dir.read("ca/issuing.key")).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&dir.read("ca/issuing.pem"), issuing_key).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().unwrap())];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.serial_number = Some(SerialNumber::from(serial.unwrap_or_else(|| vec![0x42; 16])));
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer).unwrap();
    let chain = format!("{}{}", cert.pem(), dir.read("ca/issuing.pem"));
    (chain, key.serialize_pem())
}

#[test]
fn the_admin_credential_from_init_can_create_tokens() {
    let dir = DataDir::init();
    let server = dir.start();
    let response = create_token(&server.admin());
    assert_eq!(response.status, 201);
    let body: Value = response.json().unwrap();
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn anonymous_callers_are_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    assert_error(
        &create_token(&server.anonymous()),
        401,
        "client_certificate_required",
    );
    assert_eq!(dir.count("join_tokens"), 0);
}

#[test]
fn an_agent_svid_is_not_an_admin() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token("spiffe://example.org/agents/support");
    let (key, csr) = p256_csr();
    let issued: Value = server.redeem(&token, &csr).json().unwrap();
    let agent = server.client_as(
        issued["cert_chain_pem"].as_str().unwrap(),
        &key.serialize_pem(),
    );
    assert_error(&create_token(&agent), 403, "forbidden");
    assert_eq!(dir.count("join_tokens"), 1, "only the agent's own token");
}

#[test]
fn certificates_from_another_ca_or_self_signed_are_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let other = DataDir::init();
    let foreign = server.client_as(&other.read("admin/svid.pem"), &other.read("admin/svid.key"));
    assert_error(&create_token(&foreign), 401, "invalid_client_certificate");

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(
        "spiffe://example.org/sigil/admin/admin".try_into().unwrap(),
    )];
    let self_signed = params.self_signed(&key).unwrap().pem();
    let forged = server.client_as(&self_signed, &key.serialize_pem());
    assert_error(&create_token(&forged), 401, "invalid_client_certificate");
    assert_eq!(dir.count("join_tokens"), 0);
}

#[test]
fn a_validly_signed_admin_certificate_that_is_not_in_the_store_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let (chain, key) = unrecorded_leaf(&dir, "spiffe://example.org/sigil/admin/ghost", None);
    assert_error(
        &create_token(&server.client_as(&chain, &key)),
        401,
        "invalid_client_certificate",
    );

    // Same serial as the real admin credential, different certificate: the
    // store compares the whole DER, not the serial.
    let real = chain_der(&dir.read("admin/svid.pem"));
    let (_, real_leaf) = X509Certificate::from_der(&real[0]).unwrap();
    let (chain, key) = unrecorded_leaf(
        &dir,
        "spiffe://example.org/sigil/admin/admin",
        Some(real_leaf.raw_serial().to_vec()),
    );
    assert_error(
        &create_token(&server.client_as(&chain, &key)),
        401,
        "invalid_client_certificate",
    );
    assert_eq!(dir.count("join_tokens"), 0);
}

#[test]
fn an_expired_admin_credential_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let (chain, key, _out) = dir.admin_credential("short", &["--ttl", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_error(
        &create_token(&server.client_as(&chain, &key)),
        401,
        "invalid_client_certificate",
    );
}

#[test]
fn admin_credential_mints_a_fresh_short_lived_admin_svid_with_a_private_key_file() {
    let dir = DataDir::init();
    let server = dir.start();
    let (chain, key, out) = dir.admin_credential("alice", &[]);
    let mode = std::fs::metadata(out.join("svid.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let der = chain_der(&chain);
    let (_, leaf) = X509Certificate::from_der(&der[0]).unwrap();
    let lifetime =
        leaf.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (8 * 3600 - 60..=8 * 3600).contains(&lifetime),
        "default 8h, got {lifetime}s"
    );
    assert_eq!(create_token(&server.client_as(&chain, &key)).status, 201);

    for (ttl, name) in [("25h", "alice"), ("8h", "a/../b")] {
        let refused = sigil(&[
            "admin",
            "credential",
            "--data-dir",
            dir.arg(),
            "--name",
            name,
            "--ttl",
            ttl,
        ]);
        assert!(!refused.status.success(), "{ttl} {name} accepted");
    }
}
