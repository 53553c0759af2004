//! Statements through the connection's statement cache, and savepoints
//! made of cached statements. The hot paths run the same few statements
//! thousands of times a second; the profile of issuance (BENCHMARKS.md)
//! showed the writer thread spending more time parsing SQL than running
//! it.

use std::cell::Cell;
use std::ops::Deref;

use rusqlite::{Connection, Params, Row};

/// How many prepared statements a connection keeps: more than the store
/// has distinct statements, so none is ever parsed twice.
pub(super) const STATEMENT_CACHE: usize = 96;

/// Runs statements through [`Connection::prepare_cached`].
pub(super) trait CachedSql {
    /// [`Connection::execute`], prepared once.
    fn execute_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;

    /// [`Connection::query_row`], prepared once.
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>;
}

impl CachedSql for Connection {
    fn execute_cached<P: Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

thread_local! {
    /// Set when a savepoint could not be rolled back: its operation's
    /// writes may still be in the transaction, which must then not commit.
    static UNDO_FAILED: Cell<bool> = const { Cell::new(false) };
}

/// Whether a savepoint on this thread failed to roll back since the last
/// call; clears the flag.
pub(super) fn take_undo_failure() -> bool {
    UNDO_FAILED.with(Cell::take)
}

/// A savepoint: released by [`Savepoint::commit`], rolled back when
/// dropped without it. Every operation of a batch runs in one, so that a
/// failed operation undoes its own writes and nothing of the others'.
/// Savepoints nest: `RELEASE` and `ROLLBACK TO` act on the innermost one
/// of the name.
pub(super) struct Savepoint<'c> {
    conn: &'c Connection,
    released: bool,
}

impl<'c> Savepoint<'c> {
    /// Opens a savepoint (a deferred transaction outside any).
    pub(super) fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.execute_cached("SAVEPOINT op", [])?;
        Ok(Self {
            conn,
            released: false,
        })
    }

    /// Keeps what was done in the savepoint; if that fails, dropping it
    /// rolls it back.
    pub(super) fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.execute_cached("RELEASE op", [])?;
        self.released = true;
        Ok(())
    }
}

impl Deref for Savepoint<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        // Only a savepoint that was rolled back may be released: releasing
        // one that was not would keep the failed operation's writes. If
        // either step fails, the flag makes the writer roll back the whole
        // batch instead of committing it.
        let undone = !faults::take_rollback_failure()
            && self.conn.execute_cached("ROLLBACK TO op", []).is_ok()
            && self.conn.execute_cached("RELEASE op", []).is_ok();
        if !undone {
            UNDO_FAILED.with(|failed| failed.set(true));
        }
        // What the savepoint appended to the audit log is gone.
        super::audit::forget_head();
    }
}

/// Fault injection for the tests: the next rollback of a savepoint on this
/// thread fails as if SQLite had refused it (and leaves its writes).
pub(super) mod faults {
    #[cfg(test)]
    use std::cell::Cell;

    #[cfg(test)]
    thread_local! {
        static FAIL_NEXT_ROLLBACK: Cell<bool> = const { Cell::new(false) };
    }

    /// Makes the next savepoint rollback on this thread fail.
    #[cfg(test)]
    pub(crate) fn fail_next_rollback() {
        FAIL_NEXT_ROLLBACK.with(|flag| flag.set(true));
    }

    #[cfg(test)]
    pub(super) fn take_rollback_failure() -> bool {
        FAIL_NEXT_ROLLBACK.with(Cell::take)
    }

    /// Never, outside the tests.
    #[cfg(not(test))]
    pub(super) fn take_rollback_failure() -> bool {
        false
    }
}
