//! Certificates: recorded once, found by serial.

use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use super::columns::{from_unix, is_unique_violation, parse_column, unavailable, unix};
use super::sql::CachedSql;
use crate::serial::Serial;
use crate::store::{
    CertificateQuery, CertificateRecord, Revocation, StatusFilter, StoreError, StoreSummary,
    StoredCertificate,
};

pub(super) fn insert_certificate(
    conn: &Connection,
    record: &CertificateRecord,
) -> Result<(), StoreError> {
    // A certificate joins its parent's line; one without a parent starts a
    // line of its own, whose ID is its serial. Until the line renews, that
    // first certificate is its head, and `lines` holds no row for it: an
    // issuance writes one row (and its index entries) less.
    conn.execute_cached(
        "INSERT INTO certificates (serial, spiffe_id, issuer_key_id, not_before, not_after,
                                   attestation, parent_serial, der, created_at, line_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, COALESCE(
             (SELECT line_id FROM certificates WHERE serial = ?7), ?1))",
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

/// Every column of a certificate and its state, in the order
/// [`stored_from_row`] reads them.
const STORED_COLUMNS: &str = "c.serial, c.spiffe_id, c.issuer_key_id, c.not_before, c.not_after,
    c.attestation, c.parent_serial, c.der, c.created_at, r.revoked_at, r.reason,
    EXISTS (SELECT 1 FROM bans b WHERE b.spiffe_id = c.spiffe_id)";

fn stored_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredCertificate> {
    let parent: Option<String> = row.get(6)?;
    let revoked_at: Option<i64> = row.get(9)?;
    let reason: Option<String> = row.get(10)?;
    let revocation = match (revoked_at, reason) {
        (Some(at), Some(reason)) => Some(Revocation {
            revoked_at: from_unix(at)?,
            reason: parse_column(10, &reason)?,
        }),
        _ => None,
    };
    Ok(StoredCertificate {
        record: CertificateRecord {
            serial: parse_column(0, &row.get::<_, String>(0)?)?,
            spiffe_id: parse_column(1, &row.get::<_, String>(1)?)?,
            issuer_key_id: row.get(2)?,
            not_before: from_unix(row.get(3)?)?,
            not_after: from_unix(row.get(4)?)?,
            attestation: parse_column(5, &row.get::<_, String>(5)?)?,
            parent_serial: parent.map(|p| parse_column(6, &p)).transpose()?,
            der: row.get(7)?,
            created_at: from_unix(row.get(8)?)?,
        },
        revocation,
        banned: row.get(11)?,
    })
}

pub(super) fn find(
    conn: &Connection,
    serial: Serial,
) -> Result<Option<StoredCertificate>, StoreError> {
    conn.query_row_cached(
        &format!(
            "SELECT {STORED_COLUMNS} FROM certificates c
             LEFT JOIN revocations r ON r.serial = c.serial
             WHERE c.serial = ?1"
        ),
        [serial.to_string()],
        stored_from_row,
    )
    .optional()
    .map_err(unavailable)
}

/// Counts for the status page: one read transaction, so the numbers agree.
pub(super) fn summary(conn: &Connection, now: OffsetDateTime) -> Result<StoreSummary, StoreError> {
    let count = |sql: &str, now: Option<i64>| -> Result<u64, StoreError> {
        let value: i64 = match now {
            Some(now) => conn.query_row_cached(sql, [now], |row| row.get(0)),
            None => conn.query_row_cached(sql, [], |row| row.get(0)),
        }
        .map_err(unavailable)?;
        u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("a count of {value}")))
    };
    let now = unix(now);
    let revoked = count(
        "SELECT count(*) FROM revocations WHERE not_after > ?1",
        Some(now),
    )?;
    // Unexpired certificates, less the unexpired revoked ones.
    let unexpired = count(
        "SELECT count(*) FROM certificates WHERE not_after > ?1",
        Some(now),
    )?;
    Ok(StoreSummary {
        live: unexpired.saturating_sub(revoked),
        revoked,
        issued: count("SELECT count(*) FROM certificates", None)?,
        last_audit_seq: count("SELECT coalesce(max(seq), 0) FROM audit_events", None)?,
    })
}

/// The latest expiry among the live (unexpired, unrevoked) certificates
/// of an issuer, but those of `excluded`. It scans the issuer's
/// certificates: it runs only while a previous root is kept.
pub(super) fn latest_live_expiry(
    conn: &Connection,
    issuer_key_id: &str,
    excluded: &str,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, StoreError> {
    let latest: Option<i64> = conn
        .query_row_cached(
            "SELECT max(c.not_after) FROM certificates c
             WHERE c.issuer_key_id = ?1 AND c.not_after > ?2 AND c.spiffe_id != ?3
               AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)",
            params![issuer_key_id, unix(now), excluded],
            |row| row.get(0),
        )
        .map_err(unavailable)?;
    latest
        .map(from_unix)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("a certificate's expiry: {e}")))
}

pub(super) fn list(
    conn: &Connection,
    query: &CertificateQuery,
) -> Result<Vec<StoredCertificate>, StoreError> {
    let status = match query.status {
        StatusFilter::Live => "live",
        StatusFilter::Revoked => "revoked",
        StatusFilter::All => "all",
    };
    let mut statement = conn
        .prepare_cached(&format!(
            "SELECT {STORED_COLUMNS} FROM certificates c
             LEFT JOIN revocations r ON r.serial = c.serial
             WHERE (?1 IS NULL OR c.spiffe_id = ?1)
               AND (?2 IS NULL OR c.serial > ?2)
               AND CASE ?3
                     WHEN 'live' THEN r.serial IS NULL AND c.not_after > ?4
                     WHEN 'revoked' THEN r.serial IS NOT NULL
                     ELSE 1 END
             ORDER BY c.serial LIMIT ?5"
        ))
        .map_err(unavailable)?;
    let rows = statement
        .query_map(
            params![
                query.spiffe_id.as_ref().map(|id| id.as_str()),
                query.after.map(|s| s.to_string()),
                status,
                unix(query.now),
                query.limit,
            ],
            stored_from_row,
        )
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}
