//! The embedded store: one SQLite file in WAL mode with `synchronous =
//! FULL`, written by one connection on its own thread and read by a few
//! more on theirs, so that async callers never block the runtime and a
//! read never waits for a commit's fsync.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use rusqlite::Connection;
use sigil_core::SpiffeId;
use time::OffsetDateTime;

mod audit;
mod certificates;
mod checkpoint;
mod columns;
mod jwt;
mod lineage;
mod revocations;
mod sql;
mod tokens;

use columns::unavailable;
use sql::{CachedSql, Savepoint};

use super::{
    AuditFn, CertificateQuery, CertificateRecord, CommitObserver, JwtRedemption, NewJoinToken,
    Redemption, RenewalOutcome, RevocationOutcome, RevocationRequest, Store, StoreError,
    StoreFuture, StoreSummary, StoredCertificate, schema,
};
use crate::audit::{AuditEvent, AuditRecord, Checkpoint};
use crate::join_token::TokenHash;
use crate::revocation::{CrlSigner, SignedCrl};
use crate::serial::Serial;

/// What a job leaves to do once its batch's commit has succeeded (`true`)
/// or failed (`false`): answer its caller.
type Reply = Box<dyn FnOnce(bool) + Send>;
/// One operation, run inside its batch's transaction (in a savepoint of its
/// own), or not at all (`None`: the transaction could not begin); its
/// answer waits for the batch's commit.
type Job = Box<dyn FnOnce(Option<&mut Connection>) -> Reply + Send>;

/// A read, run on one of the reader threads' connections.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

/// The most operations one commit (and one fsync) takes.
const MAX_BATCH: usize = 256;
/// Reader threads, each with its own connection. WAL lets them read while
/// the writer writes; each read sees every commit answered before it.
const READERS: usize = 2;

/// The SQLite store. Cloning is cheap; all clones share the writer and
/// reader threads, which end when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    reads: mpsc::Sender<ReadJob>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and brings its schema
    /// up to date.
    ///
    /// # Errors
    ///
    /// The file cannot be opened, or holds a newer schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_observed(path, None)
    }

    /// [`SqliteStore::open`], telling `observer` of every commit.
    ///
    /// # Errors
    ///
    /// As [`SqliteStore::open`].
    pub fn open_observed(
        path: &Path,
        observer: Option<Arc<dyn CommitObserver>>,
    ) -> Result<Self, StoreError> {
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
        conn.set_prepared_statement_cache_capacity(sql::STATEMENT_CACHE);
        schema::migrate(&mut conn)?;

        let (reads, read_queue) = mpsc::channel::<ReadJob>();
        let read_queue = Arc::new(Mutex::new(read_queue));
        for index in 0..READERS {
            let reader = open_reader(path)?;
            let queue = Arc::clone(&read_queue);
            thread::Builder::new()
                .name(format!("sigil-store-read-{index}"))
                .spawn(move || serve_reads(&reader, &queue))
                .map_err(|e| StoreError::Unavailable(format!("starting a store reader: {e}")))?;
        }
        let mut checkpoints = checkpoint::Checkpoints::start(path)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("sigil-store".to_owned())
            .spawn(move || {
                write_batches(&mut conn, &queue, observer.as_deref(), &mut checkpoints);
            })
            .map_err(|e| StoreError::Unavailable(format!("starting the store thread: {e}")))?;
        Ok(Self { jobs, reads })
    }

    /// Runs the read-only `operation` on a reader thread, in a transaction
    /// of its own (one snapshot for all its statements), and hands back its
    /// result.
    fn read<T, F>(&self, operation: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self.reads.send(Box::new(move |conn: &Connection| {
            let result = Savepoint::begin(conn)
                .map_err(unavailable)
                // Dropping the savepoint ends the read transaction.
                .and_then(|snapshot| operation(&snapshot));
            let _ = reply.send(result);
        }));
        Box::pin(async move {
            let stopped = || StoreError::Unavailable("the store readers have stopped".to_owned());
            sent.map_err(|_| stopped())?;
            answer.await.map_err(|_| stopped())?
        })
    }

    /// Runs `operation` on the writer thread and hands back its result.
    fn run<T, F>(&self, operation: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let sent = self
            .jobs
            .send(Box::new(move |conn: Option<&mut Connection>| -> Reply {
                let result = match conn {
                    Some(conn) => operation(conn),
                    None => Err(StoreError::Unavailable(
                        "the store could not begin a transaction".to_owned(),
                    )),
                };
                Box::new(move |committed| {
                    let _ = reply.send(match committed {
                        true => result,
                        false => Err(StoreError::Unavailable(
                            "the store could not commit; nothing of this request was stored"
                                .to_owned(),
                        )),
                    });
                })
            }));
        Box::pin(async move {
            sent.map_err(|_| StoreError::Unavailable("the store thread has stopped".to_owned()))?;
            answer
                .await
                .map_err(|_| StoreError::Unavailable("the store thread has stopped".to_owned()))?
        })
    }
}

