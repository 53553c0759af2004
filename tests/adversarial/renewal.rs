//! `POST /v1/renew` (mTLS with the agent's SVID) attacked with a revoked,
//! expired, foreign, CA, forged or superseded certificate. The route checks
//! the chain to the bundle and that this exact certificate is in the store
//! (401 `invalid_client_certificate` otherwise), then its state (403
//! `revoked`/`banned`), then its renewal line: a stolen SVID the line has
//! moved on from cannot fork a parallel line — renewing it bans the
//! identity and revokes its live certificates (403 `lineage_fork`).

use std::collections::BTreeSet;

use serde_json::json;
use sigil::client::Response;

use crate::common::*;
use crate::support::*;

/// Renews with a fresh CSR presenting `chain_pem` and `key_pem`.
fn renew_as(server: &Server, chain_pem: &str, key_pem: &str) -> Response {
    let client = server.client_as(chain_pem, key_pem);
    block_on(client.post_json("/v1/renew", &json!({"csr": p256_csr().1}))).unwrap()
}

/// Starts a CA with a live agent, and asserts that renewing with the
/// certificate `forge` makes from the data dir is refused with 401
/// `invalid_client_certificate` for the reason `hint` names, and changes
/// nothing but the audit log's count of the refusal.
fn refused_as_invalid(hint: &str, forge: impl FnOnce(&DataDir) -> (String, String)) {
    let dir = DataDir::init();
    let server = dir.start();
    let _agent = attest(&server, AGENT_ID);
    let (chain, key) = forge(&dir);
    let before = Snapshot::take(&dir);
    let response = renew_as(&server, &chain, &key);
    assert_error(&response, 401, "invalid_client_certificate");
    let message = error_message(&response);
    assert!(message.contains(hint), "{message}");
    before.assert_unchanged_except_refusals(
        &dir,
        server,
        &[("renewal: invalid_client_certificate", 1)],
    );
}

/// The refusal of a chain that does not verify to the bundle.
const CHAIN: &str = "does not verify";
/// The refusal of a certificate that verifies but is not in the store.
const NOT_ISSUED: &str = "not issued by this CA";

#[test]
fn renewal_with_a_revoked_svid_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let agent = attest(&server, AGENT_ID);
    let revoked = admin_post(
        &server,
        "/admin/v1/revocations",
        &json!({"serial": agent.serial, "reason": "keyCompromise"}),
    );
    assert_eq!(revoked.status, 200);
    let before = Snapshot::take(&dir);
    assert_error(&renew(&server, &agent).unwrap_err(), 403, "revoked");
    before.assert_unchanged_except_refusals(
        &dir,
        server,
        &[("renewal of a revoked certificate", 1)],
    );
}

#[test]
fn renewal_with_an_expired_svid_is_refused() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--min-ttl", "1s"]);
    let agent = attest_for(&server, AGENT_ID, Some(1));
    // Past its notAfter: a precondition, not a measurement.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let before = Snapshot::take(&dir);
    let response = renew(&server, &agent).unwrap_err();
    assert_error(&response, 401, "invalid_client_certificate");
    assert!(error_message(&response).contains(CHAIN));
    before.assert_unchanged_except_refusals(
        &dir,
        server,
        &[("renewal: invalid_client_certificate", 1)],
    );
}

#[test]
fn renewal_with_an_svid_of_a_foreign_ca_of_the_same_trust_domain_is_refused() {
    // Another `sigil init` of example.org: a perfectly good SVID of its CA.
    let foreign = DataDir::init();
    refused_as_invalid(CHAIN, |_| {
        mint(
            &foreign.read("ca/issuing.pem"),
            &foreign.read("ca/issuing.key"),
            AGENT_ID,
            false,
        )
    });
}

#[test]
fn renewal_with_a_leaf_signed_by_the_issuing_key_but_never_issued_is_refused() {
    // What a thief of the issuing key could mint: it verifies, but this
    // exact certificate is not in the store.
    refused_as_invalid(NOT_ISSUED, |dir| {
        mint(
            &dir.read("ca/issuing.pem"),
            &dir.read("ca/issuing.key"),
            AGENT_ID,
            false,
        )
    });
}

#[test]
fn renewal_with_a_twin_of_a_live_svid_minted_with_the_issuing_key_is_refused() {
    // The victim's serial and identity on the thief's key: the store
    // compares the whole certificate, not its serial.
    let dir = DataDir::init();
    let server = dir.start();
    let victim = attest(&server, AGENT_ID);
    let (chain, key) = mint_with_serial(
        &dir.read("ca/issuing.pem"),
        &dir.read("ca/issuing.key"),
        AGENT_ID,
        false,
        &hex::decode(&victim.serial).unwrap(),
    );
    assert_eq!(serial_of(&chain), victim.serial);
    let before = Snapshot::take(&dir);
    let response = renew_as(&server, &chain, &key);
    assert_error(&response, 401, "invalid_client_certificate");
    assert!(error_message(&response).contains(NOT_ISSUED));
    before.assert_unchanged_except_refusals(
        &dir,
        server,
        &[("renewal: invalid_client_certificate", 1)],
    );
}

#[test]
fn renewal_with_a_ca_true_certificate_is_refused() {
    refused_as_invalid(CHAIN, |dir| {
        mint(
            &dir.read("ca/issuing.pem"),
            &dir.read("ca/issuing.key"),
            AGENT_ID,
            true,
        )
    });
}

