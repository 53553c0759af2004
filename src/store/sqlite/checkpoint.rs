//! Where the log's pages are copied back into the database (SQLite's
//! checkpoints), by the size of the store.
//!
//! SQLite checkpoints on the committing connection: the commit that takes
//! the log past 1,000 pages also copies them into the database file and
//! syncs it, while every request of the next batches waits. On a small
//! store that costs about a millisecond, since the log holds a few pages
//! many times over. On a large one whose writes land on scattered pages of
//! an index, a checkpoint writes hundreds of them into the file: about
//! 10 ms, every 250 certificates or so. Serials used to do that (random,
//! each on its own page of the serial index); since they carry their
//! issuance time they share the index's last pages. The SPIFFE-ID index
//! still does it when many identities are issued to, each on its own page.
//!
//! So once the database is larger than [`LARGE_STORE_BYTES`], a thread of
//! its own checkpoints instead, on its own connection, in SQLite's
//! `PASSIVE` mode, which never blocks the writer; the writer wakes it every
//! [`COMMITS_PER_CHECKPOINT`] commits. The writer still checkpoints itself
//! at [`BACKSTOP_PAGES`]: while commits keep coming, the log restarts from
//! its beginning only after a checkpoint on the writer. On the reference
//! machine, with random serials, this took issuance on a store of a
//! million certificates from 5,150 to 5,537 per second (p99 about 10 to
//! 5.5 ms). With serials in order, issuance to 50,000 identities there
//! ran 3.6 % faster with this thread (5,304 to 5,494 per second, p99 10.2
//! to 6.7 ms); to one identity, SQLite's own checkpoints were 1.4 % to
//! 8.8 % faster in three sets of runs, though this thread's p99 was lower
//! (3.3 against 4.5 ms). On a small store a thread checkpointing
//! beside the writer cost 2 % (BENCHMARKS.md), so there SQLite keeps
//! checkpointing on the writer.

use std::path::Path;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread;

use rusqlite::Connection;

use super::columns::unavailable;
use crate::store::StoreError;

/// From this size on, checkpoints run off the writer.
const LARGE_STORE_BYTES: i64 = 64 << 20;

/// How often (in commits) the writer wakes the checkpointer: about 1,000
/// log pages at the batch sizes of a busy CA, SQLite's own interval.
const COMMITS_PER_CHECKPOINT: u32 = 110;

/// SQLite's default: the writer checkpoints itself past this many pages.
const INLINE_PAGES: u32 = 1_000;

/// The writer's own checkpoint while the checkpointer runs: it bounds the
/// log (about 40 MB) and lets it restart.
const BACKSTOP_PAGES: u32 = 10_000;

/// The writer's side: counts commits, checks the store's size, and wakes
/// the checkpointer thread.
pub(super) struct Checkpoints {
    wake: SyncSender<()>,
    commits: u32,
    off_writer: bool,
}

impl Checkpoints {
    /// Starts the checkpointer thread on a connection of its own to `path`.
    pub(super) fn start(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(unavailable)?;
        // A checkpoint syncs the database file before the log may restart
        // over what it copied: said here, not left to SQLite's default.
        conn.execute_batch("PRAGMA synchronous = FULL;")
            .map_err(unavailable)?;
        // One wake-up pending at most: a checkpoint that is asked for while
        // one runs is the next one.
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        thread::Builder::new()
            .name("sigil-store-checkpoint".to_owned())
            .spawn(move || {
                while woken.recv().is_ok() {
                    // PASSIVE copies what it can without waiting for anyone;
                    // what it leaves, the next one (or the writer) copies.
                    if let Err(error) =
                        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(%error, "a background checkpoint failed");
                    }
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("starting the checkpointer: {e}")))?;
        Ok(Self {
            wake,
            commits: 0,
            off_writer: false,
        })
    }

    /// After each commit of the writer's `conn`: every
    /// [`COMMITS_PER_CHECKPOINT`] commits, decides by the store's size who
    /// checkpoints, and wakes the checkpointer if it does.
    pub(super) fn committed(&mut self, conn: &Connection) {
        self.commits += 1;
        if self.commits < COMMITS_PER_CHECKPOINT {
            return;
        }
        self.commits = 0;
        let large = database_bytes(conn).is_some_and(|bytes| bytes >= LARGE_STORE_BYTES);
        if large != self.off_writer {
            let pages = if large { BACKSTOP_PAGES } else { INLINE_PAGES };
            match conn.pragma_update(None, "wal_autocheckpoint", pages) {
                Ok(()) => self.off_writer = large,
                Err(error) => tracing::warn!(%error, "could not set wal_autocheckpoint"),
            }
        }
        if self.off_writer {
            match self.wake.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => {
                    tracing::warn!("the checkpointer has stopped; the writer checkpoints");
                    let _ = conn.pragma_update(None, "wal_autocheckpoint", INLINE_PAGES);
                    self.off_writer = false;
                }
            }
        }
    }

    /// Whether checkpoints currently run off the writer.
    #[cfg(test)]
    pub(super) fn off_writer(&self) -> bool {
        self.off_writer
    }
}

/// The database file's size as SQLite counts it.
fn database_bytes(conn: &Connection) -> Option<i64> {
    conn.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |row| row.get(0),
    )
    .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn autocheckpoint(conn: &Connection) -> u32 {
        conn.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
            .unwrap()
    }

    fn commits(conn: &Connection, checkpoints: &mut Checkpoints, count: u32) {
        for _ in 0..count {
            conn.execute("INSERT INTO t VALUES (randomblob(100))", [])
                .unwrap();
            checkpoints.committed(conn);
        }
    }

    #[test]
    fn checkpoints_leave_the_writer_once_the_store_is_large() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sigil.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (b BLOB);")
            .unwrap();
        let mut checkpoints = Checkpoints::start(&path).unwrap();

        // A small store: SQLite checkpoints on the writer, as it would.
        commits(&conn, &mut checkpoints, COMMITS_PER_CHECKPOINT);
        assert!(!checkpoints.off_writer());
        assert_eq!(autocheckpoint(&conn), INLINE_PAGES);

        // Past the size (the writer still checkpoints this one itself).
        let bytes = LARGE_STORE_BYTES;
        conn.execute("INSERT INTO t VALUES (zeroblob(?1))", [bytes])
            .unwrap();
        commits(&conn, &mut checkpoints, COMMITS_PER_CHECKPOINT);
        assert!(checkpoints.off_writer());
        assert_eq!(autocheckpoint(&conn), BACKSTOP_PAGES);

        // Two megabytes more: 512 pages, under the writer's backstop, so
        // only the checkpointer can copy them into the database file.
        let before = std::fs::metadata(&path).unwrap().len();
        conn.execute("INSERT INTO t VALUES (zeroblob(2097152))", [])
            .unwrap();
        commits(&conn, &mut checkpoints, COMMITS_PER_CHECKPOINT);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&path).unwrap().len() < before + 2_097_152 {
            assert!(Instant::now() < deadline, "no checkpoint off the writer");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
