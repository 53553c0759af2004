//! CSRs the CA refuses with a 400 before it signs anything: no proof of
//! possession, a key it does not accept (`unsupported_key`), or not exactly
//! one well-formed PKCS#10 PEM block (`invalid_csr`). Each comes with a
//! good join token, which the refusal leaves unused.

use std::path::Path;

use crate::common::*;
use crate::support::*;

/// Starts a CA (with `serve` flags), makes a good token for [`AGENT_ID`]
/// and the CSR `make` writes in the test's work dir, redeems them, and
/// asserts a 400 with `code`, a message containing `hint`, and no change.
fn refused(serve: &[&str], make: impl FnOnce(&Path) -> String, code: &str, hint: &str) {
    let dir = DataDir::init();
    let server = dir.start_with(serve);
    let token = server.token(AGENT_ID);
    let csr = make(dir.temp.path());
    let before = Snapshot::take(&dir);
    let response = server.redeem(&token, &csr);
    assert_error(&response, 400, code);
    let message = error_message(&response);
    assert!(message.contains(hint), "{message}");
    before.assert_unchanged(&dir, server);
}

/// A good P-256 CSR (made by rcgen), as DER.
fn good_der() -> Vec<u8> {
    der_of(&p256_csr().1)
}

#[test]
fn csr_with_a_flipped_signature_byte_is_refused() {
    refused(
        &[],
        |_| {
            let mut der = good_der();
            let last = der.len() - 1;
            der[last] ^= 0x01;
            pem_block("CERTIFICATE REQUEST", der)
        },
        "invalid_csr",
        "signature does not verify",
    );
}

#[test]
fn csr_carrying_someone_elses_public_key_is_refused() {
    // Signed by the attacker's key, but carrying the victim's public key:
    // a certificate for a key the caller cannot use, or can pin on another.
    refused(
        &[],
        |_| {
            use rcgen::PublicKeyData;
            let (attacker, csr) = p256_csr();
            let victim = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let mut der = der_of(&csr);
            let (own, other) = (
                attacker.subject_public_key_info(),
                victim.subject_public_key_info(),
            );
            let at = der.windows(own.len()).position(|w| w == own).unwrap();
            der[at..at + other.len()].copy_from_slice(&other);
            pem_block("CERTIFICATE REQUEST", der)
        },
        "invalid_csr",
        "signature does not verify",
    );
}

#[test]
fn rsa_1024_key_is_refused_even_where_rsa_is_enabled() {
    refused(
        &["--allow-rsa"],
        |work| {
            openssl_csr(
                work,
                "rsa1024",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
                &[],
            )
        },
        "unsupported_key",
        "1024",
    );
}

#[test]
fn rsa_key_is_refused_where_rsa_is_not_enabled() {
    refused(
        &[],
        |work| {
            openssl_csr(
                work,
                "rsa2048",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                &[],
            )
        },
        "unsupported_key",
        "RSA",
    );
}

#[test]
fn secp256k1_key_is_refused() {
    refused(
        &[],
        |work| {
            openssl_csr(
                work,
                "k1",
                &[
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:secp256k1",
                ],
                &[],
            )
        },
        "unsupported_key",
        "1.3.132.0.10",
    );
}

#[test]
fn p521_key_is_refused() {
    refused(
        &[],
        |work| {
            openssl_csr(
                work,
                "p521",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
                &[],
            )
        },
        "unsupported_key",
        "1.3.132.0.35",
    );
}

#[test]
fn ec_key_with_explicit_curve_parameters_is_refused() {
    // Explicit parameters can smuggle a weak curve under P-256's name.
    refused(
        &[],
        |work| {
            openssl_csr(
                work,
                "explicit",
                &[P256, &["-pkeyopt", "ec_param_enc:explicit"]].concat(),
                &[],
            )
        },
        "unsupported_key",
        "explicit",
    );
}

