//! Statements through the connection's statement cache, and savepoints
//! made of cached statements. The hot paths run the same few statements
//! thousands of times a second; the profile of issuance (BENCHMARKS.md)
//! showed the writer thread spending more time parsing SQL than running
//! it.

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

    /// Keeps what was done in the savepoint.
    pub(super) fn commit(mut self) -> rusqlite::Result<()> {
        self.released = true;
        self.conn.execute_cached("RELEASE op", []).map(drop)
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
        if !self.released {
            // If these fail the connection is broken, and the batch's
            // commit fails too: nothing of the operation is kept either way.
            let _ = self.conn.execute_cached("ROLLBACK TO op", []);
            let _ = self.conn.execute_cached("RELEASE op", []);
        }
    }
}
