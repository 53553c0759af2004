//! The audit log's table: appended to, never updated.

use std::cell::{Cell, RefCell};

use rusqlite::{Connection, OptionalExtension, params};

use super::columns::{is_unique_violation, unavailable};
use super::sql::{CachedSql, Savepoint};
use crate::audit::{AuditEvent, AuditRecord, Checkpoint, GENESIS_HASH, record_hash};
use crate::rfc3339;
use crate::store::StoreError;

/// An audit event with its time and details already rendered as they are
/// stored and hashed. Issuance renders its events on the calling thread,
/// so that the store's one writer thread only chains and inserts them;
/// renewal and revocation render theirs on the writer, since they depend
/// on what the store finds.
pub(super) struct PreparedEvent {
    time: String,
    actor: String,
    action: &'static str,
    subject: String,
    details: String,
}

impl From<AuditEvent> for PreparedEvent {
    fn from(event: AuditEvent) -> Self {
        Self {
            time: rfc3339::format(event.time),
            actor: event.actor,
            action: event.action,
            subject: event.subject,
            details: event.details.to_string(),
        }
    }
}

/// Renders `events` for [`append_in`].
pub(super) fn prepare(events: Vec<AuditEvent>) -> Vec<PreparedEvent> {
    events.into_iter().map(PreparedEvent::from).collect()
}

pub(super) fn append(
    conn: &mut Connection,
    events: Vec<AuditEvent>,
) -> Result<Vec<AuditRecord>, StoreError> {
    let tx = Savepoint::begin(conn).map_err(unavailable)?;
    let mut written = Vec::with_capacity(events.len());
    chain(&tx, prepare(events), |record| written.push(record))?;
    tx.commit().map_err(unavailable)?;
    Ok(written)
}

/// Appends events, rendered already ([`prepare`]) or not, inside the
/// caller's (write) transaction.
pub(super) fn append_in(
    tx: &Connection,
    events: Vec<impl Into<PreparedEvent>>,
) -> Result<(), StoreError> {
    chain(tx, events.into_iter().map(Into::into).collect(), |_| {})
}

thread_local! {
    /// The log's head (seq and hash) as the store's writer thread last
    /// wrote it, so that its next append need not read it back: the
    /// writer appends a record for nearly every operation. Set only on
    /// the writer thread ([`keep_head_on_this_thread`]); any rollback on
    /// the thread forgets it ([`forget_head`]); and should another
    /// connection have appended meanwhile, the insert after a remembered
    /// head collides with that record's seq, and the head is read again.
    static HEAD: RefCell<Option<(u64, String)>> = const { RefCell::new(None) };
    static KEEP_HEAD: Cell<bool> = const { Cell::new(false) };
}

/// Makes this thread (the store's writer) remember the log's head between
/// appends.
pub(super) fn keep_head_on_this_thread() {
    KEEP_HEAD.with(|keep| keep.set(true));
}

/// Forgets the remembered head: what was written since may have been
/// rolled back.
pub(super) fn forget_head() {
    HEAD.with(|head| head.borrow_mut().take());
}

/// The log's head as stored: its seq and hash, or 0 and the genesis hash.
fn read_head(tx: &Connection) -> Result<(u64, String), StoreError> {
    let head: Option<(i64, String)> = tx
        .query_row_cached(
            "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(unavailable)?;
    match head {
        Some((seq, hash)) => Ok((
            u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("audit seq {seq}")))?,
            hash,
        )),
        None => Ok((0, GENESIS_HASH.to_owned())),
    }
}

/// Inserts `event` as record `seq` after `prev_hash`; returns its hash.
fn insert(
    tx: &Connection,
    seq: u64,
    event: &PreparedEvent,
    prev_hash: &str,
) -> rusqlite::Result<String> {
    let hash = record_hash(
        seq,
        &event.time,
        &event.actor,
        event.action,
        &event.subject,
        &event.details,
        prev_hash,
    );
    tx.execute_cached(
        "INSERT INTO audit_events (seq, time, actor, action, subject, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            seq as i64,
            event.time,
            event.actor,
            event.action,
            event.subject,
            event.details,
            prev_hash,
            hash
        ],
    )?;
    Ok(hash)
}

