//! Revocations, bans and CRLs. A revocation and the CRLs that list it
//! commit in one transaction; CRL numbers come from one global sequence, so
//! a higher number is always newer, whatever the issuer, and never fall
//! below the time in milliseconds, so they keep growing across a restore.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use sigil_core::SpiffeId;
use time::OffsetDateTime;

use super::audit;
use super::columns::{from_unix, parse_column, unavailable, unix};
use super::sql::{CachedSql, Savepoint};
use crate::audit::AuditEvent;
use crate::revocation::{CrlSigner, ReasonCode, RevokedEntry, SignedCrl};
use crate::serial::Serial;
use crate::store::{AuditFn, RevocationOutcome, RevocationRequest, RevocationTarget, StoreError};

/// A revoked certificate stays on its CRL this long after it expires.
const CRL_PRUNE_GRACE: Duration = Duration::from_secs(3600);

pub(super) fn revoke(
    conn: &mut Connection,
    request: RevocationRequest,
    signer: Arc<dyn CrlSigner>,
    audit: AuditFn<RevocationOutcome>,
) -> Result<RevocationOutcome, StoreError> {
    let tx = Savepoint::begin(conn).map_err(unavailable)?;
    let outcome = revoke_in(&tx, &request, signer.as_ref())?;
    if outcome == RevocationOutcome::UnknownSerial {
        return Ok(outcome);
    }
    audit::append_in(&tx, audit(&outcome))?;
    tx.commit().map_err(unavailable)?;
    Ok(outcome)
}

/// Revokes (and bans, for an identity) and publishes the CRLs that change,
/// inside the caller's transaction.
pub(super) fn revoke_in(
    tx: &Connection,
    request: &RevocationRequest,
    signer: &dyn CrlSigner,
) -> Result<RevocationOutcome, StoreError> {
    let RevocationRequest {
        target,
        reason,
        by,
        now,
    } = request;
    let (reason, now) = (*reason, *now);
    let mut newly_banned = false;
    let targets: Vec<(String, String)> = match &target {
        RevocationTarget::Serial(serial) => {
            let issuer: Option<String> = tx
                .query_row_cached(
                    "SELECT issuer_key_id FROM certificates WHERE serial = ?1",
                    [serial.to_string()],
                    |row| row.get(0),
                )
                .optional()
                .map_err(unavailable)?;
            let Some(issuer) = issuer else {
                return Ok(RevocationOutcome::UnknownSerial);
            };
            vec![(serial.to_string(), issuer)]
        }
        RevocationTarget::Identity(spiffe_id) => {
            newly_banned = 0 < tx
                .execute_cached(
                    "INSERT INTO bans (spiffe_id, banned_at, reason, banned_by)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (spiffe_id) DO NOTHING",
                    params![
                        spiffe_id.as_str(),
                        unix(now),
                        reason.to_string(),
                        by.as_str()
                    ],
                )
                .map_err(unavailable)?;
            let mut live = tx
                .prepare_cached(
                    "SELECT c.serial, c.issuer_key_id FROM certificates c
                     WHERE c.spiffe_id = ?1 AND c.not_after > ?2
                       AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.serial = c.serial)
                     ORDER BY c.serial",
                )
                .map_err(unavailable)?;
            let rows = live
                .query_map(params![spiffe_id.as_str(), unix(now)], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .map_err(unavailable)?;
            rows.collect::<Result<_, _>>().map_err(unavailable)?
        }
    };

    let mut serials = Vec::with_capacity(targets.len());
    let mut changed_issuers: Vec<String> = Vec::new();
    for (serial, issuer) in targets {
        let inserted = insert_revocation(tx, &serial, now, reason, by.as_str())?;
        if inserted && !changed_issuers.contains(&issuer) {
            changed_issuers.push(issuer);
        }
        serials.push(parse_column(0, &serial).map_err(unavailable)?);
    }
    let mut crls = Vec::with_capacity(changed_issuers.len());
    for issuer in changed_issuers {
        crls.push(publish_in(tx, &issuer, now, signer)?);
    }
    let changed = newly_banned || !crls.is_empty();
    Ok(RevocationOutcome::Revoked {
        serials,
        crls,
        changed,
    })
}

pub(super) fn publish(
    conn: &mut Connection,
    issuer_key_id: &str,
    now: OffsetDateTime,
    signer: Arc<dyn CrlSigner>,
) -> Result<SignedCrl, StoreError> {
    let tx = Savepoint::begin(conn).map_err(unavailable)?;
    let crl = publish_in(&tx, issuer_key_id, now, signer.as_ref())?;
    tx.commit().map_err(unavailable)?;
    Ok(crl)
}