#[test]
fn renewal_with_the_issuing_ca_certificate_is_refused() {
    refused_as_invalid(CHAIN, |dir| {
        (dir.read("ca/issuing.pem"), dir.read("ca/issuing.key"))
    });
}

#[test]
fn renewal_with_the_root_ca_certificate_is_refused() {
    refused_as_invalid(CHAIN, |dir| {
        (dir.read("ca/root.pem"), dir.read("ca/root.key"))
    });
}

#[test]
fn renewal_without_a_client_certificate_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let _agent = attest(&server, AGENT_ID);
    let before = Snapshot::take(&dir);
    let response = block_on(
        server
            .anonymous()
            .post_json("/v1/renew", &json!({"csr": p256_csr().1})),
    )
    .unwrap();
    assert_error(&response, 401, "client_certificate_required");
    before.assert_unchanged_except_refusals(
        &dir,
        server,
        &[("renewal: client_certificate_required", 1)],
    );
}

#[test]
fn renewal_of_a_banned_identity_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let agent = attest(&server, AGENT_ID);
    ban(&server, AGENT_ID);
    let before = Snapshot::take(&dir);
    assert_error(&renew(&server, &agent).unwrap_err(), 403, "banned");
    before.assert_unchanged_except_refusals(&dir, server, &[("renewal: banned", 1)]);
}

#[test]
fn renewal_with_an_admin_credential_is_refused() {
    // Admin credentials are minted locally only; a stolen one dies with
    // its TTL.
    let dir = DataDir::init();
    let server = dir.start();
    let before = Snapshot::take(&dir);
    let response = renew_as(
        &server,
        &dir.read("admin/svid.pem"),
        &dir.read("admin/svid.key"),
    );
    assert_error(&response, 403, "reserved_identity");
    before.assert_unchanged(&dir, server);
}

#[test]
fn renewal_naming_another_identity_in_the_body_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let agent = attest(&server, AGENT_ID);
    let before = Snapshot::take(&dir);
    let response = renew_with(
        &server,
        &agent,
        &json!({"csr": p256_csr().1, "spiffe_id": "spiffe://example.org/sigil/admin/admin"}),
    );
    assert_error(&response, 400, "invalid_request");
    before.assert_unchanged(&dir, server);
}

#[test]
fn renewal_csr_with_a_flipped_signature_byte_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let agent = attest(&server, AGENT_ID);
    let mut der = der_of(&p256_csr().1);
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let forged = pem_block("CERTIFICATE REQUEST", der);
    let before = Snapshot::take(&dir);
    let response = renew_with(&server, &agent, &json!({"csr": forged}));
    assert_error(&response, 400, "invalid_csr");
    before.assert_unchanged(&dir, server);
}

/// The serials a change revoked.
fn revoked_serials(changes: &Changes) -> BTreeSet<String> {
    changes
        .added("revocations")
        .iter()
        .map(|row| row.get("serial").to_owned())
        .collect()
}

/// Asserts that the only changes are the designed consequences of a fork
/// on `spiffe_id`: a ban, the revocation of exactly `revoked`, fresh CRLs,
/// one `identity.ban` record — and no certificate.
fn assert_fork_consequences(changes: &Changes, spiffe_id: &str, revoked: &[&Agent]) {
    changes.assert_only_tables_changed(&["bans", "revocations", "crls", "crl_sequence"]);
    let bans: Vec<&str> = changes
        .added("bans")
        .iter()
        .map(|row| row.get("spiffe_id"))
        .collect();
    assert_eq!(bans, [spiffe_id]);
    let expected: BTreeSet<String> = revoked.iter().map(|a| a.serial.clone()).collect();
    assert_eq!(revoked_serials(changes), expected);
    assert_eq!(changes.audit_actions(), ["identity.ban"]);
    let details: serde_json::Value = serde_json::from_str(changes.audit[0].get("details")).unwrap();
    assert_eq!(details["reason"], "lineage_fork");
}

#[test]
fn renewal_from_an_svid_the_line_moved_on_from_bans_the_identity() {
    // A thief copied `first`; the agent has renewed twice since.
    let dir = DataDir::init();
    let server = dir.start();
    let first = attest(&server, AGENT_ID);
    let second = renew(&server, &first).unwrap();
    let third = renew(&server, &second).unwrap();
    let before = Snapshot::take(&dir);
    assert_error(&renew(&server, &first).unwrap_err(), 403, "lineage_fork");
    let changes = before.changes_after_stop(&dir, server);
    assert_fork_consequences(&changes, AGENT_ID, &[&first, &second, &third]);
}

#[test]
fn a_second_retry_from_the_parent_is_a_fork() {
    // One retry after a lost response is allowed (it revokes the unused
    // successor); a second means two holders.
    let dir = DataDir::init();
    let server = dir.start();
    let first = attest(&server, AGENT_ID);
    let _lost = renew(&server, &first).unwrap();
    let retried = renew(&server, &first).unwrap();
    let before = Snapshot::take(&dir);
    assert_error(&renew(&server, &first).unwrap_err(), 403, "lineage_fork");
    let changes = before.changes_after_stop(&dir, server);
    assert_fork_consequences(&changes, AGENT_ID, &[&first, &retried]);
}
