//! A join token and a CSR become an X509-SVID that follows the profile and
//! that independent verifiers (openssl, the spiffe crate) accept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P384_SHA384, PKCS_ED25519, SanType,
};
use serde_json::{Value, json};
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

fn issued_chain(server: &Server, token: &str, csr: &str) -> (Value, Vec<Vec<u8>>) {
    let response = server.redeem(token, csr);
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let body: Value = response.json().unwrap();
    let chain = chain_der(body["cert_chain_pem"].as_str().unwrap());
    (body, chain)
}

#[test]
fn redeemed_token_yields_an_svid_that_openssl_and_the_spiffe_crate_accept() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token("spiffe://example.org/agents/support/7");
    let (key, csr) = p256_csr();
    let (body, chain) = issued_chain(&server, &token, &csr);

    assert_eq!(body["spiffe_id"], "spiffe://example.org/agents/support/7");
    assert_eq!(body["bundle_pem"].as_str().unwrap(), dir.bundle_pem());
    assert_eq!(chain.len(), 2, "leaf then issuing CA");

    let work = dir.temp.path();
    std::fs::write(
        work.join("chain.pem"),
        body["cert_chain_pem"].as_str().unwrap(),
    )
    .unwrap();
    let verify = openssl(
        &[
            "verify",
            "-CAfile",
            dir.file("bundle.pem").to_str().unwrap(),
            "-untrusted",
            "chain.pem",
            "-purpose",
            "sslclient",
            "chain.pem",
        ],
        work,
    );
    assert!(
        verify.status.success(),
        "openssl verify: {}{}",
        stdout(&verify),
        stderr(&verify)
    );

    let concatenated: Vec<u8> = chain.concat();
    let svid = spiffe::X509Svid::parse_from_der(&concatenated, &key.serialize_der())
        .expect("the spiffe crate accepts the X509-SVID");
    assert_eq!(
        svid.spiffe_id().to_string(),
        "spiffe://example.org/agents/support/7"
    );
}

#[test]
fn issued_leaf_follows_the_svid_profile() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token("spiffe://example.org/agents/a");
    let (_, csr) = p256_csr();
    let before = time::OffsetDateTime::now_utc();
    let (body, chain) = issued_chain(&server, &token, &csr);
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    let (_, issuing) = X509Certificate::from_der(&chain[1]).unwrap();

    assert!(leaf.subject().iter().next().is_none(), "empty subject");
    let serial = leaf.raw_serial();
    assert_eq!(
        serial.len(),
        16,
        "16-byte serial: at least 64 bits of entropy"
    );
    assert!((0x01..=0x7f).contains(&serial[0]));
    assert_eq!(body["serial"].as_str().unwrap(), hex::encode(serial));

    let mut seen = Vec::new();
    for ext in leaf.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                assert!(ext.critical, "SAN is critical with an empty subject");
                let names: Vec<_> = san.general_names.iter().collect();
                assert_eq!(names.len(), 1, "{names:?}");
                assert!(matches!(
                    names[0],
                    GeneralName::URI("spiffe://example.org/agents/a")
                ));
                seen.push("san");
            }
            ParsedExtension::BasicConstraints(bc) => {
                assert!(ext.critical);
                assert!(!bc.ca);
                seen.push("bc");
            }
            ParsedExtension::KeyUsage(ku) => {
                assert!(ext.critical);
                assert!(ku.digital_signature());
                assert!(!ku.key_cert_sign() && !ku.crl_sign() && !ku.key_encipherment());
                assert_eq!(ku.flags, 1, "digitalSignature only");
                seen.push("ku");
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                assert!(eku.server_auth && eku.client_auth);
                assert!(!eku.any && !eku.code_signing && eku.other.is_empty());
                seen.push("eku");
            }
            ParsedExtension::CRLDistributionPoints(points) => {
                let issuer_key_id = issuing
                    .extensions()
                    .iter()
                    .find_map(|e| match e.parsed_extension() {
                        ParsedExtension::SubjectKeyIdentifier(ski) => Some(hex::encode(ski.0)),
                        _ => None,
                    })
                    .unwrap();
                let expected =
                    format!("https://localhost:{}/v1/crl/{issuer_key_id}", server.port());
                let Some(DistributionPointName::FullName(names)) =
                    &points.points[0].distribution_point
                else {
                    panic!("no full name")
                };
                assert!(matches!(names[0], GeneralName::URI(uri) if uri == expected));
                seen.push("crldp");
            }
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                let ski = issuing
                    .extensions()
                    .iter()
                    .find_map(|e| match e.parsed_extension() {
                        ParsedExtension::SubjectKeyIdentifier(ski) => Some(ski.0.to_vec()),
                        _ => None,
                    })
                    .unwrap();
                assert_eq!(aki.key_identifier.as_ref().unwrap().0, ski.as_slice());
                seen.push("aki");
            }
            ParsedExtension::SubjectKeyIdentifier(_) => seen.push("ski"),
            other => panic!("unexpected extension {other:?}"),
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, ["aki", "bc", "crldp", "eku", "ku", "san", "ski"]);

    let not_before = leaf.validity().not_before.to_datetime();
    let not_after = leaf.validity().not_after.to_datetime();
    let ttl = (not_after - before).whole_seconds();
    assert!((3590..=3610).contains(&ttl), "default TTL 1h, got {ttl}s");
    assert!(not_before <= before && before - not_before <= Duration::from_secs(60));
    assert!(not_after <= issuing.validity().not_after.to_datetime());
}

