//! `jwks = { url = "https://…", ca_file = "…", refresh = "1h" }`: the
//! keys come from a local HTTPS identity provider with its own test CA.
//! An unknown kid fetches them again (at most once a second), which picks
//! up a rotated key; an identity provider down at start-up, or one the
//! ca_file does not vouch for, does not stop the server but vouches for
//! no token.

use std::time::{Duration, Instant};

use serde_json::json;
use sigil::client::CaClient;

use crate::common::*;
use crate::fixture::*;
use crate::idp::{Idp, TestCa};
use crate::signer::{Signer, jwks};

/// How long after a fetch the CA may fetch again for an unknown kid (one
/// second), with a margin.
const REFETCH: Duration = Duration::from_millis(1100);

/// A data dir whose k8s-prod attestor reads its keys from `url`, trusting
/// the roots in `ca_pem`.
fn data_dir_for(url: &str, ca_pem: &str) -> DataDir {
    let dir = DataDir::init();
    Idps::new(&dir).write_jwks(&dir, false);
    std::fs::write(dir.file("idp-ca.pem"), ca_pem).unwrap();
    let jwks = format!(r#"{{ url = "{url}", ca_file = "idp-ca.pem", refresh = "1h" }}"#);
    std::fs::write(dir.file("sigil.toml"), config(&jwks)).unwrap();
    dir
}

fn k8s_token(signer: &Signer, service_account: &str) -> String {
    signer.token(&k8s_claims("agents", service_account))
}

#[test]
fn an_unknown_kid_fetches_the_jwks_again_and_picks_up_a_rotated_key() {
    let test_ca = TestCa::new("Sigil test IdP CA");
    let keys = tempfile::tempdir().unwrap();
    let k1 = Signer::rsa("k1", keys.path());
    let k2 = Signer::es256("k2");
    let idp = Idp::start(&test_ca, &jwks(&[&k1]));
    let dir = data_dir_for(&idp.url, &test_ca.ca_pem);
    let server = start_logging(&dir);
    assert_eq!(idp.fetches(), 1, "the keys are fetched at start-up");

    assert_eq!(
        issued_id(&attest(&server, "k8s-prod", &k8s_token(&k1, "one"))),
        "spiffe://example.org/k8s/agents/sa/one"
    );
    // The identity provider rotates to k2. Until the CA fetches again it
    // holds k1 (refresh is an hour away).
    idp.serve(&jwks(&[&k2]));
    assert_eq!(
        issued_id(&attest(&server, "k8s-prod", &k8s_token(&k1, "two"))),
        "spiffe://example.org/k8s/agents/sa/two"
    );
    assert_eq!(idp.fetches(), 1, "known keys fetch nothing");
    // A token with the new kid makes it fetch again, and is accepted.
    idp.wait_since_last_fetch(REFETCH);
    assert_eq!(
        issued_id(&attest(&server, "k8s-prod", &k8s_token(&k2, "three"))),
        "spiffe://example.org/k8s/agents/sa/three"
    );
    assert_eq!(idp.fetches(), 2, "one fetch for the unknown kid");
    // k1 is gone now.
    assert_refused(
        &attest(&server, "k8s-prod", &k8s_token(&k1, "four")),
        r#"the issuer has no key "k1""#,
    );

    // A flood of unknown kids fetches at most once a second.
    let stranger = Signer::es256("k9");
    let before = idp.fetches();
    let started = Instant::now();
    let mut flood = 0u64;
    while started.elapsed() < Duration::from_millis(2500) {
        assert_refused(
            &attest(&server, "k8s-prod", &k8s_token(&stranger, "x")),
            r#"the issuer has no key "k9""#,
        );
        flood += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let during = idp.fetches() - before;
    assert!(flood >= 20, "only {flood} requests");
    assert!(
        during >= 1,
        "an unknown kid fetched nothing in {elapsed:.1}s"
    );
    assert!(
        (during as f64) <= elapsed.ceil() + 1.0,
        "{flood} unknown kids in {elapsed:.1}s fetched {during} times"
    );
    for pair in idp.fetch_times()[1..].windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(900), "fetches {gap:?} apart");
    }
    // A token without a kid never fetches: with k1 gone, no key of the
    // set fits its RS256.
    idp.wait_since_last_fetch(REFETCH);
    let fetched = idp.fetches();
    let kidless = k1.sign(
        &json!({"alg": "RS256", "typ": "JWT"}),
        &k8s_claims("agents", "x"),
    );
    assert_refused(
        &attest(&server, "k8s-prod", &kidless),
        "the token names no kid",
    );
    assert_eq!(idp.fetches(), fetched);
    // The new key still works.
    assert_eq!(
        issued_id(&attest(&server, "k8s-prod", &k8s_token(&k2, "five"))),
        "spiffe://example.org/k8s/agents/sa/five"
    );

    assert!(server.terminate().success());
    let records = audit_records(&dir);
    let counts = refusal_counts(&records);
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [("jwt k8s-prod: jwt unknown key".to_owned(), flood + 2)]
    );
    assert_eq!(jwt_issues(&records).len(), 4);
}

