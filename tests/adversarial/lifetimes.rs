//! Lifetimes beyond the CA's bounds (default 1 m to 24 h): refused with
//! `invalid_ttl`, never clamped, before a token is spent or a renewal line
//! moves.

use serde_json::json;

use crate::common::*;
use crate::support::*;

/// Redeems a good token asking for `ttl_seconds` written as `ttl` (raw
/// JSON), and asserts a 400 with `code` and no change.
fn issuance_refused(ttl: &str, code: &str) {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    let before = Snapshot::take(&dir);
    let body = serde_json::to_string(&svid_request(&p256_csr().1, &token)).unwrap();
    let body = format!("{},\"ttl_seconds\":{ttl}}}", &body[..body.len() - 1]);
    assert_error(&post_svid_bytes(&server, body.into_bytes()), 400, code);
    before.assert_unchanged(&dir, server);
}

#[test]
fn svid_ttl_above_the_maximum_is_refused_not_clamped() {
    issuance_refused("86401", "invalid_ttl");
}

#[test]
fn svid_ttl_below_the_minimum_is_refused_not_clamped() {
    issuance_refused("1", "invalid_ttl");
}

#[test]
fn svid_ttl_that_overflows_64_bits_is_refused() {
    issuance_refused("18446744073709551616", "invalid_request");
}

#[test]
fn renewal_ttl_above_the_maximum_is_refused_not_clamped() {
    let dir = DataDir::init();
    let server = dir.start();
    let agent = attest(&server, AGENT_ID);
    let before = Snapshot::take(&dir);
    let response = renew_with(
        &server,
        &agent,
        &json!({"csr": p256_csr().1, "ttl_seconds": 30 * 24 * 3600}),
    );
    assert_error(&response, 400, "invalid_ttl");
    before.assert_unchanged(&dir, server);
}
