//! The embedded store: one SQLite file in WAL mode with `synchronous =
//! FULL`, written by one connection on its own thread so that async callers
//! never block the runtime.

use std::path::Path;
use std::sync::mpsc;
use std::thread;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use time::OffsetDateTime;

use super::{
    CertificateRecord, NewJoinToken, Redemption, Store, StoreError, StoreFuture, TokenGrant, schema,
};
use crate::ca::Serial;
use crate::join_token::{self, TokenHash};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The SQLite store. Cloning is cheap; all clones share the writer thread,
/// which ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
}

fn unavailable(error: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema
    /// up to date.
    ///
    /// # Errors
    ///
    /// The file cannot be opened, or holds a newer schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        create_owner_only(path)?;
        let mut conn = Connection::open(path).map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(unavailable)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(unavailable)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "SQLite refused WAL mode (got {mode})"
            )));
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(unavailable)?;
        schema::migrate(&mut conn)?;

        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("sigil-store".to_owned())
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("starting the store thread: {e}")))?;
        Ok(Self { jobs })
    }

    /// Runs `operation` on the writer thread and hands back its result.
    fn run<T, F>(&self, operation: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self.jobs.send(Box::new(move |conn| {
            let _ = reply.send(operation(conn));
        }));
        Box::pin(async move {
            sent.map_err(|_| StoreError::Unavailable("the store thread has stopped".to_owned()))?;
            answer
                .await
                .map_err(|_| StoreError::Unavailable("the store thread has stopped".to_owned()))?
        })
    }
}

/// The store holds every token hash and certificate: owner-only. SQLite
/// gives its `-wal` and `-shm` files the database file's permissions, so
/// the file must be 0600 before SQLite first opens it.
fn create_owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| StoreError::Unavailable(format!("opening {}: {e}", path.display())))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| StoreError::Unavailable(format!("restricting {}: {e}", path.display())))
}

fn unix(time: OffsetDateTime) -> i64 {
    time.unix_timestamp()
}

fn from_unix(seconds: i64) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Integer, Box::new(e))
    })
}

fn parse_column<T: std::str::FromStr>(index: usize, text: &str) -> rusqlite::Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            e.to_string().into(),
        )
    })
}

fn json_column<T: serde::de::DeserializeOwned>(index: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

fn insert_certificate(conn: &Connection, record: &CertificateRecord) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO certificates (serial, spiffe_id, issuer_key_id, not_before, not_after,
                                   attestation, parent_serial, der, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            record.serial.to_string(),
            record.spiffe_id.as_str(),
            record.issuer_key_id,
            unix(record.not_before),
            unix(record.not_after),
            record.attestation.as_str(),
            record.parent_serial.map(|s| s.to_string()),
            record.der,
            unix(record.created_at),
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(format!("serial {} is already recorded", record.serial))
        } else {
            unavailable(e)
        }
    })?;
    Ok(())
}

/// What a join token would grant now, without taking a use. A hash that
/// does not match is `Unknown`, so a caller without the secret learns
/// nothing of the token.
fn token_state(
    conn: &Connection,
    id: &str,
    presented: &TokenHash,
    now: OffsetDateTime,
) -> Result<Redemption, StoreError> {
    let row = conn
        .query_row(
            "SELECT hash, expires_at, uses_left, spiffe_id, dns_names, ip_addresses
             FROM join_tokens WHERE id = ?1",
            [id],
            |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    TokenGrant {
                        spiffe_id: parse_column(3, &row.get::<_, String>(3)?)?,
                        dns_names: json_column(4, &row.get::<_, String>(4)?)?,
                        ip_addresses: json_column(5, &row.get::<_, String>(5)?)?,
                    },
                ))
            },
        )
        .optional()
        .map_err(unavailable)?;
    let Some((stored, expires_at, uses_left, grant)) = row else {
        return Ok(Redemption::Unknown);
    };
    Ok(if !join_token::hashes_match(&stored, presented) {
        Redemption::Unknown
    } else if expires_at <= unix(now) {
        Redemption::Expired
    } else if uses_left <= 0 {
        Redemption::UsedUp
    } else {
        Redemption::Granted(grant)
    })
}

