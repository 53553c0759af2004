//! Crash safety: while agents are issued and renewed and an admin revokes
//! some of them, `sigil serve` is killed with SIGKILL at random moments, 20
//! times. After each kill the store must pass SQLite's `integrity_check`,
//! hold every certificate any client received and every revocation the
//! admin was answered, hand no serial out twice, have its CRL numbers only
//! grown, and its audit log must verify; at the end every certificate a
//! client received is revoked.
//!
//! Ignored by default (about two minutes in a release build); run it with
//! `cargo test --release --test crash -- --ignored --nocapture`.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Value, json};
use sigil::client::{CaClient, ClientIdentity};

const ROUNDS: usize = 20;
const AGENTS: usize = 4;
const AGENT_ID: &str = "spiffe://example.org/agents/crash";

/// Where the server of this round listens, and the admin's credential.
struct CaAddress {
    url: String,
    bundle_pem: String,
    admin_chain_pem: String,
    admin_key_pem: String,
}

/// An admin until `stop`: revokes one of the certificates received so far
/// every 20 ms; every serial of a 200 answer goes into `revoked`.
fn admin(
    ca: &CaAddress,
    stop: &AtomicBool,
    received: &Mutex<Vec<String>>,
    revoked: &Mutex<Vec<String>>,
) {
    let identity = ClientIdentity {
        chain_pem: &ca.admin_chain_pem,
        key_pem: &ca.admin_key_pem,
    };
    let client = CaClient::new(&ca.url, &ca.bundle_pem, Some(identity)).unwrap();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        let target = {
            let received = received.lock().unwrap();
            if received.is_empty() {
                continue;
            }
            received[random_below(received.len() as u32) as usize].clone()
        };
        let body = json!({"serial": target, "reason": "keyCompromise"});
        if let Ok(response) = block_on(client.post_json("/admin/v1/revocations", &body))
            && response.status == 200
        {
            revoked.lock().unwrap().push(target);
        }
    }
}

/// What an agent holds after a 200.
struct Held {
    chain_pem: String,
    key_pem: String,
    serial: String,
}

/// One agent until `stop`: obtain an SVID, renew it once, again. Every
/// serial of a 200 answer goes into `received`. Failures are expected: the
/// server is killed under it.
fn agent(ca: &CaAddress, token: &str, stop: &AtomicBool, received: &Mutex<Vec<String>>) {
    let anonymous = CaClient::new(&ca.url, &ca.bundle_pem, None).unwrap();
    while !stop.load(Ordering::Relaxed) {
        let (key, csr) = p256_csr();
        let body = json!({
            "csr": csr,
            "attestation": {"type": "join_token", "token": token},
        });
        let Ok(response) = block_on(anonymous.post_json("/v1/svid", &body)) else {
            continue;
        };
        if response.status != 200 {
            continue;
        }
        let issued = held(&response.json().unwrap(), &key);
        received.lock().unwrap().push(issued.serial.clone());
        let (next_key, next_csr) = p256_csr();
        let identity = ClientIdentity {
            chain_pem: &issued.chain_pem,
            key_pem: &issued.key_pem,
        };
        let client = CaClient::new(&ca.url, &ca.bundle_pem, Some(identity)).unwrap();
        if let Ok(renewed) = block_on(client.post_json("/v1/renew", &json!({"csr": next_csr})))
            && renewed.status == 200
        {
            let renewed = held(&renewed.json().unwrap(), &next_key);
            received.lock().unwrap().push(renewed.serial);
        }
    }
}

fn held(body: &Value, key: &rcgen::KeyPair) -> Held {
    Held {
        chain_pem: body["cert_chain_pem"].as_str().unwrap().to_owned(),
        key_pem: key.serialize_pem(),
        serial: body["serial"].as_str().unwrap().to_owned(),
    }
}

fn random_below(bound: u32) -> u32 {
    let mut bytes = [0u8; 4];
    SystemRandom::new().fill(&mut bytes).unwrap();
    u32::from_le_bytes(bytes) % bound
}

