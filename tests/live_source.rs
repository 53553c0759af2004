//! `sigil-verifier`'s live trust source against a real `sigil serve`:
//! bootstrap from a pinned fingerprint, every CRL fetched, the last good
//! material kept while the CA is away, and updates resumed when it returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use rustls::pki_types::{CertificateDer, UnixTime};
use serde_json::{Value, json};
use sigil_verifier::{Error, LiveSource, PeerIdentity, Policy, SpiffeClientVerifier};

/// A fresh SVID for `spiffe_id`: (chain, serial).
fn svid(server: &Server, spiffe_id: &str) -> (Vec<CertificateDer<'static>>, String) {
    let token = server.token(spiffe_id);
    let (_, csr) = p256_csr();
    let body: Value = server.redeem(&token, &csr).json().unwrap();
    let chain = chain_der(body["cert_chain_pem"].as_str().unwrap())
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    (chain, body["serial"].as_str().unwrap().to_owned())
}

fn verify(
    verifier: &SpiffeClientVerifier,
    chain: &[CertificateDer<'static>],
) -> Result<PeerIdentity, rustls::Error> {
    verifier.verify(&chain[0], &chain[1..], UnixTime::now())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_fingerprint_no_root_matches_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let wrong = format!("sha256:{}", "00".repeat(32));
    let result = runtime().block_on(
        LiveSource::from_fingerprint(&server.url, &wrong)
            .unwrap()
            .start(),
    );
    assert!(matches!(result, Err(Error::Fingerprint(_))), "{result:?}");
}

#[test]
fn malformed_urls_and_fingerprints_are_refused_up_front() {
    let good = format!("sha256:{}", "ab".repeat(32));
    for url in [
        "http://127.0.0.1:1",
        "127.0.0.1:1",
        "https://h:1/path",
        "https://h:1/?q",
    ] {
        assert!(
            matches!(
                LiveSource::from_fingerprint(url, &good),
                Err(Error::Fetch { .. })
            ),
            "{url}"
        );
    }
    assert!(matches!(
        LiveSource::from_fingerprint("https://127.0.0.1:1", "sha256:abc"),
        Err(Error::Fingerprint(_))
    ));
}

#[test]
fn a_bundle_from_another_ca_cannot_talk_to_this_one() {
    let dir = DataDir::init();
    let other = DataDir::init();
    let server = dir.start();
    let result = runtime().block_on(
        LiveSource::from_bundle_pem(&server.url, other.bundle_pem().as_bytes())
            .unwrap()
            .start(),
    );
    // Refused in the handshake, before anything was sent, and said so.
    assert!(
        matches!(result, Err(Error::UntrustedCa { .. })),
        "{result:?}"
    );
}

#[test]
fn bootstrap_pins_the_root_and_fetches_every_crl() {
    let dir = DataDir::init();
    let server = dir.start();
    let source = runtime()
        .block_on(
            LiveSource::from_fingerprint(&server.url, &dir.fingerprint)
                .unwrap()
                .start(),
        )
        .unwrap();
    assert_eq!(source.trust_domain().as_str(), TRUST_DOMAIN);
    assert_eq!(source.bundle_pem(), dir.bundle_pem());
    // The issuing CA's CRL and the root's: an SVID verifies with CRLs
    // required for every issuer.
    assert!(source.crl_number().is_some());
    let (chain, _) = svid(&server, "spiffe://example.org/a");
    let verifier = SpiffeClientVerifier::builder(
        source,
        Policy::deny_all().allow("spiffe://example.org/*").unwrap(),
    )
    .client_verifier();
    verify(&verifier, &chain).unwrap();
}

#[test]
fn the_last_good_material_stays_while_the_ca_is_away() {
    let dir = DataDir::init();
    let server = dir.start();
    let port = server.port();
    let runtime = runtime();
    let source = runtime
        .block_on(
            LiveSource::from_fingerprint(&server.url, &dir.fingerprint)
                .unwrap()
                .poll_wait(Duration::from_secs(1))
                .start(),
        )
        .unwrap();
    let verifier = SpiffeClientVerifier::builder(
        source.clone(),
        Policy::deny_all().allow("spiffe://example.org/*").unwrap(),
    )
    .client_verifier();
    let (chain, serial) = svid(&server, "spiffe://example.org/a");
    let identity = verify(&verifier, &chain).unwrap();
    let held = source.crl_number();

    // The CA goes away; several polls fail meanwhile.
    drop(server);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(source.crl_number(), held);
    verify(&verifier, &chain).unwrap();

    // It comes back on the same address; a revocation reaches the source.
    let listen = format!("127.0.0.1:{port}");
    let server = Server::spawn(
        &["serve", "--data-dir", dir.arg(), "--listen", &listen],
        dir.path.clone(),
    );
    let revoked = block_on(
        server
            .admin()
            .post_json("/admin/v1/revocations", &json!({"serial": serial})),
    )
    .unwrap();
    assert_eq!(revoked.status, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !source.is_revoked(&identity) {
        assert!(Instant::now() < deadline, "the revocation never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        verify(&verifier, &chain).unwrap_err(),
        rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
    );
    drop(runtime);
}
