//! The store cannot write: issuance answers 503 `unavailable`, hands out
//! nothing, and recovers by itself once writing works again.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

#[test]
fn a_store_locked_by_another_process_gives_503_and_issuance_recovers_when_it_is_released() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token_with(json!({
        "spiffe_id": "spiffe://example.org/agents/locked-out",
        "uses": 2,
    }));
    let before = dir.count("certificates");

    // Another process takes the database's write lock and keeps it for
    // longer than the store's busy timeout (10 s).
    let locker = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let body = dir.temp.path().join("svid.json");
    let request = json!({
        "csr": p256_csr().1,
        "attestation": {"type": "join_token", "token": token},
    });
    std::fs::write(&body, request.to_string()).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--cacert"])
        .arg(dir.file("bundle.pem"))
        .args(["-H", "content-type: application/json"])
        .args(["--data-binary", &format!("@{}", body.display())])
        .args(["-w", "\n%{http_code}"])
        .arg(format!("{}/v1/svid", server.url))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let (json_body, status) = text.rsplit_once('\n').unwrap();
    assert_eq!(status, "503", "{json_body}");
    let error: Value = serde_json::from_str(json_body).unwrap();
    assert_eq!(error["error"]["code"], "unavailable", "{json_body}");

    // Nothing was recorded, and the token kept its uses.
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    assert_eq!(dir.count("certificates"), before);
    for _ in 0..2 {
        let issued = server.redeem(&token, &p256_csr().1);
        assert_eq!(
            issued.status,
            200,
            "{}",
            String::from_utf8_lossy(&issued.body)
        );
    }
    assert_eq!(dir.count("certificates"), before + 2);
}

#[test]
fn status_says_degraded_while_the_store_cannot_write_and_ok_after() {
    let dir = DataDir::init();
    let server = dir.start();
    let status = || -> Value {
        let response = block_on(server.admin().get("/admin/v1/status")).unwrap();
        assert_eq!(response.status, 200);
        response.json().unwrap()
    };
    assert_eq!(status()["health"], "ok");

    let locker = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let degraded = status();
    assert_eq!(degraded["health"], "degraded", "{degraded}");
    assert!(
        degraded["problem"].as_str().unwrap().contains("store"),
        "{degraded}"
    );
    // What could still be read is still shown.
    assert!(degraded["issuers"].as_array().unwrap().len() == 2);
    // And `sigil status` says so in its exit code.
    let cli = sigil(&["status", "--data-dir", dir.arg()]);
    assert!(!cli.status.success(), "{}", stdout(&cli));
    assert!(
        stdout(&cli).contains("health        degraded"),
        "{}",
        stdout(&cli)
    );
    assert!(
        stderr(&cli).contains("the CA is degraded"),
        "{}",
        stderr(&cli)
    );

    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    assert_eq!(status()["health"], "ok");
}
