//! Join tokens an attacker replays, lets expire, keeps past a ban, guesses,
//! forges, pads or cuts short, and a JWT for an attestor the CA does not
//! have. Every refusal is anonymous, so the CA counts it and writes one
//! `attestation.refuse` record per reason and source: each test checks
//! that record, and that no token lost a use and no certificate was made.

use serde_json::json;

use crate::common::*;
use crate::support::*;

/// A well-formed token no CA ever minted.
const GUESSED: &str = "sigil_jt_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[test]
fn replayed_single_use_token_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    assert_eq!(server.redeem(&token, &p256_csr().1).status, 200);
    let before = Snapshot::take(&dir);
    let replay = server.redeem(&token, &p256_csr().1);
    assert_error(&replay, 401, "invalid_attestation");
    assert!(error_message(&replay).contains("used up"));
    before.assert_unchanged_except_refusals(&dir, server, &[("used-up join token", 1)]);
}

#[test]
fn expired_token_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token_with(json!({"spiffe_id": AGENT_ID, "ttl_seconds": 1}));
    // Past its expiry (whole seconds): a precondition, not a measurement.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let before = Snapshot::take(&dir);
    let late = server.redeem(&token, &p256_csr().1);
    assert_error(&late, 401, "invalid_attestation");
    assert!(error_message(&late).contains("expired"));
    before.assert_unchanged_except_refusals(&dir, server, &[("expired join token", 1)]);
}

#[test]
fn token_made_before_its_identity_was_banned_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    ban(&server, AGENT_ID);
    let before = Snapshot::take(&dir);
    assert_error(&server.redeem(&token, &p256_csr().1), 403, "banned");
    before.assert_unchanged_except_refusals(
        &dir,
        server,
        &[("join token of a banned identity", 1)],
    );
}

#[test]
fn guessed_token_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let _real = server.token(AGENT_ID);
    let before = Snapshot::take(&dir);
    assert_error(
        &server.redeem(GUESSED, &p256_csr().1),
        401,
        "invalid_attestation",
    );
    before.assert_unchanged_except_refusals(&dir, server, &[("unknown join token", 1)]);
}

#[test]
fn forged_secret_for_a_real_token_id_is_refused() {
    // The id part of a token is public (it is logged); the secret is not.
    let dir = DataDir::init();
    let server = dir.start();
    let real = server.token(AGENT_ID);
    // `sigil_jt_` and 16 hex digits of id, `_`, then the secret.
    let (id_part, secret) = real.split_at("sigil_jt_0123456789abcdef_".len());
    let forged = format!("{id_part}{}", "A".repeat(secret.len()));
    assert_ne!(forged, real);
    let before = Snapshot::take(&dir);
    assert_error(
        &server.redeem(&forged, &p256_csr().1),
        401,
        "invalid_attestation",
    );
    before.assert_unchanged_except_refusals(&dir, server, &[("unknown join token", 1)]);
}

#[test]
fn token_with_trailing_bytes_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let real = server.token(AGENT_ID);
    let before = Snapshot::take(&dir);
    assert_error(
        &server.redeem(&format!("{real}AAAA"), &p256_csr().1),
        401,
        "invalid_attestation",
    );
    before.assert_unchanged_except_refusals(&dir, server, &[("malformed join token", 1)]);
}

#[test]
fn truncated_token_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let real = server.token(AGENT_ID);
    let before = Snapshot::take(&dir);
    assert_error(
        &server.redeem(&real[..real.len() - 1], &p256_csr().1),
        401,
        "invalid_attestation",
    );
    before.assert_unchanged_except_refusals(&dir, server, &[("malformed join token", 1)]);
}

#[test]
fn jwt_for_an_attestor_the_ca_does_not_have_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let before = Snapshot::take(&dir);
    let response = server.post_svid(json!({
        "csr": p256_csr().1,
        "attestation": {
            "type": "jwt",
            "attestor": "k8s-prod",
            "token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1zeXN0ZW06YWRtaW4ifQ.",
        },
    }));
    assert_error(&response, 401, "invalid_attestation");
    before.assert_unchanged_except_refusals(&dir, server, &[("jwt: unknown attestor", 1)]);
}

#[test]
fn guessing_tokens_gets_an_address_limited_and_a_good_token_waits_unspent() {
    let dir = DataDir::init();
    let server = dir.start_with(&[
        "--failed-attestation-limit",
        "0.001",
        "--failed-attestation-burst",
        "3",
    ]);
    let real = server.token(AGENT_ID);
    let before = Snapshot::take(&dir);
    for _ in 0..3 {
        assert_error(
            &server.redeem(GUESSED, &p256_csr().1),
            401,
            "invalid_attestation",
        );
    }
    let limited = server.redeem(GUESSED, &p256_csr().1);
    assert_error(&limited, 429, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    assert_error(&server.redeem(&real, &p256_csr().1), 429, "rate_limited");
    before.assert_unchanged_except_refusals(
        &dir,
        server,
        &[
            ("unknown join token", 3),
            ("too many failed attestations", 2),
        ],
    );
}
