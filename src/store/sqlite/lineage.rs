//! Renewal lines: only the newest certificate of a line may renew, its
//! parent once more as a retry; anything else means two holders of one
//! identity.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};
use sigil_core::SpiffeId;
use time::OffsetDateTime;

use super::audit;
use super::certificates::insert_certificate;
use super::columns::{parse_column, unavailable};
use super::revocations::{insert_revocation, publish_in, revoke_in};
use super::sql::{CachedSql, Savepoint};
use crate::revocation::{CrlSigner, ReasonCode};
use crate::serial::Serial;
use crate::store::{
    AuditFn, CertificateRecord, RenewalOutcome, RevocationOutcome, RevocationRequest,
    RevocationTarget, StoreError,
};

pub(super) fn renew(
    conn: &mut Connection,
    certificate: CertificateRecord,
    now: OffsetDateTime,
    signer: Arc<dyn CrlSigner>,
    audit: AuditFn<RenewalOutcome>,
) -> Result<RenewalOutcome, StoreError> {
    let tx = Savepoint::begin(conn).map_err(unavailable)?;
    let outcome = renew_in(&tx, certificate, now, signer.as_ref())?;
    // A refusal changed nothing; a renewal or a fork commits with its
    // audit records.
    if matches!(
        outcome,
        RenewalOutcome::Renewed { .. } | RenewalOutcome::Fork { .. }
    ) {
        audit::append_in(&tx, audit(&outcome))?;
        tx.commit().map_err(unavailable)?;
    }
    Ok(outcome)
}

fn renew_in(
    tx: &Connection,
    certificate: CertificateRecord,
    now: OffsetDateTime,
    signer: &dyn CrlSigner,
) -> Result<RenewalOutcome, StoreError> {
    let Some(presented) = certificate.parent_serial else {
        return Err(StoreError::Conflict(
            "a renewed certificate names the certificate it renews".to_owned(),
        ));
    };
    let row = tx
        .query_row_cached(
            "SELECT c.spiffe_id, c.line_id,
                    (SELECT r.revoked_by FROM revocations r WHERE r.serial = c.serial),
                    EXISTS (SELECT 1 FROM bans b WHERE b.spiffe_id = c.spiffe_id)
             FROM certificates c WHERE c.serial = ?1",
            [presented.to_string()],
            |row| {
                Ok((
                    parse_column::<SpiffeId>(0, &row.get::<_, String>(0)?)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, bool>(3)?,
                ))
            },
        )
        .optional()
        .map_err(unavailable)?;
    let Some((spiffe_id, line_id, revoked_by, banned)) = row else {
        return Ok(RenewalOutcome::Unknown);
    };
    if banned {
        return Ok(RenewalOutcome::Banned);
    }
    let lineage = lineage_actor(&spiffe_id)?;
    match revoked_by {
        // Superseded by a retry of its parent, yet someone renews it: it was
        // in use while its parent renewed again. Two holders.
        Some(by) if by == lineage.as_str() => {
            return fork(tx, spiffe_id, lineage, now, signer);
        }
        Some(_) => return Ok(RenewalOutcome::Revoked),
        None => {}
    }
    if spiffe_id != certificate.spiffe_id {
        return Err(StoreError::Conflict(format!(
            "a renewal of {spiffe_id} cannot yield {}",
            certificate.spiffe_id
        )));
    }
    let line_id = line_id.ok_or_else(|| {
        StoreError::Corrupt(format!("certificate {presented} belongs to no line"))
    })?;
    // A line without a row has not renewed yet: its head is its first
    // certificate, whose serial is the line's ID.
    let head: String = tx
        .query_row_cached(
            "SELECT head_serial FROM lines WHERE line_id = ?1",
            [&line_id],
            |row| row.get(0),
        )
        .optional()
        .map_err(unavailable)?
        .unwrap_or_else(|| line_id.clone());
    let head: Serial = parse_column(0, &head).map_err(unavailable)?;

    let superseded = if head == presented {
        None
    } else if is_first_retry(tx, presented, head)? {
        Some(head)
    } else {
        return fork(tx, spiffe_id, lineage, now, signer);
    };

    let mut crls = Vec::new();
    if let Some(unused) = superseded {
        let actor = lineage_actor(&certificate.spiffe_id)?;
        let issuer: String = tx
            .query_row_cached(
                "SELECT issuer_key_id FROM certificates WHERE serial = ?1",
                [unused.to_string()],
                |row| row.get(0),
            )
            .map_err(unavailable)?;
        insert_revocation(
            tx,
            &unused.to_string(),
            now,
            ReasonCode::Superseded,
            actor.as_str(),
        )?;
        crls.push(publish_in(tx, &issuer, now, signer)?);
    }
    insert_certificate(tx, &certificate)?;
    let moved = tx
        .execute_cached(
            "INSERT INTO lines (line_id, head_serial) VALUES (?2, ?1)
             ON CONFLICT (line_id) DO UPDATE SET head_serial = ?1 WHERE head_serial = ?3",
            params![certificate.serial.to_string(), line_id, head.to_string()],
        )
        .map_err(unavailable)?;
    if moved != 1 {
        return Err(StoreError::Conflict(format!(
            "the line of {presented} moved on"
        )));
    }
    Ok(RenewalOutcome::Renewed { superseded, crls })
}

/// Two parties hold the identity: ban it and revoke every live certificate
/// of it, inside the caller's transaction.
fn fork(
    tx: &Connection,
    spiffe_id: SpiffeId,
    lineage: SpiffeId,
    now: OffsetDateTime,
    signer: &dyn CrlSigner,
) -> Result<RenewalOutcome, StoreError> {
    let request = RevocationRequest {
        target: RevocationTarget::Identity(spiffe_id),
        reason: ReasonCode::KeyCompromise,
        by: lineage,
        now,
    };
    let RevocationOutcome::Revoked { serials, crls, .. } = revoke_in(tx, &request, signer)? else {
        return Err(StoreError::Corrupt(
            "revoking an identity found no serial".to_owned(),
        ));
    };
    Ok(RenewalOutcome::Fork {
        revoked: serials,
        crls,
    })
}

/// True when `presented` is the parent of a still unrevoked `head` and has
/// renewed only once (into `head`): a retry after a lost response.
fn is_first_retry(tx: &Connection, presented: Serial, head: Serial) -> Result<bool, StoreError> {
    let (head_parent, children, head_revoked): (Option<String>, i64, bool) = tx
        .query_row_cached(
            "SELECT (SELECT parent_serial FROM certificates WHERE serial = ?1),
                    (SELECT count(*) FROM certificates WHERE parent_serial = ?2),
                    EXISTS (SELECT 1 FROM revocations WHERE serial = ?1)",
            params![head.to_string(), presented.to_string()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .map_err(unavailable)?;
    Ok(head_parent == Some(presented.to_string()) && children == 1 && !head_revoked)
}

/// Who the store names as the revoker when lineage, not an admin, revokes:
/// the CA's own server identity.
fn lineage_actor(id: &SpiffeId) -> Result<SpiffeId, StoreError> {
    id.trust_domain()
        .spiffe_id("/sigil/server")
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}