#[test]
fn dsa_key_is_refused() {
    refused(
        &[],
        |work| {
            run_openssl(
                work,
                &[
                    "genpkey",
                    "-genparam",
                    "-algorithm",
                    "DSA",
                    "-pkeyopt",
                    "dsa_paramgen_bits:1024",
                    "-out",
                    "dsa.param",
                ],
            );
            openssl_csr(work, "dsa", &["-paramfile", "dsa.param"], &[])
        },
        "unsupported_key",
        "1.2.840.10040.4.1",
    );
}

#[test]
fn ed448_key_is_refused() {
    refused(
        &[],
        |work| openssl_csr(work, "ed448", &["-algorithm", "ED448"], &[]),
        "unsupported_key",
        "1.3.101.113",
    );
}

#[test]
fn csr_signed_with_an_unsupported_hash_is_refused() {
    // ECDSA with SHA-512 on P-256: well formed, but not an algorithm the
    // CA verifies; refused as such, not as a forged signature.
    refused(
        &[],
        |work| openssl_csr(work, "sha512", P256, &["-sha512"]),
        "invalid_csr",
        "1.2.840.10045.4.3.4",
    );
}

#[test]
fn truncated_der_inside_pem_is_refused() {
    refused(
        &[],
        |_| {
            let mut der = good_der();
            der.truncate(der.len() - 10);
            pem_block("CERTIFICATE REQUEST", der)
        },
        "invalid_csr",
        "PKCS#10",
    );
}

#[test]
fn trailing_garbage_after_the_der_is_refused() {
    refused(
        &[],
        |_| {
            let mut der = good_der();
            der.extend_from_slice(b"\x30\x03\x02\x01\x00garbage");
            pem_block("CERTIFICATE REQUEST", der)
        },
        "invalid_csr",
        "trailing data",
    );
}

#[test]
fn two_certificate_request_blocks_are_refused() {
    // Which key would be certified? Neither: exactly one block or nothing.
    refused(
        &[],
        |_| format!("{}{}", p256_csr().1, p256_csr().1),
        "invalid_csr",
        "found 2",
    );
}

#[test]
fn a_certificate_instead_of_a_csr_is_refused() {
    refused(
        &[],
        |_| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let params = rcgen::CertificateParams::new(vec!["spiffe.evil.org".to_owned()]).unwrap();
            params.self_signed(&key).unwrap().pem()
        },
        "invalid_csr",
        "CERTIFICATE",
    );
}

#[test]
fn a_certificate_disguised_as_a_csr_is_refused() {
    refused(
        &[],
        |_| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let params = rcgen::CertificateParams::new(vec!["spiffe.evil.org".to_owned()]).unwrap();
            let der = params.self_signed(&key).unwrap().der().to_vec();
            pem_block("CERTIFICATE REQUEST", der)
        },
        "invalid_csr",
        "PKCS#10",
    );
}

#[test]
fn a_private_key_instead_of_a_csr_is_refused_and_not_logged() {
    let dir = DataDir::init();
    let server = Server::spawn_logging(
        &["serve", "--data-dir", dir.arg(), "--listen", "127.0.0.1:0"],
        dir.path.clone(),
        "debug",
    );
    let token = server.token(AGENT_ID);
    let (key, _) = p256_csr();
    let key_pem = key.serialize_pem();
    let before = Snapshot::take(&dir);
    let response = server.redeem(&token, &key_pem);
    assert_error(&response, 400, "invalid_csr");
    assert!(error_message(&response).contains("PRIVATE KEY"));
    let log = server.log();
    for line in key_pem.lines().filter(|line| !line.starts_with("-----")) {
        assert!(!log.contains(line), "the key leaked into the log: {log}");
    }
    assert!(!body_text(&response).contains(key_pem.lines().nth(1).unwrap()));
    before.assert_unchanged(&dir, server);
}

#[test]
fn base64_garbage_inside_pem_armour_is_refused() {
    refused(
        &[],
        |_| {
            "-----BEGIN CERTIFICATE REQUEST-----\n!!not*base64%%\n-----END CERTIFICATE REQUEST-----\n"
                .to_owned()
        },
        "invalid_csr",
        "PEM",
    );
}
