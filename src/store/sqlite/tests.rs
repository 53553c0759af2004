//! The store's operations, on a real SQLite file.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use sigil_core::SpiffeId;
use sigil_core::wire::Secret;

use super::*;
use crate::join_token;
use crate::store::{AttestationKind, TokenGrant};

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("sigil.db")).unwrap();
    (dir, store)
}

/// The writer thread, held inside a batch until [`HeldWriter::release`]:
/// whatever is sent to it meanwhile queues up as the next batch.
struct HeldWriter {
    release: std::sync::mpsc::Sender<()>,
    blocker: tokio::task::JoinHandle<Result<(), StoreError>>,
}

impl HeldWriter {
    fn hold(store: &SqliteStore) -> Self {
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let writer = store.clone();
        let blocker = tokio::spawn(async move {
            writer
                .run_on_writer(move |_| {
                    let _ = started_tx.send(());
                    let _ = held.recv();
                    Ok(())
                })
                .await
        });
        started.recv().unwrap();
        Self { release, blocker }
    }

    async fn release(self) {
        self.release.send(()).unwrap();
        self.blocker.await.unwrap().unwrap();
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp()).unwrap()
}

fn id(text: &str) -> SpiffeId {
    text.parse().unwrap()
}

fn record(serial: Serial) -> CertificateRecord {
    CertificateRecord {
        serial,
        spiffe_id: id("spiffe://example.org/agent"),
        issuer_key_id: "ab".to_owned(),
        not_before: now(),
        not_after: now() + Duration::from_secs(3600),
        attestation: AttestationKind::JoinToken,
        parent_serial: None,
        der: vec![1, 2, 3],
        created_at: now(),
    }
}

fn token(uses: u32, expires_at: OffsetDateTime) -> (Secret, NewJoinToken) {
    let minted = join_token::mint().unwrap();
    let new = NewJoinToken {
        id: minted.id,
        hash: minted.hash,
        grant: TokenGrant {
            spiffe_id: id("spiffe://example.org/agent"),
            dns_names: vec!["agent.example.org".to_owned()],
            ip_addresses: vec!["10.0.0.1".parse().unwrap()],
        },
        uses,
        expires_at,
        created_at: now(),
        created_by: id("spiffe://example.org/sigil/admin/root"),
    };
    (minted.token, new)
}

#[tokio::test]
async fn recorded_certificates_are_found_by_serial() {
    let (_dir, store) = open();
    let serial = Serial::generate().unwrap();
    store
        .record_certificate(record(serial), vec![])
        .await
        .unwrap();
    let found = store.find_certificate(serial).await.unwrap().unwrap();
    assert_eq!(found.record, record(serial));
    assert_eq!((found.revocation, found.banned), (None, false));
    let other = Serial::generate().unwrap();
    assert_eq!(store.find_certificate(other).await.unwrap(), None);
}

#[tokio::test]
async fn a_repeated_serial_is_refused_and_the_first_record_kept() {
    let (_dir, store) = open();
    let serial = Serial::generate().unwrap();
    store
        .record_certificate(record(serial), vec![])
        .await
        .unwrap();
    let mut second = record(serial);
    second.der = vec![9];
    let error = store.record_certificate(second, vec![]).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
    assert_eq!(
        store
            .find_certificate(serial)
            .await
            .unwrap()
            .unwrap()
            .record
            .der,
        vec![1, 2, 3]
    );
}

fn certificate_for(grant_id: &str) -> CertificateRecord {
    CertificateRecord {
        spiffe_id: id(grant_id),
        ..record(Serial::generate().unwrap())
    }
}

async fn stored_token(store: &SqliteStore, uses: u32, ttl: Duration) -> (String, TokenHash) {
    let (secret, new) = token(uses, now() + ttl);
    let token_id = new.id.clone();
    store.create_join_token(new, vec![]).await.unwrap();
    (token_id, join_token::hash(&secret))
}

#[tokio::test]
async fn a_token_grants_exactly_its_uses_and_peeking_takes_none() {
    let (_dir, store) = open();
    let (token_id, hash) = stored_token(&store, 2, Duration::from_secs(600)).await;
    for _ in 0..3 {
        let peeked = store
            .peek_join_token(token_id.clone(), hash, now())
            .await
            .unwrap();
        assert!(matches!(peeked, Redemption::Granted(_)));
    }
    for _ in 0..2 {
        let certificate = certificate_for("spiffe://example.org/agent");
        let serial = certificate.serial;
        let outcome = store
            .redeem_join_token(token_id.clone(), hash, now(), certificate, vec![])
            .await
            .unwrap();
        let Redemption::Granted(grant) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(grant.dns_names, ["agent.example.org"]);
        assert!(store.find_certificate(serial).await.unwrap().is_some());
    }
    let certificate = certificate_for("spiffe://example.org/agent");
    let serial = certificate.serial;
    let outcome = store
        .redeem_join_token(token_id.clone(), hash, now(), certificate, vec![])
        .await
        .unwrap();
    assert_eq!(outcome, Redemption::UsedUp);
    assert_eq!(
        store.find_certificate(serial).await.unwrap(),
        None,
        "a refused redemption records nothing"
    );
    assert_eq!(
        store.peek_join_token(token_id, hash, now()).await.unwrap(),
        Redemption::UsedUp
    );
}

