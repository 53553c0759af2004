//! Join tokens: single use, expiry, atomic redemption, stored only hashed,
//! and never for the CA's own namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use serde_json::{Value, json};

#[test]
fn a_token_works_once_and_a_second_use_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token("spiffe://example.org/agents/once");
    let (_, csr) = p256_csr();
    assert_eq!(server.redeem(&token, &csr).status, 200);
    assert_error(&server.redeem(&token, &csr), 401, "invalid_attestation");
}

#[test]
fn a_token_with_several_uses_grants_exactly_that_many() {
    let dir = DataDir::init();
    let server = dir.start();
    let token =
        server.token_with(json!({"spiffe_id": "spiffe://example.org/agents/fleet", "uses": 3}));
    let (_, csr) = p256_csr();
    for _ in 0..3 {
        assert_eq!(server.redeem(&token, &csr).status, 200);
    }
    assert_error(&server.redeem(&token, &csr), 401, "invalid_attestation");
}

#[test]
fn an_expired_token_is_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server
        .token_with(json!({"spiffe_id": "spiffe://example.org/agents/late", "ttl_seconds": 1}));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (_, csr) = p256_csr();
    let response = server.redeem(&token, &csr);
    assert_error(&response, 401, "invalid_attestation");
    assert!(String::from_utf8_lossy(&response.body).contains("expired"));
}

#[test]
fn unknown_malformed_and_forged_tokens_are_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let real = server.token("spiffe://example.org/agents/x");
    let (_, csr) = p256_csr();
    let mut forged = real.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for token in [
        "".to_owned(),
        "hunter2".to_owned(),
        "sigil_jt_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        forged,
    ] {
        assert_error(&server.redeem(&token, &csr), 401, "invalid_attestation");
    }
    assert_eq!(
        server.redeem(&real, &csr).status,
        200,
        "the real token kept its use"
    );
}

#[test]
fn twenty_concurrent_redemptions_of_a_one_use_token_yield_one_certificate() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token("spiffe://example.org/agents/race");
    let (_, csr) = p256_csr();
    let client = Arc::new(server.anonymous());
    let body = json!({"csr": csr, "attestation": {"type": "join_token", "token": token}});
    let statuses = block_on(async {
        let attempts: Vec<_> = (0..20)
            .map(|_| {
                let client = Arc::clone(&client);
                let body = body.clone();
                tokio::spawn(
                    async move { client.post_json("/v1/svid", &body).await.unwrap().status },
                )
            })
            .collect();
        let mut statuses = Vec::new();
        for attempt in attempts {
            statuses.push(attempt.await.unwrap().as_u16());
        }
        statuses
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        19,
        "{statuses:?}"
    );
    let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
    let agents: i64 = conn
        .query_row(
            "SELECT count(*) FROM certificates WHERE spiffe_id = 'spiffe://example.org/agents/race'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(agents, 1);
}

#[test]
fn no_token_can_be_created_for_the_cas_own_namespace() {
    let dir = DataDir::init();
    let server = dir.start();
    let admin = server.admin();
    for id in [
        "spiffe://example.org/sigil",
        "spiffe://example.org/sigil/server",
        "spiffe://example.org/sigil/admin/mallory",
        "spiffe://example.org/sigil/anything/else",
    ] {
        let response =
            block_on(admin.post_json("/admin/v1/join-tokens", &json!({"spiffe_id": id}))).unwrap();
        assert_error(&response, 403, "reserved_identity");
    }
    for id in [
        "spiffe://other.org/agents/x",
        "spiffe://example.org",
        "spiffe://example.org/a/../b",
        "not a uri",
    ] {
        let response =
            block_on(admin.post_json("/admin/v1/join-tokens", &json!({"spiffe_id": id}))).unwrap();
        assert_error(&response, 400, "invalid_spiffe_id");
    }
    // Neighbours of the reserved namespace are ordinary identities.
    let response = block_on(admin.post_json(
        "/admin/v1/join-tokens",
        &json!({"spiffe_id": "spiffe://example.org/sigilfan"}),
    ))
    .unwrap();
    assert_eq!(response.status, 201);
    assert_eq!(dir.count("join_tokens"), 1);
}

#[test]
fn token_options_outside_their_bounds_are_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let admin = server.admin();
    let id = "spiffe://example.org/agents/x";
    for (body, code) in [
        (json!({"spiffe_id": id, "ttl_seconds": 0}), "invalid_ttl"),
        (
            json!({"spiffe_id": id, "ttl_seconds": 86_401}),
            "invalid_ttl",
        ),
        (json!({"spiffe_id": id, "uses": 0}), "invalid_request"),
        (json!({"spiffe_id": id, "uses": 10_001}), "invalid_request"),
        (
            json!({"spiffe_id": id, "dns_names": ["*.example.org"]}),
            "invalid_request",
        ),
        (
            json!({"spiffe_id": id, "dns_names": ["not a name"]}),
            "invalid_request",
        ),
        (
            json!({"spiffe_id": id, "ip_addresses": ["10.0.0.300"]}),
            "invalid_request",
        ),
    ] {
        let response = block_on(admin.post_json("/admin/v1/join-tokens", &body)).unwrap();
        assert_error(&response, 400, code);
    }
    assert_eq!(dir.count("join_tokens"), 0);
}

