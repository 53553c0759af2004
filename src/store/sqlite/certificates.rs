//! Certificates: recorded once, found by serial.

use rusqlite::{Connection, OptionalExtension, params};

use super::columns::{from_unix, is_unique_violation, parse_column, unavailable, unix};
use crate::ca::Serial;
use crate::store::{CertificateRecord, StoreError};

pub(super) fn insert_certificate(
    conn: &Connection,
    record: &CertificateRecord,
) -> Result<(), StoreError> {
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

pub(super) fn find(
    conn: &Connection,
    serial: Serial,
) -> Result<Option<CertificateRecord>, StoreError> {
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
}