#[tokio::test]
async fn expired_unknown_and_mismatched_tokens_grant_nothing_and_keep_their_uses() {
    let (_dir, store) = open();
    let (token_id, hash) = stored_token(&store, 1, Duration::from_secs(60)).await;
    let later = now() + Duration::from_secs(61);
    let mut wrong = hash;
    wrong[0] ^= 1;
    for (token, presented, at, expected) in [
        (token_id.clone(), hash, later, Redemption::Expired),
        (token_id.clone(), wrong, now(), Redemption::Unknown),
        (
            "0000000000000000".to_owned(),
            hash,
            now(),
            Redemption::Unknown,
        ),
    ] {
        let certificate = certificate_for("spiffe://example.org/agent");
        let outcome = store
            .redeem_join_token(token, presented, at, certificate, vec![])
            .await
            .unwrap();
        assert_eq!(outcome, expected);
    }
    // None of the refusals took the one use.
    let outcome = store
        .redeem_join_token(
            token_id,
            hash,
            now(),
            certificate_for("spiffe://example.org/agent"),
            vec![],
        )
        .await
        .unwrap();
    assert!(matches!(outcome, Redemption::Granted(_)));
}

#[tokio::test]
async fn a_redemption_whose_certificate_cannot_be_recorded_keeps_the_use_and_audits_nothing() {
    let event = || {
        vec![crate::audit::AuditEvent::now(
            "spiffe://example.org/agent",
            "svid.issue",
            "serial",
            serde_json::json!({}),
        )]
    };
    let (_dir, store) = open();
    let (token_id, hash) = stored_token(&store, 1, Duration::from_secs(600)).await;
    let taken = Serial::generate().unwrap();
    store
        .record_certificate(record(taken), vec![])
        .await
        .unwrap();

    // The certificate's serial is already recorded: nothing commits.
    let mut duplicate = certificate_for("spiffe://example.org/agent");
    duplicate.serial = taken;
    let error = store
        .redeem_join_token(token_id.clone(), hash, now(), duplicate, event())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");

    // A certificate for another identity than the token grants.
    let other = certificate_for("spiffe://example.org/someone-else");
    let error = store
        .redeem_join_token(token_id.clone(), hash, now(), other, event())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error}");

    assert!(
        store.audit_page(0, 10).await.unwrap().is_empty(),
        "nothing committed, nothing audited"
    );

    let outcome = store
        .redeem_join_token(
            token_id,
            hash,
            now(),
            certificate_for("spiffe://example.org/agent"),
            event(),
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, Redemption::Granted(_)),
        "the use was kept"
    );
    let audited = store.audit_page(0, 10).await.unwrap();
    assert_eq!(
        audited.len(),
        1,
        "the issuance and its record commit together"
    );
    assert_eq!(audited[0].action, "svid.issue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_through_two_stores_on_one_file_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.db");
    // Two writers, as when `sigil serve` and a CLI command share a data dir.
    let stores = [
        Arc::new(SqliteStore::open(&path).unwrap()),
        Arc::new(SqliteStore::open(&path).unwrap()),
    ];
    let (token_id, hash) = stored_token(&stores[0], 1, Duration::from_secs(600)).await;
    let attempts: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&stores[i % 2]);
            let token_id = token_id.clone();
            tokio::spawn(async move {
                let certificate = certificate_for("spiffe://example.org/agent");
                store
                    .redeem_join_token(token_id, hash, now(), certificate, vec![])
                    .await
            })
        })
        .collect();
    let mut granted = 0;
    for attempt in attempts {
        match attempt.await.unwrap().unwrap() {
            Redemption::Granted(_) => granted += 1,
            Redemption::UsedUp => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(granted, 1);
    let conn = Connection::open(&path).unwrap();
    let recorded: i64 = conn
        .query_row("SELECT count(*) FROM certificates", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recorded, 1, "only the winner's certificate is recorded");
}

#[tokio::test]
async fn two_open_stores_on_one_file_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.db");
    let first = SqliteStore::open(&path).unwrap();
    let second = SqliteStore::open(&path).unwrap();
    let (a, b) = (Serial::generate().unwrap(), Serial::generate().unwrap());
    first.record_certificate(record(a), vec![]).await.unwrap();
    second.record_certificate(record(b), vec![]).await.unwrap();
    assert!(second.find_certificate(a).await.unwrap().is_some());
    assert!(first.find_certificate(b).await.unwrap().is_some());
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::latest_version());
}

#[test]
fn a_store_from_a_newer_sigil_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", schema::latest_version() + 1)
        .unwrap();
    drop(conn);
    let error = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
}

/// Signs nothing: records what a CRL would list, for the store's own tests.
struct ListingSigner;

impl crate::revocation::CrlSigner for ListingSigner {
    fn sign_crl(
        &self,
        issuer_key_id: &str,
        number: u64,
        entries: &[crate::revocation::RevokedEntry],
        now: OffsetDateTime,
    ) -> Result<crate::revocation::SignedCrl, String> {
        Ok(crate::revocation::SignedCrl {
            issuer_key_id: issuer_key_id.to_owned(),
            number,
            this_update: now,
            next_update: now + Duration::from_secs(3600),
            der: entries
                .iter()
                .flat_map(|e| e.serial.as_bytes().to_vec())
                .collect(),
        })
    }
}

fn revocation(target: crate::store::RevocationTarget) -> crate::store::RevocationRequest {
    crate::store::RevocationRequest {
        target,
        reason: crate::revocation::ReasonCode::KeyCompromise,
        by: id("spiffe://example.org/sigil/admin/root"),
        now: now(),
    }
}

