//! The SQLite schema, versioned by `PRAGMA user_version`: migration `n`
//! takes the schema from version `n` to `n + 1`, and each runs once, in one
//! transaction with the version bump.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 0 → 1: certificates and join tokens.
    "CREATE TABLE certificates (
        serial TEXT PRIMARY KEY NOT NULL,
        spiffe_id TEXT NOT NULL,
        issuer_key_id TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        attestation TEXT NOT NULL,
        parent_serial TEXT REFERENCES certificates(serial),
        der BLOB NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX certificates_by_spiffe_id ON certificates (spiffe_id, not_after);
    CREATE TABLE join_tokens (
        id TEXT PRIMARY KEY NOT NULL,
        hash BLOB NOT NULL,
        spiffe_id TEXT NOT NULL,
        dns_names TEXT NOT NULL,
        ip_addresses TEXT NOT NULL,
        uses INTEGER NOT NULL CHECK (uses > 0),
        uses_left INTEGER NOT NULL CHECK (uses_left >= 0),
        expires_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        created_by TEXT NOT NULL
    ) STRICT;",
    // 1 → 2: revocations, bans and CRLs, numbered from one global sequence.
    "CREATE TABLE revocations (
        serial TEXT PRIMARY KEY NOT NULL REFERENCES certificates(serial),
        revoked_at INTEGER NOT NULL,
        reason TEXT NOT NULL,
        revoked_by TEXT NOT NULL
    ) STRICT;
    CREATE TABLE bans (
        spiffe_id TEXT PRIMARY KEY NOT NULL,
        banned_at INTEGER NOT NULL,
        reason TEXT NOT NULL,
        banned_by TEXT NOT NULL
    ) STRICT;
    CREATE TABLE crls (
        issuer_key_id TEXT PRIMARY KEY NOT NULL,
        number INTEGER NOT NULL,
        this_update INTEGER NOT NULL,
        next_update INTEGER NOT NULL,
        der BLOB NOT NULL
    ) STRICT;
    CREATE TABLE crl_sequence (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last INTEGER NOT NULL
    ) STRICT;
    INSERT INTO crl_sequence (id, last) VALUES (1, 0);
    CREATE INDEX certificates_by_issuer ON certificates (issuer_key_id, not_after);",
    // 2 → 3: renewal lines. A line starts at each attestation; its head is
    // the newest certificate, the only one that may renew.
    "ALTER TABLE certificates ADD COLUMN line_id TEXT;
    UPDATE certificates SET line_id = serial WHERE parent_serial IS NULL;
    CREATE TABLE lines (
        line_id TEXT PRIMARY KEY NOT NULL,
        head_serial TEXT NOT NULL REFERENCES certificates(serial)
    ) STRICT;
    INSERT INTO lines (line_id, head_serial)
        SELECT serial, serial FROM certificates WHERE parent_serial IS NULL;
    CREATE INDEX certificates_by_parent ON certificates (parent_serial);",
    // 3 → 4: the hash-chained audit log and its signed checkpoints.
    "CREATE TABLE audit_events (
        seq INTEGER PRIMARY KEY NOT NULL,
        time TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    ) STRICT;
    CREATE TABLE audit_checkpoints (
        seq INTEGER PRIMARY KEY NOT NULL,
        hash TEXT NOT NULL,
        time TEXT NOT NULL,
        signature BLOB NOT NULL
    ) STRICT;",
    // 4 → 5: JWT IDs already redeemed, per issuer, kept until the token
    // would no longer be accepted anyway.
    "CREATE TABLE jwt_replay (
        issuer TEXT NOT NULL,
        jti TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (issuer, jti)
    ) STRICT;
    CREATE INDEX jwt_replay_by_expiry ON jwt_replay (expires_at);",
    // 5 → 6: a revocation carries its certificate's issuer and expiry, so
    // that a CRL is one range of one covering index (100,000 entries in
    // tens of milliseconds) instead of a walk over every unexpired
    // certificate of the issuer.
    "ALTER TABLE revocations ADD COLUMN issuer_key_id TEXT;
    ALTER TABLE revocations ADD COLUMN not_after INTEGER;
    UPDATE revocations SET (issuer_key_id, not_after) =
        (SELECT c.issuer_key_id, c.not_after FROM certificates c WHERE c.serial = revocations.serial);
    CREATE INDEX revocations_for_crl
        ON revocations (issuer_key_id, not_after, serial, revoked_at, reason);",
    // 6 → 7: fewer pages written per issuance. A line gets its row in
    // `lines` when it first renews (until then its head is its first
    // certificate, whose serial is its ID); only renewals are indexed by
    // parent; and the CRL no longer needs certificates by issuer.
    "DELETE FROM lines WHERE head_serial = line_id;
    DROP INDEX certificates_by_parent;
    CREATE INDEX certificates_by_parent ON certificates (parent_serial)
        WHERE parent_serial IS NOT NULL;
    DROP INDEX certificates_by_issuer;",
];

/// Brings the schema to the newest version.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let unavailable = |e: rusqlite::Error| StoreError::Unavailable(e.to_string());
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(unavailable)?;
    let version = usize::try_from(version)
        .map_err(|_| StoreError::Corrupt(format!("schema version {version}")))?;
    if version > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "schema version {version} is newer than this sigil understands ({}); upgrade sigil",
            MIGRATIONS.len()
        )));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(sql).map_err(unavailable)?;
        tx.pragma_update(None, "user_version", (from + 1) as i64)
            .map_err(unavailable)?;
    }
    tx.commit().map_err(unavailable)
}

/// Brings a new database to schema `version` only, as an older Sigil left
/// it, for the tests of later migrations.
#[cfg(test)]
pub(super) fn migrate_to(conn: &Connection, version: usize) -> rusqlite::Result<()> {
    for (from, sql) in MIGRATIONS.iter().enumerate().take(version) {
        conn.execute_batch(sql)?;
        conn.pragma_update(None, "user_version", (from + 1) as i64)?;
    }
    Ok(())
}

/// The newest schema version.
#[cfg(test)]
pub(super) fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}
