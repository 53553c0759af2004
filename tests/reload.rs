//! SIGHUP reloads `sigil.toml`: the new TTL bounds, rate limits and admin
//! IDs apply to the next requests, a request in flight finishes on its
//! connection, and a broken file is refused with a log line saying why
//! while the configuration in force stays.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

fn write_config(dir: &DataDir, text: &str) {
    std::fs::write(dir.file("sigil.toml"), text).unwrap();
}

/// Sends SIGHUP and waits (up to 30 s) for the log to say how it went:
/// `true` for reloaded, `false` for refused.
fn hangup(server: &Server) -> bool {
    let count = |log: &str, what: &str| log.matches(what).count();
    let before = server.log();
    let (reloaded, refused) = (
        count(&before, "configuration reloaded"),
        count(&before, "configuration reload refused"),
    );
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = server.log();
        if count(&log, "configuration reloaded") > reloaded {
            return true;
        }
        if count(&log, "configuration reload refused") > refused {
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "no word of the reload in:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asks for a two-hour SVID.
fn two_hours(server: &Server, name: &str) -> sigil::client::Response {
    let token = server.token(&format!("spiffe://example.org/agents/{name}"));
    server.post_svid(json!({
        "csr": p256_csr().1,
        "attestation": {"type": "join_token", "token": token},
        "ttl_seconds": 7200,
    }))
}

#[test]
fn sighup_applies_a_new_config_keeps_connections_and_refuses_a_broken_one() {
    let dir = DataDir::init();
    write_config(&dir, "max_ttl = \"1h\"\n");
    let server = Server::spawn_logging(
        &["serve", "--data-dir", dir.arg(), "--listen", "127.0.0.1:0"],
        dir.path.clone(),
        "info",
    );
    assert_error(&two_hours(&server, "early"), 400, "invalid_ttl");

    // A long poll in flight across the reload: it must end normally, on
    // its connection, when the next CRL is published.
    let current = block_on(server.anonymous().get("/v1/crls")).unwrap();
    let after = current.headers["sigil-crl-number"]
        .to_str()
        .unwrap()
        .to_owned();
    let poller = server.anonymous();
    let in_flight = std::thread::spawn(move || {
        block_on(poller.get(&format!("/v1/crls?after={after}&wait=30")))
    });

    write_config(&dir, "max_ttl = \"3h\"\n");
    assert!(hangup(&server), "{}", server.log());
    let issued = two_hours(&server, "later");
    assert_eq!(
        issued.status,
        200,
        "{}",
        String::from_utf8_lossy(&issued.body)
    );

    // A revocation publishes a CRL: the poll in flight answers with it.
    let serial = issued.json::<Value>().unwrap()["serial"].clone();
    let revoked = block_on(server.admin().post_json(
        "/admin/v1/revocations",
        &json!({"serial": serial, "reason": "superseded"}),
    ))
    .unwrap();
    assert_eq!(revoked.status, 200);
    let polled = in_flight
        .join()
        .unwrap()
        .expect("the request in flight lost its connection");
    assert_eq!(polled.status, 200);

    // A broken file: refused, said why, and the config in force stays.
    write_config(&dir, "max_ttl = \"banana\"\n");
    assert!(!hangup(&server), "a broken config was taken");
    let log = server.log();
    let refusal = log
        .lines()
        .rfind(|line| line.contains("configuration reload refused"))
        .unwrap();
    assert!(refusal.contains("max_ttl"), "{refusal}");
    assert_eq!(two_hours(&server, "still").status, 200);

    // Admin IDs reload too: the data dir's admin is no longer one.
    write_config(
        &dir,
        "max_ttl = \"3h\"\nadmin_ids = [\"spiffe://example.org/sigil/admin/ops\"]\n",
    );
    assert!(hangup(&server), "{}", server.log());
    let refused = block_on(server.admin().get("/admin/v1/certificates")).unwrap();
    assert_error(&refused, 403, "forbidden");
}

#[test]
fn a_setting_only_a_restart_applies_is_named_in_the_log() {
    let dir = DataDir::init();
    let server = Server::spawn_logging(
        &["serve", "--data-dir", dir.arg(), "--listen", "127.0.0.1:0"],
        dir.path.clone(),
        "info",
    );
    write_config(&dir, "max_connections = 100\n");
    assert!(hangup(&server), "{}", server.log());
    let log = server.log();
    assert!(
        log.lines()
            .any(|line| line.contains("next restart") && line.contains("max_connections")),
        "{log}"
    );
}