#[test]
fn a_csr_cannot_ask_for_ca_extensions_sans_or_a_foreign_identity() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token("spiffe://example.org/agents/a");

    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "evil root");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![
        SanType::URI("spiffe://evil.org/admin".try_into().unwrap()),
        SanType::URI("spiffe://example.org/sigil/admin/me".try_into().unwrap()),
        SanType::DnsName("bank.example".try_into().unwrap()),
    ];
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 2, 3, 4, 5],
        vec![0x05, 0x00],
    )];
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let (body, chain) = issued_chain(&server, &token, &csr);
    assert_eq!(body["spiffe_id"], "spiffe://example.org/agents/a");

    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    assert!(
        leaf.subject().iter().next().is_none(),
        "no subject from the CSR"
    );
    assert!(!leaf.is_ca());
    let sans = sans_of(&chain[0]);
    assert_eq!(sans, [r#"URI("spiffe://example.org/agents/a")"#]);
    assert!(
        leaf.extensions()
            .iter()
            .all(|e| e.oid.to_id_string() != "1.2.3.4.5"),
        "custom extension copied"
    );
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(!ku.key_cert_sign() && !ku.crl_sign());
    // Only the public key comes from the CSR.
    assert_eq!(
        leaf.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key)
    );
}

#[test]
fn openssl_csrs_with_extensions_and_a_sha384_signature_keep_their_own_p256_key() {
    let dir = DataDir::init();
    let server = dir.start();
    let work = dir.temp.path();
    let made = openssl(
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-sha384",
            "-subj",
            "/CN=agent",
            "-keyout",
            "k.pem",
            "-out",
            "req.pem",
            "-addext",
            "subjectKeyIdentifier=hash",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "subjectAltName=URI:spiffe://evil.org/x,DNS:evil.example",
        ],
        work,
    );
    assert!(made.status.success(), "{}", stderr(&made));
    let csr = std::fs::read_to_string(work.join("req.pem")).unwrap();
    let token = server.token("spiffe://example.org/agents/b");
    let (_, chain) = issued_chain(&server, &token, &csr);
    std::fs::write(work.join("leaf.der"), &chain[0]).unwrap();

    // openssl reads the leaf key as P-256 and it matches the agent's key.
    let text = openssl(
        &[
            "x509", "-inform", "DER", "-in", "leaf.der", "-noout", "-text",
        ],
        work,
    );
    let text = stdout(&text);
    assert!(text.contains("NIST CURVE: P-256"), "{text}");
    assert!(!text.contains("evil"), "{text}");
    assert!(text.contains("CA:FALSE"), "{text}");
    let leaf_key = openssl(
        &[
            "x509", "-inform", "DER", "-in", "leaf.der", "-noout", "-pubkey",
        ],
        work,
    );
    let own_key = openssl(&["pkey", "-in", "k.pem", "-pubout"], work);
    assert_eq!(stdout(&leaf_key), stdout(&own_key));
}

#[test]
fn p384_and_ed25519_keys_are_accepted() {
    let dir = DataDir::init();
    let server = dir.start();
    for alg in [&PKCS_ECDSA_P384_SHA384, &PKCS_ED25519] {
        let key = KeyPair::generate_for(alg).unwrap();
        let csr = CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let token = server.token("spiffe://example.org/agents/c");
        let (_, chain) = issued_chain(&server, &token, &csr);
        let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
        assert_eq!(
            leaf.public_key().raw,
            rcgen::PublicKeyData::subject_public_key_info(&key)
        );
    }
}