#[tokio::test]
async fn revoking_a_serial_publishes_a_crl_listing_it_once() {
    use crate::store::{RevocationOutcome, RevocationTarget};
    let (_dir, store) = open();
    let (a, b) = (Serial::generate().unwrap(), Serial::generate().unwrap());
    store.record_certificate(record(a), vec![]).await.unwrap();
    store.record_certificate(record(b), vec![]).await.unwrap();
    let signer = Arc::new(ListingSigner);

    let outcome = store
        .revoke(
            revocation(RevocationTarget::Serial(a)),
            signer.clone(),
            Box::new(|_| Vec::new()),
        )
        .await
        .unwrap();
    let RevocationOutcome::Revoked { serials, crls, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(serials, [a]);
    assert_eq!(crls.len(), 1);
    assert_eq!(crls[0].der, a.as_bytes().to_vec());
    let first_number = crls[0].number;

    // Again: idempotent, and no new CRL.
    let again = store
        .revoke(
            revocation(RevocationTarget::Serial(a)),
            signer.clone(),
            Box::new(|_| Vec::new()),
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        RevocationOutcome::Revoked {
            serials: vec![a],
            crls: vec![],
            changed: false,
        }
    );
    let stored = store.find_certificate(a).await.unwrap().unwrap();
    assert_eq!(
        stored.revocation.map(|r| r.reason),
        Some(crate::revocation::ReasonCode::KeyCompromise)
    );
    assert!(
        store
            .find_certificate(b)
            .await
            .unwrap()
            .unwrap()
            .revocation
            .is_none()
    );

    let unknown = store
        .revoke(
            revocation(RevocationTarget::Serial(Serial::generate().unwrap())),
            signer.clone(),
            Box::new(|_| Vec::new()),
        )
        .await
        .unwrap();
    assert_eq!(unknown, RevocationOutcome::UnknownSerial);

    let outcome = store
        .revoke(
            revocation(RevocationTarget::Serial(b)),
            signer,
            Box::new(|_| Vec::new()),
        )
        .await
        .unwrap();
    let RevocationOutcome::Revoked { crls, .. } = outcome else {
        panic!()
    };
    assert!(crls[0].number > first_number, "CRL numbers only grow");
    let mut expected = [a, b];
    expected.sort();
    assert_eq!(
        crls[0].der,
        expected
            .iter()
            .flat_map(|s| s.as_bytes().to_vec())
            .collect::<Vec<_>>()
    );
    assert_eq!(store.current_crls().await.unwrap(), crls);
}

#[tokio::test]
async fn revoking_an_identity_revokes_its_live_certificates_and_bans_it_until_lifted() {
    use crate::store::{RevocationOutcome, RevocationTarget};
    let (_dir, store) = open();
    let live = Serial::generate().unwrap();
    store
        .record_certificate(record(live), vec![])
        .await
        .unwrap();
    let mut expired = record(Serial::generate().unwrap());
    expired.not_after = now() - Duration::from_secs(10);
    store
        .record_certificate(expired.clone(), vec![])
        .await
        .unwrap();
    let (token_id, hash) = stored_token(&store, 1, Duration::from_secs(600)).await;

    let agent = id("spiffe://example.org/agent");
    let outcome = store
        .revoke(
            revocation(RevocationTarget::Identity(agent.clone())),
            Arc::new(ListingSigner),
            Box::new(|_| Vec::new()),
        )
        .await
        .unwrap();
    let RevocationOutcome::Revoked { serials, .. } = outcome else {
        panic!()
    };
    assert_eq!(serials, [live], "only the live certificate");
    assert!(store.is_banned(agent.clone()).await.unwrap());
    assert!(store.find_certificate(live).await.unwrap().unwrap().banned);
    assert_eq!(
        store
            .peek_join_token(token_id.clone(), hash, now())
            .await
            .unwrap(),
        Redemption::Banned(agent.clone())
    );
    let refused = store
        .redeem_join_token(
            token_id.clone(),
            hash,
            now(),
            certificate_for("spiffe://example.org/agent"),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(refused, Redemption::Banned(agent.clone()));

    assert!(store.lift_ban(agent.clone(), vec![]).await.unwrap());
    assert!(!store.lift_ban(agent.clone(), vec![]).await.unwrap());
    assert!(matches!(
        store.peek_join_token(token_id, hash, now()).await.unwrap(),
        Redemption::Granted(_)
    ));
}

#[tokio::test]
async fn crl_numbers_keep_growing_across_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.db");
    let first = SqliteStore::open(&path).unwrap();
    let a = first
        .publish_crl("aa".to_owned(), now(), Arc::new(ListingSigner))
        .await
        .unwrap();
    let b = first
        .publish_crl("bb".to_owned(), now(), Arc::new(ListingSigner))
        .await
        .unwrap();
    drop(first);
    let second = SqliteStore::open(&path).unwrap();
    let c = second
        .publish_crl("aa".to_owned(), now(), Arc::new(ListingSigner))
        .await
        .unwrap();
    assert!(a.number < b.number && b.number < c.number);
    let current = second.current_crls().await.unwrap();
    assert_eq!(
        current.iter().map(|crl| crl.number).collect::<Vec<_>>(),
        [b.number, c.number]
    );
}

#[tokio::test]
async fn crl_numbers_after_a_restore_from_an_older_copy_still_exceed_those_served_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.db");
    let backup = dir.path().join("backup.db");
    let live = SqliteStore::open(&path).unwrap();
    let at = now();
    live.publish_crl("aa".to_owned(), at, Arc::new(ListingSigner))
        .await
        .unwrap();
    // A consistent copy, as SQLite's online backup makes it (the WAL may
    // hold the newest pages).
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("VACUUM INTO ?1", [backup.to_str().unwrap()])
        .unwrap();
    drop(live);
    // After the backup, the live store serves more CRLs...
    let live = SqliteStore::open(&path).unwrap();
    let mut served = 0;
    for _ in 0..5 {
        served = live
            .publish_crl("aa".to_owned(), at, Arc::new(ListingSigner))
            .await
            .unwrap()
            .number;
    }
    drop(live);
    // ...then is lost, and the backup restored a second later.
    let restored = SqliteStore::open(&backup).unwrap();
    let next = restored
        .publish_crl(
            "aa".to_owned(),
            at + time::Duration::seconds(1),
            Arc::new(ListingSigner),
        )
        .await
        .unwrap();
    assert!(next.number > served, "{} after {served}", next.number);
}