/// The writer thread: group commit. It takes every operation waiting (up
/// to [`MAX_BATCH`]), runs each in a savepoint of one `BEGIN IMMEDIATE`
/// transaction, commits once (one fsync for all of them), and only then
/// answers them: invariant 1 holds for each, and a failed commit fails
/// every operation of the batch, none of which then reports success.
fn write_batches(
    conn: &mut Connection,
    queue: &mpsc::Receiver<Job>,
    observer: Option<&dyn CommitObserver>,
    checkpoints: &mut checkpoint::Checkpoints,
) {
    audit::keep_head_on_this_thread();
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let changes_before = conn.total_changes();
        if conn.execute_cached("BEGIN IMMEDIATE", []).is_err() {
            if let Some(observer) = observer {
                observer.commit_failed();
            }
            // Nothing runs outside the batch's transaction: each operation
            // fails as it is, and nothing is written.
            for job in batch {
                job(None)(true);
            }
            continue;
        }
        let operations = batch.len();
        let mut replies: Vec<Reply> = Vec::with_capacity(operations);
        let mut lost = false;
        for job in batch {
            if lost {
                // Nothing runs outside the batch's transaction: the job
                // fails with the batch, as one whose commit failed.
                replies.push(job(None));
                continue;
            }
            // A job that panics loses its caller's answer (the caller gets
            // an error) and its savepoint rolls back as it unwinds; the
            // thread and the rest of the batch go on.
            if let Ok(reply) = catch_unwind(AssertUnwindSafe(|| job(Some(conn)))) {
                replies.push(reply);
            }
            // On some errors (a full disk, an I/O error) SQLite rolls the
            // whole transaction back. What the batch wrote is then gone,
            // and a later job's savepoint would open a transaction of its
            // own, which its release would commit, after a remembered audit
            // head that no longer exists. The batch ends as a failed commit.
            lost = conn.is_autocommit();
        }
        // A savepoint that could not be rolled back may have left a failed
        // operation's writes in the transaction: then nothing commits.
        let undo_failed = sql::take_undo_failure();
        let started = std::time::Instant::now();
        let committed = !lost && !undo_failed && commit(conn);
        match observer {
            Some(observer) if !committed => observer.commit_failed(),
            Some(observer) if conn.total_changes() > changes_before => {
                observer.committed(started.elapsed(), operations);
            }
            _ => {}
        }
        if committed {
            checkpoints.committed(conn);
        } else {
            let _ = conn.execute_cached("ROLLBACK", []);
            audit::forget_head();
        }
        for reply in replies {
            reply(committed);
        }
    }
}

/// A connection that can only read (`query_only`): a bug that wrote
/// through it would fail instead of bypassing the writer's batches.
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(unavailable)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(unavailable)?;
    conn.execute_batch("PRAGMA query_only = ON;")
        .map_err(unavailable)?;
    conn.set_prepared_statement_cache_capacity(sql::STATEMENT_CACHE);
    Ok(conn)
}