#[test]
fn tokens_are_stored_only_as_hashes() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token("spiffe://example.org/agents/secret");
    let secret = join_token_secret(&token).to_owned();
    drop(server);
    let mut stored = Vec::new();
    for name in ["sigil.db", "sigil.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.file(name)) {
            stored.extend(bytes);
        }
    }
    assert!(!stored.is_empty());
    let contains = |needle: &[u8]| stored.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(token.as_bytes()), "the token is in the store");
    assert!(
        !contains(secret.as_bytes()),
        "the token's secret is in the store"
    );
    let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
    let hash: Vec<u8> = conn
        .query_row("SELECT hash FROM join_tokens", [], |r| r.get(0))
        .unwrap();
    let expected = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    assert_eq!(hash, expected.as_ref());
}

#[test]
fn token_create_prints_only_the_token_and_json_on_request() {
    let dir = DataDir::init();
    let _server = dir.start();
    let plain = sigil(&[
        "token",
        "create",
        "--data-dir",
        dir.arg(),
        "--spiffe-id",
        "spiffe://example.org/agents/cli",
    ]);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let printed = stdout(&plain);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 1, "{printed}");
    assert!(lines[0].starts_with("sigil_jt_"), "{printed}");

    let json_out = sigil(&[
        "token",
        "create",
        "--data-dir",
        dir.arg(),
        "--spiffe-id",
        "spiffe://example.org/agents/cli",
        "--ttl",
        "1h",
        "--uses",
        "2",
        "--dns",
        "cli.example",
        "--ip",
        "10.0.0.9",
        "--json",
    ]);
    assert!(json_out.status.success(), "{}", stderr(&json_out));
    let body: Value = serde_json::from_str(&stdout(&json_out)).unwrap();
    assert!(body["token"].as_str().unwrap().starts_with("sigil_jt_"));
    assert_eq!(body["uses"], 2);
    assert_eq!(body["spiffe_id"], "spiffe://example.org/agents/cli");

    let refused = sigil(&[
        "token",
        "create",
        "--data-dir",
        dir.arg(),
        "--spiffe-id",
        "spiffe://example.org/sigil/admin/x",
    ]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("reserved_identity"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn a_token_row_that_names_a_reserved_or_foreign_identity_mints_nothing() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token("spiffe://example.org/agents/tampered");
    let (_, csr) = p256_csr();
    let before = dir.count("certificates");
    let set_identity = |id: &str| {
        let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        conn.execute("UPDATE join_tokens SET spiffe_id = ?1", [id])
            .unwrap();
    };
    // As if someone wrote the store directly: redemption checks again.
    set_identity("spiffe://example.org/sigil/admin/mallory");
    assert_error(&server.redeem(&token, &csr), 403, "reserved_identity");
    set_identity("spiffe://other.org/agents/x");
    assert_error(&server.redeem(&token, &csr), 400, "invalid_spiffe_id");
    assert_eq!(dir.count("certificates"), before);
    set_identity("spiffe://example.org/agents/tampered");
    assert_eq!(server.redeem(&token, &csr).status, 200, "the use was kept");
}