fn renewal_of(parent: &CertificateRecord) -> CertificateRecord {
    CertificateRecord {
        parent_serial: Some(parent.serial),
        attestation: AttestationKind::Renewal,
        ..record(Serial::generate().unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_renewals_of_one_certificate_through_two_stores_continue_the_line_once() {
    use crate::store::RenewalOutcome;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.db");
    let stores = [
        Arc::new(SqliteStore::open(&path).unwrap()),
        Arc::new(SqliteStore::open(&path).unwrap()),
    ];
    let first = record(Serial::generate().unwrap());
    stores[0]
        .record_certificate(first.clone(), vec![])
        .await
        .unwrap();
    let attempts: Vec<_> = (0..2)
        .map(|i| {
            let store = Arc::clone(&stores[i]);
            let renewal = renewal_of(&first);
            tokio::spawn(async move {
                let serial = renewal.serial;
                let outcome = store
                    .renew(
                        renewal,
                        now(),
                        Arc::new(ListingSigner),
                        Box::new(|_| Vec::new()),
                    )
                    .await
                    .unwrap();
                (serial, outcome)
            })
        })
        .collect();
    let mut results = Vec::new();
    for attempt in attempts {
        results.push(attempt.await.unwrap());
    }
    // One continues the line; the other arrived as a retry and revoked it,
    // or found the line moved on: never two live heads.
    let live: Vec<Serial> = {
        let mut live = Vec::new();
        for (serial, outcome) in &results {
            if matches!(outcome, RenewalOutcome::Renewed { .. })
                && store_revocation(&stores[0], *serial).await.is_none()
            {
                live.push(*serial);
            }
        }
        live
    };
    assert_eq!(live.len(), 1, "{results:?}");
}

async fn store_revocation(store: &SqliteStore, serial: Serial) -> Option<crate::store::Revocation> {
    store
        .find_certificate(serial)
        .await
        .unwrap()
        .and_then(|c| c.revocation)
}

#[tokio::test]
async fn lineage_moves_the_head_and_a_stale_certificate_forks_the_identity() {
    use crate::store::RenewalOutcome;
    let (_dir, store) = open();
    let first = record(Serial::generate().unwrap());
    store
        .record_certificate(first.clone(), vec![])
        .await
        .unwrap();
    let second = renewal_of(&first);
    let outcome = store
        .renew(
            second.clone(),
            now(),
            Arc::new(ListingSigner),
            Box::new(|_| Vec::new()),
        )
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        RenewalOutcome::Renewed {
            superseded: None,
            ..
        }
    ));
    let third = renewal_of(&second);
    store
        .renew(
            third.clone(),
            now(),
            Arc::new(ListingSigner),
            Box::new(|_| Vec::new()),
        )
        .await
        .unwrap();
    // `first` renews again: the line is two steps ahead.
    let audited = Box::new(|outcome: &RenewalOutcome| {
        vec![crate::audit::AuditEvent::now(
            "x",
            if matches!(outcome, RenewalOutcome::Fork { .. }) {
                "identity.ban"
            } else {
                "svid.renew"
            },
            "s",
            serde_json::json!({}),
        )]
    });
    let outcome = store
        .renew(renewal_of(&first), now(), Arc::new(ListingSigner), audited)
        .await
        .unwrap();
    let RenewalOutcome::Fork { revoked, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(revoked.len(), 3, "every live certificate of the identity");
    assert!(store.is_banned(first.spiffe_id.clone()).await.unwrap());
    let audit = store.audit_page(0, 10).await.unwrap();
    assert_eq!(
        audit.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["identity.ban"]
    );
}

#[tokio::test]
async fn a_crl_drops_entries_whose_certificate_expired_more_than_the_grace_ago() {
    use crate::store::RevocationTarget;
    let (_dir, store) = open();
    let live = record(Serial::generate().unwrap());
    let mut long_gone = record(Serial::generate().unwrap());
    long_gone.not_after = now() - Duration::from_secs(2 * 3600);
    let mut just_expired = record(Serial::generate().unwrap());
    just_expired.not_after = now() - Duration::from_secs(60);
    for cert in [&live, &long_gone, &just_expired] {
        store
            .record_certificate(cert.clone(), vec![])
            .await
            .unwrap();
        store
            .revoke(
                revocation(RevocationTarget::Serial(cert.serial)),
                Arc::new(ListingSigner),
                Box::new(|_| Vec::new()),
            )
            .await
            .unwrap();
    }
    let crl = store
        .publish_crl("ab".to_owned(), now(), Arc::new(ListingSigner))
        .await
        .unwrap();
    let listed: Vec<&[u8]> = crl.der.chunks(16).collect();
    assert!(listed.contains(&live.serial.as_bytes().as_slice()));
    assert!(
        listed.contains(&just_expired.serial.as_bytes().as_slice()),
        "within the grace"
    );
    assert!(
        !listed.contains(&long_gone.serial.as_bytes().as_slice()),
        "pruned"
    );
}

#[tokio::test]
async fn no_certificate_is_recorded_for_a_banned_identity() {
    use crate::store::RevocationTarget;
    let (_dir, store) = open();
    let banned = id("spiffe://example.org/agent");
    store
        .revoke(
            revocation(RevocationTarget::Identity(banned.clone())),
            Arc::new(ListingSigner),
            Box::new(|_| Vec::new()),
        )
        .await
        .unwrap();
    let serial = Serial::generate().unwrap();
    let error = store
        .record_certificate(record(serial), vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::Banned(ref who) if *who == banned),
        "{error}"
    );
    assert!(store.find_certificate(serial).await.unwrap().is_none());
}

const ISSUER: &str = "https://issuer.example.org";

fn jwt_certificate() -> CertificateRecord {
    CertificateRecord {
        attestation: AttestationKind::Jwt,
        ..record(Serial::generate().unwrap())
    }
}

fn jwt_audit() -> Vec<crate::audit::AuditEvent> {
    vec![crate::audit::AuditEvent::now(
        "spiffe://example.org/agent",
        "svid.issue",
        "serial",
        serde_json::json!({"attestation": "jwt"}),
    )]
}

/// Redeems a JWT from `issuer` with `jti`, remembered until `expires_at`,
/// at `at`; returns the serial of the certificate offered with it.
async fn redeem_jwt_at(
    store: &SqliteStore,
    issuer: &str,
    jti: Option<&str>,
    expires_at: OffsetDateTime,
    at: OffsetDateTime,
) -> (Serial, Result<JwtRedemption, StoreError>) {
    let certificate = jwt_certificate();
    let serial = certificate.serial;
    let outcome = store
        .redeem_jwt(
            issuer.to_owned(),
            jti.map(str::to_owned),
            expires_at,
            at,
            certificate,
            jwt_audit(),
        )
        .await;
    (serial, outcome)
}

/// Rows in `table` of the store at `path`.
fn count(path: &std::path::Path, table: &str) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn a_jwt_is_redeemed_once_per_issuer_and_jti() {
    let (dir, store) = open();
    let path = dir.path().join("sigil.db");
    let expires_at = now() + Duration::from_secs(300);

    let (serial, outcome) = redeem_jwt_at(&store, ISSUER, Some("jti-1"), expires_at, now()).await;
    assert_eq!(outcome.unwrap(), JwtRedemption::Granted);
    let found = store.find_certificate(serial).await.unwrap().unwrap();
    assert_eq!(found.record.attestation, AttestationKind::Jwt);
    let audited = store.audit_page(0, 10).await.unwrap();
    assert_eq!(
        audited.len(),
        1,
        "the issuance and its record commit together"
    );
    assert_eq!(audited[0].action, "svid.issue");
    assert_eq!(count(&path, "jwt_replay"), 1);

    // The same token again: refused, and nothing new recorded.
    let (replayed, outcome) = redeem_jwt_at(&store, ISSUER, Some("jti-1"), expires_at, now()).await;
    assert_eq!(outcome.unwrap(), JwtRedemption::Replayed);
    assert!(store.find_certificate(replayed).await.unwrap().is_none());
    assert_eq!(count(&path, "certificates"), 1);
    assert_eq!(count(&path, "audit_events"), 1);
    assert_eq!(count(&path, "jwt_replay"), 1);

    // The same jti from another issuer is another token.
    let (other, outcome) = redeem_jwt_at(
        &store,
        "https://other.example.org",
        Some("jti-1"),
        expires_at,
        now(),
    )
    .await;
    assert_eq!(outcome.unwrap(), JwtRedemption::Granted);
    assert!(store.find_certificate(other).await.unwrap().is_some());
    assert_eq!(count(&path, "certificates"), 2);
    assert_eq!(count(&path, "audit_events"), 2);
    assert_eq!(count(&path, "jwt_replay"), 2);
}

#[tokio::test]
async fn a_used_jti_is_remembered_until_its_expiry_and_then_purged() {
    let (dir, store) = open();
    let path = dir.path().join("sigil.db");
    let start = now();
    let expires_at = start + Duration::from_secs(60);
    let (_, outcome) = redeem_jwt_at(&store, ISSUER, Some("short"), expires_at, start).await;
    assert_eq!(outcome.unwrap(), JwtRedemption::Granted);

    // Up to and including its expiry, it is a replay.
    for at in [start + Duration::from_secs(30), expires_at] {
        let (_, outcome) = redeem_jwt_at(&store, ISSUER, Some("short"), expires_at, at).await;
        assert_eq!(outcome.unwrap(), JwtRedemption::Replayed, "at {at}");
    }

    // Past it, the token itself is refused however it got here...
    let just_after = expires_at + Duration::from_secs(1);
    let (_, outcome) = redeem_jwt_at(&store, ISSUER, Some("short"), expires_at, just_after).await;
    assert_eq!(outcome.unwrap(), JwtRedemption::Replayed);

    // ...and once a margin has passed, any redemption purges its row.
    let later = expires_at + Duration::from_secs(301);
    let (_, outcome) = redeem_jwt_at(
        &store,
        ISSUER,
        Some("another"),
        later + Duration::from_secs(60),
        later,
    )
    .await;
    assert_eq!(outcome.unwrap(), JwtRedemption::Granted);
    let remaining: Vec<String> = Connection::open(&path)
        .unwrap()
        .prepare("SELECT jti FROM jwt_replay")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(remaining, ["another"], "the expired row was purged");

    // ...and the jti can be used again.
    let (_, outcome) = redeem_jwt_at(
        &store,
        ISSUER,
        Some("short"),
        later + Duration::from_secs(60),
        later,
    )
    .await;
    assert_eq!(outcome.unwrap(), JwtRedemption::Granted);
}

#[tokio::test]
async fn a_banned_identity_gets_no_certificate_from_a_jwt_and_the_jti_stays_unused() {
    use crate::store::RevocationTarget;
    let (dir, store) = open();
    let path = dir.path().join("sigil.db");
    let agent = id("spiffe://example.org/agent");
    store
        .revoke(
            revocation(RevocationTarget::Identity(agent.clone())),
            Arc::new(ListingSigner),
            Box::new(|_| Vec::new()),
        )
        .await
        .unwrap();
    let expires_at = now() + Duration::from_secs(300);

    let (serial, outcome) = redeem_jwt_at(&store, ISSUER, Some("jti-1"), expires_at, now()).await;
    assert_eq!(outcome.unwrap(), JwtRedemption::Banned(agent.clone()));
    assert!(store.find_certificate(serial).await.unwrap().is_none());
    assert_eq!(count(&path, "certificates"), 0);
    assert_eq!(count(&path, "audit_events"), 0);
    assert_eq!(count(&path, "jwt_replay"), 0);

    let (_, outcome) = redeem_jwt_at(&store, ISSUER, None, expires_at, now()).await;
    assert_eq!(outcome.unwrap(), JwtRedemption::Banned(agent.clone()));

    assert!(store.lift_ban(agent, vec![]).await.unwrap());
    let (_, outcome) = redeem_jwt_at(&store, ISSUER, Some("jti-1"), expires_at, now()).await;
    assert_eq!(outcome.unwrap(), JwtRedemption::Granted);
}

#[tokio::test]
async fn a_jwt_without_a_jti_is_not_tracked_for_replay() {
    let (dir, store) = open();
    let path = dir.path().join("sigil.db");
    let expires_at = now() + Duration::from_secs(300);
    for _ in 0..2 {
        let (serial, outcome) = redeem_jwt_at(&store, ISSUER, None, expires_at, now()).await;
        assert_eq!(outcome.unwrap(), JwtRedemption::Granted);
        assert!(store.find_certificate(serial).await.unwrap().is_some());
    }
    assert_eq!(count(&path, "certificates"), 2);
    assert_eq!(count(&path, "audit_events"), 2);
    assert_eq!(count(&path, "jwt_replay"), 0);
}

#[tokio::test]
async fn a_jwt_redemption_whose_certificate_cannot_be_recorded_leaves_the_jti_unused() {
    let (dir, store) = open();
    let path = dir.path().join("sigil.db");
    let taken = Serial::generate().unwrap();
    store
        .record_certificate(record(taken), vec![])
        .await
        .unwrap();
    let mut duplicate = jwt_certificate();
    duplicate.serial = taken;
    let expires_at = now() + Duration::from_secs(300);
    let error = store
        .redeem_jwt(
            ISSUER.to_owned(),
            Some("jti-1".to_owned()),
            expires_at,
            now(),
            duplicate,
            jwt_audit(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error}");
    assert_eq!(count(&path, "jwt_replay"), 0);
    assert_eq!(count(&path, "audit_events"), 0);

    // The retry, with a fresh serial, is granted.
    let (_, outcome) = redeem_jwt_at(&store, ISSUER, Some("jti-1"), expires_at, now()).await;
    assert_eq!(outcome.unwrap(), JwtRedemption::Granted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_redemptions_of_one_jti_through_two_stores_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.db");
    let stores = [
        Arc::new(SqliteStore::open(&path).unwrap()),
        Arc::new(SqliteStore::open(&path).unwrap()),
    ];
    let expires_at = now() + Duration::from_secs(300);
    let attempts: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&stores[i % 2]);
            tokio::spawn(async move {
                redeem_jwt_at(&store, ISSUER, Some("jti-1"), expires_at, now())
                    .await
                    .1
            })
        })
        .collect();
    let mut granted = 0;
    for attempt in attempts {
        match attempt.await.unwrap().unwrap() {
            JwtRedemption::Granted => granted += 1,
            JwtRedemption::Replayed => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(granted, 1);
    assert_eq!(
        count(&path, "certificates"),
        1,
        "only the winner's certificate"
    );
    assert_eq!(count(&path, "audit_events"), 1);
    assert_eq!(count(&path, "jwt_replay"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_answers_only_after_the_commit_and_a_failed_commit_stores_nothing_of_its_batch()
 {
    let (dir, store) = open();
    let path = dir.path().join("sigil.db");
    // Hold the writer thread, so that what follows queues up as one batch.
    let writer = HeldWriter::hold(&store);

    // The next batch: a fault that fails its commit, then ten requests
    // (each enqueued when called).
    let fault = store.run_on_writer(|_| {
        super::faults::fail_next_commit();
        Ok(())
    });
    let serials: Vec<Serial> = (0..10).map(|_| Serial::generate().unwrap()).collect();
    let requests: Vec<_> = serials
        .iter()
        .map(|serial| store.record_certificate(record(*serial), Vec::new()))
        .collect();
    writer.release().await;

    assert!(matches!(fault.await, Err(StoreError::Unavailable(_))));
    for request in requests {
        // Each of them ran (its savepoint succeeded), yet none may report
        // success: the batch did not reach the disk.
        assert!(matches!(request.await, Err(StoreError::Unavailable(_))));
    }
    assert_eq!(
        count(&path, "certificates"),
        0,
        "nothing of the batch is stored"
    );
    for serial in &serials {
        assert_eq!(store.find_certificate(*serial).await.unwrap(), None);
    }

    // The next batch commits, and its answers say so.
    store
        .record_certificate(record(serials[0]), Vec::new())
        .await
        .unwrap();
    assert_eq!(count(&path, "certificates"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_commits_and_each_is_stored() {
    let (dir, store) = open();
    let path = dir.path().join("sigil.db");
    let serials: Vec<Serial> = (0..200).map(|_| Serial::generate().unwrap()).collect();
    let requests: Vec<_> = serials
        .iter()
        .map(|serial| store.record_certificate(record(*serial), Vec::new()))
        .collect();
    for request in requests {
        request.await.unwrap();
    }
    assert_eq!(count(&path, "certificates"), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_do_not_wait_for_the_writer_and_see_only_committed_writes() {
    let (_dir, store) = open();
    let committed = Serial::generate().unwrap();
    store
        .record_certificate(record(committed), Vec::new())
        .await
        .unwrap();

    // Hold the writer thread mid-batch.
    let writer = HeldWriter::hold(&store);
    let pending = Serial::generate().unwrap();
    let write = store.record_certificate(record(pending), Vec::new());

    // Reads are answered while the writer is busy: what was committed is
    // there, what waits for the next commit is not.
    let found = tokio::time::timeout(Duration::from_secs(10), store.find_certificate(committed))
        .await
        .expect("a read must not queue behind the writer")
        .unwrap();
    assert_eq!(found.unwrap().record.serial, committed);
    let not_yet = tokio::time::timeout(Duration::from_secs(10), store.find_certificate(pending))
        .await
        .expect("a read must not queue behind the writer")
        .unwrap();
    assert_eq!(not_yet, None);

    writer.release().await;
    write.await.unwrap();
    // Once the write is answered, every read sees it.
    assert!(store.find_certificate(pending).await.unwrap().is_some());
}

#[test]
fn reader_connections_refuse_to_write() {
    let (dir, store) = open();
    let reader = open_reader(&dir.path().join("sigil.db")).unwrap();
    let error = reader
        .execute("DELETE FROM certificates", [])
        .expect_err("a reader connection must not write");
    assert!(error.to_string().contains("readonly"), "{error}");
    drop(store);
}

#[tokio::test]
async fn revocations_from_before_schema_6_stay_on_the_crl_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.db");
    let (listed, expired) = (Serial::generate().unwrap(), Serial::generate().unwrap());
    {
        let conn = Connection::open(&path).unwrap();
        schema::migrate_to(&conn, 5).unwrap();
        for (serial, not_after) in [
            (listed, now() + Duration::from_secs(3600)),
            (expired, now() - Duration::from_secs(30 * 86_400)),
        ] {
            conn.execute(
                "INSERT INTO certificates (serial, spiffe_id, issuer_key_id, not_before, not_after,
                     attestation, der, created_at, line_id)
                 VALUES (?1, 'spiffe://example.org/agent', 'ab', 0, ?2, 'join_token', x'01', 0, ?1)",
                rusqlite::params![serial.to_string(), columns::unix(not_after)],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO revocations (serial, revoked_at, reason, revoked_by)
                 VALUES (?1, 0, 'keyCompromise', 'spiffe://example.org/sigil/admin')",
                [serial.to_string()],
            )
            .unwrap();
        }
    }
    let store = SqliteStore::open(&path).unwrap();
    let crl = store
        .publish_crl("ab".to_owned(), now(), Arc::new(ListingSigner))
        .await
        .unwrap();
    // The unexpired revocation is listed; the long-expired one is pruned,
    // by the expiry the upgrade copied from its certificate.
    assert_eq!(crl.der, listed.as_bytes().to_vec());
}

#[tokio::test]
async fn lines_from_before_schema_7_renew_once_and_a_second_renewal_of_the_first_is_a_fork() {
    use crate::store::RenewalOutcome;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.db");
    let first = record(Serial::generate().unwrap());
    {
        // As schema 6 left it: every line had its row from the start.
        let conn = Connection::open(&path).unwrap();
        schema::migrate_to(&conn, 6).unwrap();
        conn.execute(
            "INSERT INTO certificates (serial, spiffe_id, issuer_key_id, not_before, not_after,
                 attestation, der, created_at, line_id)
             VALUES (?1, 'spiffe://example.org/agent', 'ab', 0, ?2, 'join_token', x'01', 0, ?1)",
            rusqlite::params![
                first.serial.to_string(),
                columns::unix(now() + Duration::from_secs(3600))
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO lines (line_id, head_serial) VALUES (?1, ?1)",
            [first.serial.to_string()],
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        count(&path, "lines"),
        0,
        "a line that never renewed needs no row"
    );
    let renew = |parent: &CertificateRecord| {
        store.renew(
            renewal_of(parent),
            now(),
            Arc::new(ListingSigner),
            Box::new(|_| Vec::new()),
        )
    };
    let renewed = renew(&first).await.unwrap();
    assert!(
        matches!(
            renewed,
            RenewalOutcome::Renewed {
                superseded: None,
                ..
            }
        ),
        "{renewed:?}"
    );
    assert_eq!(count(&path, "lines"), 1, "the line's head moved");
    // The head moved on; the first renews again after its child renewed.
    let head = {
        let conn = Connection::open(&path).unwrap();
        let head: String = conn
            .query_row("SELECT head_serial FROM lines", [], |row| row.get(0))
            .unwrap();
        head.parse::<Serial>().unwrap()
    };
    let child = CertificateRecord {
        serial: head,
        ..renewal_of(&first)
    };
    assert!(matches!(
        renew(&child).await.unwrap(),
        RenewalOutcome::Renewed { .. }
    ));
    let fork = renew(&first).await.unwrap();
    assert!(matches!(fork, RenewalOutcome::Fork { .. }), "{fork:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_that_cannot_be_rolled_back_keeps_its_whole_batch_from_committing() {
    let (dir, store) = open();
    let path = dir.path().join("sigil.db");
    // Hold the writer, so that what follows is one batch.
    let writer = HeldWriter::hold(&store);
    // An operation writes, then fails; the rollback of its savepoint fails
    // too, so its write is still in the transaction.
    let failing = Serial::generate().unwrap();
    let failed = store.run_on_writer(move |conn| -> Result<(), StoreError> {
        let op = Savepoint::begin(conn).map_err(unavailable)?;
        certificates::insert_certificate(&op, &record(failing))?;
        super::sql::faults::fail_next_rollback();
        Err(StoreError::Unavailable("the operation failed".to_owned()))
    });
    let innocent = Serial::generate().unwrap();
    let other = store.record_certificate(record(innocent), Vec::new());
    writer.release().await;
    assert!(failed.await.is_err());
    assert!(matches!(other.await, Err(StoreError::Unavailable(_))));
    assert_eq!(count(&path, "certificates"), 0, "the batch did not commit");

    // The next batch is a fresh transaction.
    store
        .record_certificate(record(innocent), Vec::new())
        .await
        .unwrap();
    assert_eq!(count(&path, "certificates"), 1);
}

#[tokio::test]
async fn readers_and_the_writer_survive_jobs_that_panic() {
    let (_dir, store) = open();
    // More panics than there are reader threads.
    for _ in 0..=READERS {
        let answer = store
            .run_on_reader(|_| -> Result<(), StoreError> { panic!("a bug in a read") })
            .await;
        assert!(matches!(answer, Err(StoreError::Unavailable(_))));
    }
    let answer = store
        .run_on_writer(|_| -> Result<(), StoreError> { panic!("a bug in a write") })
        .await;
    assert!(matches!(answer, Err(StoreError::Unavailable(_))));
    let serial = Serial::generate().unwrap();
    store
        .record_certificate(record(serial), Vec::new())
        .await
        .unwrap();
    assert!(store.find_certificate(serial).await.unwrap().is_some());
    store.check_ready().await.unwrap();
}

#[tokio::test]
async fn a_revocation_without_its_issuer_stops_the_crl_instead_of_vanishing_from_it() {
    let (dir, store) = open();
    // Written by other means than the store.
    let conn = Connection::open(dir.path().join("sigil.db")).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    conn.execute(
        "INSERT INTO revocations (serial, revoked_at, reason, revoked_by)
         VALUES ('0123', 0, 'keyCompromise', 'spiffe://example.org/sigil/admin')",
        [],
    )
    .unwrap();
    let error = store
        .publish_crl("ab".to_owned(), now(), Arc::new(ListingSigner))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error}");
}

/// One audit event about `subject`, for the tests of the log's chain.
fn test_event(subject: &str) -> Vec<crate::audit::AuditEvent> {
    vec![crate::audit::AuditEvent::now(
        "spiffe://example.org/admin",
        "test.event",
        subject,
        serde_json::json!({}),
    )]
}

/// The writer remembers the audit log's head between appends. Every way an
/// append can be undone, or overtaken by another connection, must still
/// leave one whole chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_chain_stays_whole_across_rollbacks_failed_commits_and_a_second_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sigil.db");
    let first = SqliteStore::open(&path).unwrap();
    first.append_audit(test_event("kept 1")).await.unwrap();

    // An operation that appends, then fails: its savepoint rolls back.
    let appended = test_event("rolled back");
    let failed = first
        .run_on_writer(move |conn| {
            let tx = Savepoint::begin(conn).map_err(unavailable)?;
            audit::append_in(&tx, appended)?;
            Err::<(), _>(StoreError::Unavailable("the operation fails".to_owned()))
        })
        .await;
    assert!(failed.is_err());
    first.append_audit(test_event("kept 2")).await.unwrap();

    // A batch that appends, then fails to commit.
    let appended = test_event("not committed");
    let failed = first
        .run_on_writer(move |conn| {
            super::faults::fail_next_commit();
            audit::append(conn, appended)
        })
        .await;
    assert!(matches!(failed, Err(StoreError::Unavailable(_))));
    first.append_audit(test_event("kept 3")).await.unwrap();

    // A second store on the file appends after what the first remembers.
    let second = SqliteStore::open(&path).unwrap();
    second.append_audit(test_event("kept 4")).await.unwrap();
    first.append_audit(test_event("kept 5")).await.unwrap();
    second.append_audit(test_event("kept 6")).await.unwrap();
    first.append_audit(test_event("kept 7")).await.unwrap();

    let records = first.audit_page(0, 100).await.unwrap();
    let subjects: Vec<&str> = records.iter().map(|r| r.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "kept 1", "kept 2", "kept 3", "kept 4", "kept 5", "kept 6", "kept 7"
        ]
    );
    let mut prev_hash = crate::audit::GENESIS_HASH.to_owned();
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.seq, index as u64 + 1);
        assert_eq!(
            record.prev_hash, prev_hash,
            "record {} chains on",
            record.seq
        );
        assert_eq!(record.hash, record.expected_hash());
        prev_hash.clone_from(&record.hash);
    }
}

/// SQLite rolls a whole transaction back on some errors (a full disk, an
/// I/O error). The rest of that batch must then neither run outside a
/// transaction nor chain onto audit records that are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_transaction_sqlite_rolled_back_runs_nothing_more_and_keeps_the_chain() {
    let (_dir, store) = open();
    store.append_audit(test_event("kept 1")).await.unwrap();

    // One batch: an append, the transaction rolled back under it, another
    // append.
    let writer = HeldWriter::hold(&store);
    let before = store.append_audit(test_event("rolled back"));
    let rollback = store.run_on_writer(|conn| {
        conn.execute_batch("ROLLBACK").map_err(unavailable)?;
        Ok(())
    });
    let after = store.append_audit(test_event("after the rollback"));
    writer.release().await;
    assert!(matches!(before.await, Err(StoreError::Unavailable(_))));
    assert!(matches!(rollback.await, Err(StoreError::Unavailable(_))));
    assert!(matches!(after.await, Err(StoreError::Unavailable(_))));

    store.append_audit(test_event("kept 2")).await.unwrap();
    let records = store.audit_page(0, 10).await.unwrap();
    let subjects: Vec<&str> = records.iter().map(|r| r.subject.as_str()).collect();
    assert_eq!(subjects, ["kept 1", "kept 2"]);
    assert_eq!(records[1].seq, 2);
    assert_eq!(records[1].prev_hash, records[0].hash);
    assert_eq!(records[1].hash, records[1].expected_hash());
}