/// Appends `events` after the log's head, each hashed with the one before,
/// and hands each record written to `written`.
fn chain(
    tx: &Connection,
    events: Vec<PreparedEvent>,
    mut written: impl FnMut(AuditRecord),
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let keep = KEEP_HEAD.with(Cell::get);
    let remembered = if keep {
        HEAD.with(|head| head.borrow_mut().take())
    } else {
        None
    };
    let from_memory = remembered.is_some();
    let (mut seq, mut prev_hash) = match remembered {
        Some(head) => head,
        None => read_head(tx)?,
    };
    for (index, event) in events.into_iter().enumerate() {
        let hash = match insert(tx, seq + 1, &event, &prev_hash) {
            Ok(hash) => hash,
            // Another connection appended after the remembered head (the
            // write lock held since keeps it from happening later in the
            // transaction): chain after what it wrote.
            Err(error) if index == 0 && from_memory && is_unique_violation(&error) => {
                (seq, prev_hash) = read_head(tx)?;
                insert(tx, seq + 1, &event, &prev_hash).map_err(unavailable)?
            }
            Err(error) => return Err(unavailable(error)),
        };
        seq += 1;
        written(AuditRecord {
            seq,
            time: event.time,
            actor: event.actor,
            action: event.action.to_owned(),
            subject: event.subject,
            details: event.details,
            hash: hash.clone(),
            prev_hash: std::mem::replace(&mut prev_hash, hash),
        });
    }
    if keep {
        HEAD.with(|head| *head.borrow_mut() = Some((seq, prev_hash)));
    }
    Ok(())
}

pub(super) fn page(
    conn: &Connection,
    after: u64,
    limit: u32,
) -> Result<Vec<AuditRecord>, StoreError> {
    // No record has a sequence number beyond i64::MAX.
    let Ok(after) = i64::try_from(after) else {
        return Ok(Vec::new());
    };
    let mut statement = conn
        .prepare_cached(
            "SELECT seq, time, actor, action, subject, details, prev_hash, hash
             FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .map_err(unavailable)?;
    let rows = statement
        .query_map(params![after, limit], |row| {
            Ok(AuditRecord {
                seq: row.get::<_, i64>(0)?.try_into().unwrap_or_default(),
                time: row.get(1)?,
                actor: row.get(2)?,
                action: row.get(3)?,
                subject: row.get(4)?,
                details: row.get(5)?,
                prev_hash: row.get(6)?,
                hash: row.get(7)?,
            })
        })
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}

pub(super) fn tail(conn: &Connection, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
    let newest: Option<i64> = conn
        .query_row_cached("SELECT max(seq) FROM audit_events", [], |row| row.get(0))
        .map_err(unavailable)?;
    let after = newest.unwrap_or(0).saturating_sub(i64::from(limit));
    page(conn, u64::try_from(after).unwrap_or(0), limit)
}

pub(super) fn record_checkpoint(
    conn: &Connection,
    checkpoint: &Checkpoint,
) -> Result<(), StoreError> {
    conn.execute_cached(
        "INSERT INTO audit_checkpoints (seq, hash, time, signature) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (seq) DO NOTHING",
        params![
            checkpoint.seq as i64,
            checkpoint.hash,
            checkpoint.time,
            checkpoint.signature
        ],
    )
    .map_err(unavailable)?;
    Ok(())
}

fn checkpoint_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Checkpoint> {
    Ok(Checkpoint {
        seq: row.get::<_, i64>(0)?.try_into().unwrap_or_default(),
        hash: row.get(1)?,
        time: row.get(2)?,
        signature: row.get(3)?,
    })
}

pub(super) fn latest_checkpoint(conn: &Connection) -> Result<Option<Checkpoint>, StoreError> {
    conn.query_row_cached(
        "SELECT seq, hash, time, signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
        [],
        checkpoint_from_row,
    )
    .optional()
    .map_err(unavailable)
}

pub(super) fn checkpoints(conn: &Connection) -> Result<Vec<Checkpoint>, StoreError> {
    let mut statement = conn
        .prepare_cached("SELECT seq, hash, time, signature FROM audit_checkpoints ORDER BY seq")
        .map_err(unavailable)?;
    let rows = statement
        .query_map([], checkpoint_from_row)
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}