#[test]
fn unknown_kids_neither_wait_for_nor_multiply_a_slow_fetch() {
    let test_ca = TestCa::new("Sigil test IdP CA");
    let key = Signer::es256("k1");
    let idp = Idp::start(&test_ca, &jwks(&[&key]));
    let dir = data_dir_for(&idp.url, &test_ca.ca_pem);
    let server = start_logging(&dir);
    assert_eq!(idp.fetches(), 1);
    let slow = Duration::from_secs(3);
    idp.set_delay(slow);
    idp.wait_since_last_fetch(REFETCH);
    std::thread::scope(|scope| {
        // The first unknown kid fetches, and waits for the answer.
        // (A Server is not Sync: the thread has a client of its own.)
        let (url, bundle) = (server.url.clone(), server.bundle_pem.clone());
        let unknown = k8s_token(&Signer::es256("k7"), "a");
        let first = scope.spawn(move || {
            let client = CaClient::new(&url, &bundle, None).unwrap();
            let (_, csr) = p256_csr();
            let body = json!({
                "csr": csr,
                "attestation": {"type": "jwt", "attestor": "k8s-prod", "token": unknown},
            });
            let started = Instant::now();
            let response = block_on(client.post_json("/v1/svid", &body)).unwrap();
            (response, started.elapsed())
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while idp.fetches() < 2 {
            assert!(Instant::now() < deadline, "no fetch for the unknown kid");
            std::thread::sleep(Duration::from_millis(10));
        }
        let fetching = Instant::now();
        // Others meanwhile neither queue behind it nor fetch again.
        let stranger = Signer::es256("k8");
        for _ in 0..5 {
            let started = Instant::now();
            assert_refused(
                &attest(&server, "k8s-prod", &k8s_token(&stranger, "b")),
                r#"the issuer has no key "k8""#,
            );
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "waited {:?}",
                started.elapsed()
            );
        }
        assert!(
            fetching.elapsed() < slow,
            "the requests took as long as the fetch"
        );
        let (response, took) = first.join().unwrap();
        assert_refused(&response, r#"the issuer has no key "k7""#);
        assert!(took >= slow, "{took:?}");
    });
    assert_eq!(idp.fetches(), 2);
    // The known key never needed any of it.
    idp.set_delay(Duration::ZERO);
    assert_eq!(
        issued_id(&attest(&server, "k8s-prod", &k8s_token(&key, "c"))),
        "spiffe://example.org/k8s/agents/sa/c"
    );
}

#[test]
fn an_identity_provider_down_at_start_up_does_not_stop_serve() {
    let test_ca = TestCa::new("Sigil test IdP CA");
    let key = Signer::es256("k1");
    let idp = Idp::start(&test_ca, &jwks(&[&key]));
    idp.set_down(true);
    let dir = data_dir_for(&idp.url, &test_ca.ca_pem);
    let server = start_logging(&dir);
    assert_eq!(idp.fetches(), 1);
    assert!(
        server.log().contains("could not fetch the JWKS"),
        "{}",
        server.log()
    );
    // No keys yet: every token is refused, and the CA tries again.
    idp.wait_since_last_fetch(REFETCH);
    assert_refused(
        &attest(&server, "k8s-prod", &k8s_token(&key, "early")),
        r#"the issuer has no key "k1""#,
    );
    assert_eq!(idp.fetches(), 2);
    // Once it is back, the next unknown kid brings the keys.
    idp.set_down(false);
    idp.wait_since_last_fetch(REFETCH);
    assert_eq!(
        issued_id(&attest(&server, "k8s-prod", &k8s_token(&key, "later"))),
        "spiffe://example.org/k8s/agents/sa/later"
    );
    assert_eq!(idp.fetches(), 3);
}

#[test]
fn a_jwks_server_the_ca_file_does_not_vouch_for_is_not_trusted() {
    let genuine = TestCa::new("Sigil test IdP CA");
    let other = TestCa::new("Another CA");
    let key = Signer::es256("k1");
    let idp = Idp::start(&genuine, &jwks(&[&key]));
    let dir = data_dir_for(&idp.url, &other.ca_pem);
    let server = start_logging(&dir);
    let refused = attest(&server, "k8s-prod", &k8s_token(&key, "bot"));
    assert_refused(&refused, r#"the issuer has no key "k1""#);
    assert_eq!(idp.fetches(), 0, "no request got past the TLS handshake");
    let log = server.log();
    assert!(
        log.contains("JWKS fetch failed") && log.contains("TLS"),
        "{log}"
    );
}
