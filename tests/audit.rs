//! The audit log: every state-changing call leaves exactly the records
//! expected, floods of refusals become one record, and `sigil audit verify`
//! detects any edited, removed or truncated record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn events(server: &Server) -> Vec<Value> {
    let body: Value = block_on(server.admin().get("/admin/v1/audit?limit=1000"))
        .unwrap()
        .json()
        .unwrap();
    body["events"].as_array().unwrap().clone()
}

fn actions(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

fn renew(server: &Server, chain_pem: &str, key_pem: &str) -> (Value, String) {
    let (key, csr) = p256_csr();
    let client = server.client_as(chain_pem, key_pem);
    let response = block_on(client.post_json("/v1/renew", &json!({"csr": csr}))).unwrap();
    (response.json().unwrap_or(Value::Null), key.serialize_pem())
}

#[test]
fn every_state_changing_call_leaves_exactly_the_expected_records() {
    let dir = DataDir::init();
    // The 25 refusals below are counted, not limited.
    let server = dir.start_with(&["--failed-attestation-burst", "100"]);
    let baseline = events(&server);
    assert_eq!(
        actions(&baseline),
        ["ca.init", "admin.credential", "svid.issue"]
    );
    assert_eq!(baseline[0]["actor"], "local");
    assert_eq!(baseline[2]["subject"], "spiffe://example.org/sigil/server");

    let admin = "spiffe://example.org/sigil/admin/admin";
    let id = "spiffe://example.org/agents/audited";
    let token = server.token(id);
    let (key, csr) = p256_csr();
    let issued: Value = server.redeem(&token, &csr).json().unwrap();
    let chain = issued["cert_chain_pem"].as_str().unwrap().to_owned();
    let (renewed, renewed_key) = renew(&server, &chain, &key.serialize_pem());
    let renewed_serial = renewed["serial"].as_str().unwrap().to_owned();
    let revoke = |body: Value| {
        let response = block_on(server.admin().post_json("/admin/v1/revocations", &body)).unwrap();
        assert_eq!(response.status, 200);
    };
    revoke(json!({"serial": renewed_serial, "reason": "superseded"}));
    revoke(json!({"spiffe_id": id}));
    let path = format!(
        "/admin/v1/bans/{}",
        id.replace(':', "%3A").replace('/', "%2F")
    );
    let lifted = block_on(
        server
            .admin()
            .request(http::Method::DELETE, &path, None, Vec::new()),
    )
    .unwrap();
    assert_eq!(lifted.status, 204);
    // A lineage fork: renew from the first certificate, whose line moved on.
    let token = server.token("spiffe://example.org/agents/forked");
    let (key, csr) = p256_csr();
    let first: Value = server.redeem(&token, &csr).json().unwrap();
    let first_chain = first["cert_chain_pem"].as_str().unwrap().to_owned();
    let (second, second_key) = renew(&server, &first_chain, &key.serialize_pem());
    let _ = renew(
        &server,
        second["cert_chain_pem"].as_str().unwrap(),
        &second_key,
    );
    let (fork, _) = renew(&server, &first_chain, &key.serialize_pem());
    assert_eq!(fork["error"]["code"], "lineage_fork");
    // Refusals write nothing now; they are counted.
    let (_, csr) = p256_csr();
    for _ in 0..25 {
        assert_eq!(
            server
                .redeem(
                    "sigil_jt_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                    &csr
                )
                .status,
            401
        );
    }
    let _ = renewed_key;

    let all = events(&server);
    let new = &all[baseline.len()..];
    assert_eq!(
        actions(new),
        [
            "token.create",
            "svid.issue",
            "svid.renew",
            "certificate.revoke",
            "identity.ban",
            "identity.unban",
            "token.create",
            "svid.issue",
            "svid.renew",
            "svid.renew",
            "identity.ban",
        ]
    );
    assert_eq!(
        (new[0]["actor"].as_str(), new[0]["subject"].as_str()),
        (Some(admin), Some(id))
    );
    assert_eq!(new[1]["subject"], issued["serial"]);
    assert_eq!(new[2]["details"]["parent_serial"], issued["serial"]);
    assert_eq!(new[3]["subject"].as_str(), Some(renewed_serial.as_str()));
    assert_eq!(new[3]["details"]["reason"], "superseded");
    assert_eq!(new[10]["details"]["reason"], "lineage_fork");
    assert_eq!(new[10]["subject"], "spiffe://example.org/agents/forked");
    for pair in all.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
        assert_eq!(
            pair[1]["seq"].as_u64(),
            pair[0]["seq"].as_u64().map(|s| s + 1)
        );
    }

    // `sigil audit tail` shows the same log, readable or as JSON lines.
    let tail = sigil(&[
        "audit",
        "tail",
        "--data-dir",
        dir.arg(),
        "--limit",
        "1000",
        "--json",
    ]);
    assert!(tail.status.success(), "{}", stderr(&tail));
    let lines: Vec<Value> = stdout(&tail)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, all);
    let readable = sigil(&[
        "audit",
        "tail",
        "--data-dir",
        dir.arg(),
        "--after",
        "3",
        "--limit",
        "1",
    ]);
    let text = stdout(&readable);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("token.create") && text.contains(admin),
        "{text}"
    );

    // At shutdown the refusals become one record, and the head is signed.
    assert!(server.terminate().success());
    let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
    let (count, details): (i64, String) = conn
        .query_row(
            "SELECT count(*), max(details) FROM audit_events WHERE action = 'attestation.refuse'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(count, 1);
    let details: Value = serde_json::from_str(&details).unwrap();
    assert_eq!(
        (details["count"].as_u64(), details["reason"].as_str()),
        (Some(25), Some("unknown join token"))
    );
    let verified = sigil(&["audit", "verify", "--data-dir", dir.arg()]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(
        stdout(&verified).contains("checkpoint"),
        "{}",
        stdout(&verified)
    );
}

/// A copy of the data dir with one SQL statement applied to its store.
fn tampered(dir: &DataDir, name: &str, sql: &str) -> std::path::PathBuf {
    let copy = dir.temp.path().join(name);
    let status = Command::new("cp")
        .arg("-a")
        .arg(&dir.path)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let conn = rusqlite::Connection::open(copy.join("sigil.db")).unwrap();
    conn.execute_batch(sql).unwrap();
    copy
}

fn verify(path: &Path) -> (bool, String) {
    let out = sigil(&["audit", "verify", "--data-dir", path.to_str().unwrap()]);
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

#[test]
fn audit_verify_names_the_first_edited_removed_or_truncated_record() {
    let dir = DataDir::init();
    let server = dir.start();
    for n in 0..4 {
        let _ = server.token(&format!("spiffe://example.org/agents/a{n}"));
    }
    assert!(server.terminate().success(), "shutdown signs a checkpoint");
    let (ok, output) = verify(&dir.path);
    assert!(ok, "an untouched log verifies: {output}");
    let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
    let last: i64 = conn
        .query_row("SELECT max(seq) FROM audit_events", [], |r| r.get(0))
        .unwrap();
    let checkpoint: i64 = conn
        .query_row("SELECT max(seq) FROM audit_checkpoints", [], |r| r.get(0))
        .unwrap();
    assert_eq!(checkpoint, last);
    drop(conn);

    for (n, column, value) in [
        (1, "time", "'2001-01-01T00:00:00Z'"),
        (2, "actor", "'spiffe://example.org/sigil/admin/mallory'"),
        (3, "action", "'token.delete'"),
        (4, "subject", "'spiffe://example.org/agents/other'"),
        (5, "details", "'{}'"),
        (5, "prev_hash", "'00'"),
        (6, "hash", "'00'"),
    ] {
        let sql = format!("UPDATE audit_events SET {column} = {value} WHERE seq = {n}");
        let copy = tampered(&dir, &format!("edit-{column}"), &sql);
        let (ok, output) = verify(&copy);
        assert!(!ok, "editing {column} of record {n} went unnoticed");
        assert!(
            output.contains(&format!("audit record {n}:")),
            "{column}: {output}"
        );
    }

    let copy = tampered(&dir, "removed", "DELETE FROM audit_events WHERE seq = 3");
    let (ok, output) = verify(&copy);
    assert!(
        !ok && output.contains("audit record 3:") && output.contains("missing"),
        "{output}"
    );

    let copy = tampered(
        &dir,
        "truncated",
        &format!("DELETE FROM audit_events WHERE seq >= {}", last - 1),
    );
    let (ok, output) = verify(&copy);
    assert!(!ok && output.contains("truncated"), "{output}");

    // Rewriting the last record with a matching hash keeps the chain
    // consistent, but contradicts the signed checkpoint.
    let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
    let (time, actor, action, details, prev): (String, String, String, String, String) = conn
        .query_row(
            "SELECT time, actor, action, details, prev_hash FROM audit_events WHERE seq = ?1",
            [last],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    let forged_subject = "spiffe://example.org/agents/innocent";
    let forged_hash = sigil::audit::record_hash(
        last as u64,
        &time,
        &actor,
        &action,
        forged_subject,
        &details,
        &prev,
    );
    let copy = tampered(
        &dir,
        "rewritten",
        &format!(
            "UPDATE audit_events SET subject = '{forged_subject}', hash = '{forged_hash}' WHERE seq = {last}"
        ),
    );
    let (ok, output) = verify(&copy);
    assert!(!ok && output.contains("checkpoint"), "{output}");
}

#[test]
fn a_log_truncated_behind_the_cas_back_is_not_re_signed() {
    let dir = DataDir::init();
    let server = dir.start();
    for n in 0..6 {
        let _ = server.token(&format!("spiffe://example.org/agents/b{n}"));
    }
    assert!(server.terminate().success());
    let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
    let signed: i64 = conn
        .query_row("SELECT max(seq) FROM audit_checkpoints", [], |r| r.get(0))
        .unwrap();
    // Someone with write access to the file removes the tail, then the CA
    // keeps working and appends new records over the gap.
    conn.execute("DELETE FROM audit_events WHERE seq >= 4", [])
        .unwrap();
    drop(conn);
    let server = dir.start();
    for n in 0..10 {
        let _ = server.token(&format!("spiffe://example.org/agents/c{n}"));
    }
    assert!(server.terminate().success());

    let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
    let newest: i64 = conn
        .query_row("SELECT max(seq) FROM audit_checkpoints", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        newest, signed,
        "the keeper refused to sign the rewritten log"
    );
    let (ok, output) = verify(&dir.path);
    assert!(!ok, "{output}");
    assert!(
        output.contains(&format!("audit record {signed}:")),
        "{output}"
    );
}