/// A reader thread: runs reads one at a time until the store is dropped.
fn serve_reads(conn: &Connection, queue: &Mutex<mpsc::Receiver<ReadJob>>) {
    loop {
        // The lock is held only while waiting for the next job, never
        // while running one; a reader that panicked leaves the queue
        // usable.
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = next else { return };
        // A read that panics loses its caller's answer (the caller gets an
        // error), not the thread.
        let _ = catch_unwind(AssertUnwindSafe(|| job(conn)));
        sql::take_undo_failure();
        // A read transaction left open would pin this reader to an old
        // snapshot for good.
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            tracing::error!("a store reader could not end its read transaction");
        }
    }
}

/// Commits the batch; a test can make the next commit fail.
fn commit(conn: &Connection) -> bool {
    #[cfg(test)]
    if faults::take_commit_failure() {
        return false;
    }
    conn.execute_cached("COMMIT", []).is_ok()
}

/// Fault injection for the tests of group commit.
#[cfg(test)]
pub(crate) mod faults {
    use std::cell::Cell;

    thread_local! {
        static FAIL_NEXT_COMMIT: Cell<bool> = const { Cell::new(false) };
    }

    /// Makes the writer thread's next commit fail (call it from a job).
    pub(crate) fn fail_next_commit() {
        FAIL_NEXT_COMMIT.with(|flag| flag.set(true));
    }

    pub(super) fn take_commit_failure() -> bool {
        FAIL_NEXT_COMMIT.with(Cell::take)
    }
}

#[cfg(test)]
impl SqliteStore {
    /// Runs `job` on a reader thread.
    pub(crate) fn run_on_reader<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        self.read(job)
    }

    /// Runs `job` on the writer thread, inside the next batch.
    pub(crate) fn run_on_writer<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        self.run(job)
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