/// Records that the certificate `serial` is revoked, with the issuer and
/// expiry its CRL entry is selected by; `false` if it already was.
pub(super) fn insert_revocation(
    tx: &Connection,
    serial: &str,
    now: OffsetDateTime,
    reason: ReasonCode,
    by: &str,
) -> Result<bool, StoreError> {
    let inserted = tx
        .execute_cached(
            "INSERT INTO revocations (serial, revoked_at, reason, revoked_by, issuer_key_id,
                                      not_after)
             SELECT serial, ?2, ?3, ?4, issuer_key_id, not_after FROM certificates
             WHERE serial = ?1
             ON CONFLICT (serial) DO NOTHING",
            params![serial, unix(now), reason.to_string(), by],
        )
        .map_err(unavailable)?;
    Ok(inserted > 0)
}

/// Draws the next CRL number, signs the issuer's CRL and stores it, inside
/// the caller's transaction.
pub(super) fn publish_in(
    tx: &Connection,
    issuer_key_id: &str,
    now: OffsetDateTime,
    signer: &dyn CrlSigner,
) -> Result<SignedCrl, StoreError> {
    // Never below the time in milliseconds: a store restored from a backup
    // then still numbers its next CRLs above every one served before the
    // restore, which relying parties (that keep the highest number they
    // saw) would otherwise ignore as stale.
    let floor = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    let number: i64 = tx
        .query_row_cached(
            "UPDATE crl_sequence SET last = max(last + 1, ?1) WHERE id = 1 RETURNING last",
            [floor],
            |row| row.get(0),
        )
        .map_err(unavailable)?;
    let number =
        u64::try_from(number).map_err(|_| StoreError::Corrupt(format!("CRL number {number}")))?;
    // Every revocation carries its issuer and expiry, copied together from
    // its certificate (schema 6 filled them in for older rows); one without
    // would silently miss every CRL. (An index lookup: NULLs sort first.)
    let unplaced: bool = tx
        .query_row_cached(
            "SELECT EXISTS (SELECT 1 FROM revocations WHERE issuer_key_id IS NULL)",
            [],
            |row| row.get(0),
        )
        .map_err(unavailable)?;
    if unplaced {
        return Err(StoreError::Corrupt(
            "a revocation names no issuer; it would be missing from the CRL".to_owned(),
        ));
    }
    let mut statement = tx
        .prepare_cached(
            "SELECT serial, revoked_at, reason FROM revocations
             WHERE issuer_key_id = ?1 AND not_after > ?2
             ORDER BY serial",
        )
        .map_err(unavailable)?;
    let entries = statement
        .query_map(params![issuer_key_id, unix(now - CRL_PRUNE_GRACE)], |row| {
            Ok(RevokedEntry {
                serial: parse_column::<Serial>(0, &row.get::<_, String>(0)?)?,
                revoked_at: from_unix(row.get(1)?)?,
                reason: parse_column(2, &row.get::<_, String>(2)?)?,
            })
        })
        .map_err(unavailable)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unavailable)?;
    let crl = signer
        .sign_crl(issuer_key_id, number, &entries, now)
        .map_err(StoreError::Signing)?;
    tx.execute_cached(
        "INSERT INTO crls (issuer_key_id, number, this_update, next_update, der)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (issuer_key_id) DO UPDATE SET number = excluded.number,
           this_update = excluded.this_update, next_update = excluded.next_update,
           der = excluded.der",
        params![
            crl.issuer_key_id,
            number as i64,
            unix(crl.this_update),
            unix(crl.next_update),
            crl.der
        ],
    )
    .map_err(unavailable)?;
    Ok(crl)
}

pub(super) fn current(conn: &Connection) -> Result<Vec<SignedCrl>, StoreError> {
    let mut statement = conn
        .prepare_cached(
            "SELECT issuer_key_id, number, this_update, next_update, der FROM crls
             ORDER BY number",
        )
        .map_err(unavailable)?;
    let rows = statement
        .query_map([], |row| {
            Ok(SignedCrl {
                issuer_key_id: row.get(0)?,
                number: row.get::<_, i64>(1)?.try_into().unwrap_or_default(),
                this_update: from_unix(row.get(2)?)?,
                next_update: from_unix(row.get(3)?)?,
                der: row.get(4)?,
            })
        })
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}

pub(super) fn lift_ban(
    conn: &mut Connection,
    spiffe_id: &SpiffeId,
    events: Vec<AuditEvent>,
) -> Result<bool, StoreError> {
    let tx = Savepoint::begin(conn).map_err(unavailable)?;
    let removed = tx
        .execute_cached(
            "DELETE FROM bans WHERE spiffe_id = ?1",
            [spiffe_id.as_str()],
        )
        .map_err(unavailable)?;
    if removed == 0 {
        return Ok(false);
    }
    audit::append_in(&tx, events)?;
    tx.commit().map_err(unavailable)?;
    Ok(true)
}

pub(super) fn is_banned(conn: &Connection, spiffe_id: &SpiffeId) -> Result<bool, StoreError> {
    conn.query_row_cached(
        "SELECT EXISTS (SELECT 1 FROM bans WHERE spiffe_id = ?1)",
        [spiffe_id.as_str()],
        |row| row.get(0),
    )
    .map_err(unavailable)
}