impl Store for SqliteStore {
    fn record_certificate(&self, record: CertificateRecord) -> StoreFuture<'_, ()> {
        self.run(move |conn| insert_certificate(conn, &record))
    }

    fn find_certificate(&self, serial: Serial) -> StoreFuture<'_, Option<CertificateRecord>> {
        self.run(move |conn| {
            conn.query_row(
                "SELECT serial, spiffe_id, issuer_key_id, not_before, not_after, attestation,
                        parent_serial, der, created_at
                 FROM certificates WHERE serial = ?1",
                [serial.to_string()],
                |row| {
                    let parent: Option<String> = row.get(6)?;
                    Ok(CertificateRecord {
                        serial: parse_column(0, &row.get::<_, String>(0)?)?,
                        spiffe_id: parse_column(1, &row.get::<_, String>(1)?)?,
                        issuer_key_id: row.get(2)?,
                        not_before: from_unix(row.get(3)?)?,
                        not_after: from_unix(row.get(4)?)?,
                        attestation: parse_column(5, &row.get::<_, String>(5)?)?,
                        parent_serial: parent.map(|p| parse_column(6, &p)).transpose()?,
                        der: row.get(7)?,
                        created_at: from_unix(row.get(8)?)?,
                    })
                },
            )
            .optional()
            .map_err(unavailable)
        })
    }

    fn create_join_token(&self, token: NewJoinToken) -> StoreFuture<'_, ()> {
        self.run(move |conn| {
            let dns = serde_json::to_string(&token.grant.dns_names)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let ips = serde_json::to_string(&token.grant.ip_addresses)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            conn.execute(
                "INSERT INTO join_tokens (id, hash, spiffe_id, dns_names, ip_addresses, uses,
                                          uses_left, expires_at, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9)",
                params![
                    token.id,
                    token.hash.as_slice(),
                    token.grant.spiffe_id.as_str(),
                    dns,
                    ips,
                    token.uses,
                    unix(token.expires_at),
                    unix(token.created_at),
                    token.created_by.as_str(),
                ],
            )
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("join token id {} exists", token.id))
                } else {
                    unavailable(e)
                }
            })?;
            Ok(())
        })
    }

    fn peek_join_token(
        &self,
        id: String,
        presented: TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Redemption> {
        self.run(move |conn| {
            let tx = conn.transaction().map_err(unavailable)?;
            let outcome = token_state(&tx, &id, &presented, now)?;
            tx.rollback().map_err(unavailable)?;
            Ok(outcome)
        })
    }

    fn redeem_join_token(
        &self,
        id: String,
        presented: TokenHash,
        now: OffsetDateTime,
        certificate: CertificateRecord,
    ) -> StoreFuture<'_, Redemption> {
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            let grant = match token_state(&tx, &id, &presented, now)? {
                Redemption::Granted(grant) => grant,
                refusal => return Ok(refusal),
            };
            if grant.spiffe_id != certificate.spiffe_id {
                return Err(StoreError::Conflict(format!(
                    "join token {id} grants {}, not {}",
                    grant.spiffe_id, certificate.spiffe_id
                )));
            }
            // The guarded UPDATE is the single-winner step: of concurrent
            // writers, only one takes the last use.
            let taken = tx
                .execute(
                    "UPDATE join_tokens SET uses_left = uses_left - 1
                     WHERE id = ?1 AND uses_left > 0 AND expires_at > ?2",
                    params![id, unix(now)],
                )
                .map_err(unavailable)?;
            if taken == 0 {
                return Ok(Redemption::UsedUp);
            }
            insert_certificate(&tx, &certificate)?;
            tx.commit().map_err(unavailable)?;
            Ok(Redemption::Granted(grant))
        })
    }

    fn check_ready(&self) -> StoreFuture<'_, ()> {
        self.run(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(unavailable)?;
            tx.query_row("SELECT count(*) FROM certificates LIMIT 1", [], |_| Ok(()))
                .map_err(unavailable)?;
            tx.rollback().map_err(unavailable)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use sigil_core::SpiffeId;
    use sigil_core::wire::Secret;

    use super::*;
    use crate::store::AttestationKind;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("sigil.db")).unwrap();
        (dir, store)
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
        let serial = Serial::random().unwrap();
        store.record_certificate(record(serial)).await.unwrap();
        assert_eq!(
            store.find_certificate(serial).await.unwrap(),
            Some(record(serial))
        );
        let other = Serial::random().unwrap();
        assert_eq!(store.find_certificate(other).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_repeated_serial_is_refused_and_the_first_record_kept() {
        let (_dir, store) = open();
        let serial = Serial::random().unwrap();
        store.record_certificate(record(serial)).await.unwrap();
        let mut second = record(serial);
        second.der = vec![9];
        let error = store.record_certificate(second).await.unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{error}");
        assert_eq!(
            store.find_certificate(serial).await.unwrap().unwrap().der,
            vec![1, 2, 3]
        );
    }

    fn certificate_for(grant_id: &str) -> CertificateRecord {
        CertificateRecord {
            spiffe_id: id(grant_id),
            ..record(Serial::random().unwrap())
        }
    }

    async fn stored_token(store: &SqliteStore, uses: u32, ttl: Duration) -> (String, TokenHash) {
        let (secret, new) = token(uses, now() + ttl);
        let token_id = new.id.clone();
        store.create_join_token(new).await.unwrap();
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
                .redeem_join_token(token_id.clone(), hash, now(), certificate)
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
            .redeem_join_token(token_id.clone(), hash, now(), certificate)
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
                .redeem_join_token(token, presented, at, certificate)
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
            )
            .await
            .unwrap();
        assert!(matches!(outcome, Redemption::Granted(_)));
    }

    #[tokio::test]
    async fn a_redemption_whose_certificate_cannot_be_recorded_keeps_the_use() {
        let (_dir, store) = open();
        let (token_id, hash) = stored_token(&store, 1, Duration::from_secs(600)).await;
        let taken = Serial::random().unwrap();
        store.record_certificate(record(taken)).await.unwrap();

        // The certificate's serial is already recorded: nothing commits.
        let mut duplicate = certificate_for("spiffe://example.org/agent");
        duplicate.serial = taken;
        let error = store
            .redeem_join_token(token_id.clone(), hash, now(), duplicate)
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{error}");

        // A certificate for another identity than the token grants.
        let other = certificate_for("spiffe://example.org/someone-else");
        let error = store
            .redeem_join_token(token_id.clone(), hash, now(), other)
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{error}");

        let outcome = store
            .redeem_join_token(
                token_id,
                hash,
                now(),
                certificate_for("spiffe://example.org/agent"),
            )
            .await
            .unwrap();
        assert!(
            matches!(outcome, Redemption::Granted(_)),
            "the use was kept"
        );
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
                        .redeem_join_token(token_id, hash, now(), certificate)
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
        let (a, b) = (Serial::random().unwrap(), Serial::random().unwrap());
        first.record_certificate(record(a)).await.unwrap();
        second.record_certificate(record(b)).await.unwrap();
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
}