#[test]
fn refused_csrs_and_ttls_leave_the_token_usable() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--max-ttl", "2h"]);
    let token = server.token("spiffe://example.org/agents/d");
    let work = dir.temp.path();

    // A CSR whose signature does not verify.
    let (_, csr) = p256_csr();
    let mut der = pem::parse(&csr).unwrap().into_contents();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let forged = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der));
    assert_error(&server.redeem(&token, &forged), 400, "invalid_csr");

    // Weak or unsupported keys, made by openssl.
    for (name, args) in [
        ("rsa", vec!["-newkey", "rsa:2048"]),
        (
            "p521",
            vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-521"],
        ),
    ] {
        let out = format!("{name}.csr");
        let mut all = vec![
            "req",
            "-new",
            "-nodes",
            "-subj",
            "/",
            "-keyout",
            "/dev/null",
        ];
        all.extend(args.iter().copied());
        all.extend(["-out", out.as_str()]);
        let made = openssl(&all, work);
        assert!(made.status.success(), "{}", stderr(&made));
        let csr = std::fs::read_to_string(work.join(&out)).unwrap();
        assert_error(&server.redeem(&token, &csr), 400, "unsupported_key");
    }

    // An EC key with explicit curve parameters instead of a named curve.
    let made = openssl(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-param_enc",
            "explicit",
            "-genkey",
            "-noout",
            "-out",
            "explicit.key",
        ],
        work,
    );
    assert!(made.status.success(), "{}", stderr(&made));
    let made = openssl(
        &[
            "req",
            "-new",
            "-key",
            "explicit.key",
            "-subj",
            "/",
            "-out",
            "explicit.csr",
        ],
        work,
    );
    assert!(made.status.success(), "{}", stderr(&made));
    let explicit = std::fs::read_to_string(work.join("explicit.csr")).unwrap();
    let response = server.redeem(&token, &explicit);
    assert_error(&response, 400, "unsupported_key");
    assert!(String::from_utf8_lossy(&response.body).contains("explicit curve parameters"));

    // Lifetimes outside the bounds are refused, not clamped.
    let (_, csr) = p256_csr();
    for ttl in [7201, 59, 0] {
        let response = server.post_svid(json!({
            "csr": csr,
            "attestation": {"type": "join_token", "token": token},
            "ttl_seconds": ttl,
        }));
        assert_error(&response, 400, "invalid_ttl");
    }
    assert_eq!(
        dir.count("certificates"),
        2,
        "only the server and admin certificates"
    );

    // The token was not used up by any refusal, and an in-bounds TTL works.
    let response = server.post_svid(json!({
        "csr": csr,
        "attestation": {"type": "join_token", "token": token},
        "ttl_seconds": 7200,
    }));
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let body: Value = response.json().unwrap();
    let chain = chain_der(body["cert_chain_pem"].as_str().unwrap());
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    let lifetime = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert_eq!(lifetime, 7200 + 30, "TTL plus the clock-skew allowance");
}

#[test]
fn names_bound_by_the_admin_appear_and_names_from_the_csr_do_not() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token_with(json!({
        "spiffe_id": "spiffe://example.org/tools/kb",
        "dns_names": ["kb.internal.example"],
        "ip_addresses": ["10.1.2.3"],
    }));
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = CertificateParams::new(vec!["attacker.example".to_owned()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let (_, chain) = issued_chain(&server, &token, &csr);
    let sans = sans_of(&chain[0]);
    assert_eq!(
        sans,
        [
            r#"URI("spiffe://example.org/tools/kb")"#,
            r#"DNSName("kb.internal.example")"#,
            "IPAddress([10, 1, 2, 3])",
        ]
    );
}

#[test]
fn with_rsa_enabled_only_2048_to_4096_bit_keys_and_known_signatures_are_accepted() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--allow-rsa"]);
    let work = dir.temp.path();
    let csr = |name: &str, args: &[&str]| {
        let out = format!("{name}.csr");
        let mut all = vec![
            "req",
            "-new",
            "-nodes",
            "-subj",
            "/",
            "-keyout",
            "/dev/null",
        ];
        all.extend_from_slice(args);
        all.extend(["-out", out.as_str()]);
        let made = openssl(&all, work);
        assert!(made.status.success(), "{name}: {}", stderr(&made));
        std::fs::read_to_string(work.join(&out)).unwrap()
    };
    let token =
        server.token_with(json!({"spiffe_id": "spiffe://example.org/agents/rsa", "uses": 5}));

    let weak = csr("rsa1024", &["-newkey", "rsa:1024"]);
    let response = server.redeem(&token, &weak);
    assert_error(&response, 400, "unsupported_key");

    let pss = csr(
        "pss",
        &["-newkey", "rsa:2048", "-sigopt", "rsa_padding_mode:pss"],
    );
    let response = server.redeem(&token, &pss);
    assert_error(&response, 400, "invalid_csr");
    assert!(String::from_utf8_lossy(&response.body).contains("not supported"));

    let sha512 = csr(
        "ec512",
        &[
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-sha512",
        ],
    );
    let response = server.redeem(&token, &sha512);
    assert_error(&response, 400, "invalid_csr");
    assert!(String::from_utf8_lossy(&response.body).contains("not supported"));

    let good = csr("rsa2048", &["-newkey", "rsa:2048"]);
    let (_, chain) = issued_chain(&server, &token, &good);
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    assert_eq!(
        leaf.public_key().algorithm.algorithm.to_id_string(),
        "1.2.840.113549.1.1.1"
    );
}