impl Store for SqliteStore {
    fn record_certificate(
        &self,
        record: CertificateRecord,
        events: Vec<AuditEvent>,
    ) -> StoreFuture<'_, ()> {
        let events = audit::prepare(events);
        self.run(move |conn| {
            let tx = Savepoint::begin(conn).map_err(unavailable)?;
            // No path gives a banned identity a certificate: checked here,
            // in the transaction that would record it.
            if revocations::is_banned(&tx, &record.spiffe_id)? {
                return Err(StoreError::Banned(record.spiffe_id.clone()));
            }
            certificates::insert_certificate(&tx, &record)?;
            audit::append_in(&tx, events)?;
            tx.commit().map_err(unavailable)
        })
    }

    fn find_certificate(&self, serial: Serial) -> StoreFuture<'_, Option<StoredCertificate>> {
        self.read(move |conn| certificates::find(conn, serial))
    }

    fn list_certificates(
        &self,
        query: CertificateQuery,
    ) -> StoreFuture<'_, Vec<StoredCertificate>> {
        self.read(move |conn| certificates::list(conn, &query))
    }

    fn revoke(
        &self,
        request: RevocationRequest,
        signer: Arc<dyn CrlSigner>,
        audit: AuditFn<RevocationOutcome>,
    ) -> StoreFuture<'_, RevocationOutcome> {
        self.run(move |conn| revocations::revoke(conn, request, signer, audit))
    }

    fn renew(
        &self,
        certificate: CertificateRecord,
        now: OffsetDateTime,
        signer: Arc<dyn CrlSigner>,
        audit: AuditFn<RenewalOutcome>,
    ) -> StoreFuture<'_, RenewalOutcome> {
        self.run(move |conn| lineage::renew(conn, certificate, now, signer, audit))
    }

    fn append_audit(&self, events: Vec<AuditEvent>) -> StoreFuture<'_, Vec<AuditRecord>> {
        self.run(move |conn| audit::append(conn, events))
    }

    fn audit_page(&self, after: u64, limit: u32) -> StoreFuture<'_, Vec<AuditRecord>> {
        self.read(move |conn| audit::page(conn, after, limit))
    }

    fn audit_tail(&self, limit: u32) -> StoreFuture<'_, Vec<AuditRecord>> {
        self.read(move |conn| audit::tail(conn, limit))
    }

    fn record_checkpoint(&self, checkpoint: Checkpoint) -> StoreFuture<'_, ()> {
        self.run(move |conn| audit::record_checkpoint(conn, &checkpoint))
    }

    fn latest_checkpoint(&self) -> StoreFuture<'_, Option<Checkpoint>> {
        self.read(audit::latest_checkpoint)
    }

    fn checkpoints(&self) -> StoreFuture<'_, Vec<Checkpoint>> {
        self.read(audit::checkpoints)
    }

    fn lift_ban(&self, spiffe_id: SpiffeId, events: Vec<AuditEvent>) -> StoreFuture<'_, bool> {
        self.run(move |conn| revocations::lift_ban(conn, &spiffe_id, events))
    }

    fn is_banned(&self, spiffe_id: SpiffeId) -> StoreFuture<'_, bool> {
        self.read(move |conn| revocations::is_banned(conn, &spiffe_id))
    }

    fn publish_crl(
        &self,
        issuer_key_id: String,
        now: OffsetDateTime,
        signer: Arc<dyn CrlSigner>,
    ) -> StoreFuture<'_, SignedCrl> {
        self.run(move |conn| revocations::publish(conn, &issuer_key_id, now, signer))
    }

    fn current_crls(&self) -> StoreFuture<'_, Vec<SignedCrl>> {
        self.read(revocations::current)
    }

    fn create_join_token(
        &self,
        token: NewJoinToken,
        events: Vec<AuditEvent>,
    ) -> StoreFuture<'_, ()> {
        self.run(move |conn| tokens::create(conn, token, events))
    }

    fn peek_join_token(
        &self,
        id: String,
        presented: TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Redemption> {
        self.read(move |conn| tokens::peek(conn, &id, &presented, now))
    }

    fn redeem_join_token(
        &self,
        id: String,
        presented: TokenHash,
        now: OffsetDateTime,
        certificate: CertificateRecord,
        events: Vec<AuditEvent>,
    ) -> StoreFuture<'_, Redemption> {
        let events = audit::prepare(events);
        self.run(move |conn| tokens::redeem(conn, id, presented, now, certificate, events))
    }

    fn redeem_jwt(
        &self,
        issuer: String,
        jti: Option<String>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        certificate: CertificateRecord,
        events: Vec<AuditEvent>,
    ) -> StoreFuture<'_, JwtRedemption> {
        let events = audit::prepare(events);
        self.run(move |conn| jwt::redeem(conn, issuer, jti, expires_at, now, certificate, events))
    }

    fn summary(&self, now: OffsetDateTime) -> StoreFuture<'_, StoreSummary> {
        self.read(move |conn| certificates::summary(conn, now))
    }

    fn latest_live_expiry(
        &self,
        issuer_key_ids: Vec<String>,
        excluded: SpiffeId,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Option<OffsetDateTime>> {
        self.read(move |conn| {
            let mut latest = None;
            for issuer in &issuer_key_ids {
                let expiry =
                    certificates::latest_live_expiry(conn, issuer, excluded.as_str(), now)?;
                latest = latest.max(expiry);
            }
            Ok(latest)
        })
    }

    fn check_ready(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            // A job runs only inside its batch's `BEGIN IMMEDIATE`: reaching
            // it proves the writer can take the write lock.
            self.run(|_| Ok(())).await?;
            // And a reader answers.
            self.read(|conn| {
                conn.query_row_cached("SELECT EXISTS (SELECT 1 FROM certificates)", [], |_| Ok(()))
                    .map_err(unavailable)
            })
            .await
        })
    }
}

#[cfg(test)]
mod tests;