#[test]
#[ignore = "crash test, about a minute: cargo test --release --test crash -- --ignored"]
fn sigkill_during_issuance_and_renewal_loses_nothing() {
    let dir = DataDir::init();
    // This test measures crashes, not the rate limiter.
    std::fs::write(
        dir.path.join("sigil.toml"),
        "rate_limit = 1000000\nrate_burst = 1000000\nrenewal_limit = 1000000\nrenewal_burst = 1000000\n",
    )
    .unwrap();
    let received = Mutex::new(Vec::<String>::new());
    let revoked = Mutex::new(Vec::<String>::new());
    let mut last_crl_number = 0i64;
    for round in 1..=ROUNDS {
        let mut server = dir.start();
        let token = server.token_with(json!({"spiffe_id": AGENT_ID, "uses": 10_000}));
        let before = received.lock().unwrap().len();
        let stop = AtomicBool::new(false);
        let ca = CaAddress {
            url: server.url.clone(),
            bundle_pem: server.bundle_pem.clone(),
            admin_chain_pem: std::fs::read_to_string(dir.file("admin/svid.pem")).unwrap(),
            admin_key_pem: std::fs::read_to_string(dir.file("admin/svid.key")).unwrap(),
        };
        std::thread::scope(|scope| {
            for _ in 0..AGENTS {
                scope.spawn(|| agent(&ca, &token, &stop, &received));
            }
            scope.spawn(|| admin(&ca, &stop, &received, &revoked));
            std::thread::sleep(Duration::from_millis(200 + u64::from(random_below(1000))));
            server.child.kill().unwrap();
            server.child.wait().unwrap();
            stop.store(true, Ordering::Relaxed);
        });
        drop(server);

        // With the server dead, the store as the crash left it:
        let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
        let integrity: String = conn
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(integrity, "ok", "round {round}");
        let received_now = received.lock().unwrap().clone();
        let mut lookup = conn
            .prepare("SELECT count(*) FROM certificates WHERE serial = ?1")
            .unwrap();
        for serial in &received_now {
            let found: i64 = lookup.query_row([serial], |row| row.get(0)).unwrap();
            assert_eq!(
                found, 1,
                "round {round}: {serial} was handed out but not stored"
            );
        }
        let mut is_revoked = conn
            .prepare("SELECT count(*) FROM revocations WHERE serial = ?1")
            .unwrap();
        for serial in revoked.lock().unwrap().iter() {
            let found: i64 = is_revoked.query_row([serial], |row| row.get(0)).unwrap();
            assert_eq!(
                found, 1,
                "round {round}: the revocation of {serial} was answered but lost"
            );
        }
        drop(is_revoked);
        let distinct: HashSet<&String> = received_now.iter().collect();
        assert_eq!(
            distinct.len(),
            received_now.len(),
            "a serial was handed out twice"
        );
        let crl_number: i64 = conn
            .query_row("SELECT coalesce(max(number), 0) FROM crls", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert!(
            crl_number >= last_crl_number,
            "round {round}: CRL numbers went back"
        );
        last_crl_number = crl_number;
        drop(lookup);
        drop(conn);
        let verified = sigil(&["audit", "verify", "--data-dir", dir.arg()]);
        assert!(
            verified.status.success(),
            "round {round}: {}",
            stderr(&verified)
        );
        println!(
            "round {round}: killed after {} new certificates ({} in all, {} revocations \
             answered), CRL number {crl_number}",
            received_now.len() - before,
            received_now.len(),
            revoked.lock().unwrap().len()
        );
    }

    // Every certificate a client received can be revoked.
    let server = dir.start();
    let admin = server.admin();
    let received = received.into_inner().unwrap();
    assert!(!received.is_empty(), "no certificate was issued at all");
    for serial in &received {
        let response = block_on(admin.post_json(
            "/admin/v1/revocations",
            &json!({"serial": serial, "reason": "keyCompromise"}),
        ))
        .unwrap();
        assert_eq!(
            response.status,
            200,
            "{serial}: {}",
            String::from_utf8_lossy(&response.body)
        );
    }
    let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
    let revoked: i64 = conn
        .query_row("SELECT count(*) FROM revocations", [], |row| row.get(0))
        .unwrap();
    assert!(revoked as usize >= received.len());
    println!(
        "revoked all {} certificates clients received",
        received.len()
    );
}
