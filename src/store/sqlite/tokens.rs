//! Join tokens: stored as hashes, redeemed atomically with the certificate
//! they yield.

use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use super::audit::{self, PreparedEvent};
use super::certificates::insert_certificate;
use super::columns::{is_unique_violation, json_column, parse_column, unavailable, unix};
use super::sql::{CachedSql, Savepoint};
use crate::audit::AuditEvent;
use crate::join_token::{self, TokenHash};
use crate::store::{CertificateRecord, NewJoinToken, Redemption, StoreError, TokenGrant};

pub(super) fn create(
    conn: &mut Connection,
    token: NewJoinToken,
    events: Vec<AuditEvent>,
) -> Result<(), StoreError> {
    let tx = Savepoint::begin(conn).map_err(unavailable)?;
    let dns = serde_json::to_string(&token.grant.dns_names)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let ips = serde_json::to_string(&token.grant.ip_addresses)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.execute_cached(
        "INSERT INTO join_tokens (id, hash, spiffe_id, dns_names, ip_addresses, uses,
                                          uses_left, expires_at, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9)",
        params![
            token.id,
            token.hash.as_slice(),
            token.grant.spiffe_id.as_str(),
            dns,
            ips,
            token.uses,
            unix(token.expires_at),
            unix(token.created_at),
            token.created_by.as_str(),
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::Conflict(format!("join token id {} exists", token.id))
        } else {
            unavailable(e)
        }
    })?;
    audit::append_in(&tx, events)?;
    tx.commit().map_err(unavailable)
}

/// What redeeming the token would give, without redeeming it; the caller
/// runs it in a read transaction.
pub(super) fn peek(
    conn: &Connection,
    id: &str,
    presented: &TokenHash,
    now: OffsetDateTime,
) -> Result<Redemption, StoreError> {
    token_state(conn, id, presented, now)
}

pub(super) fn redeem(
    conn: &mut Connection,
    id: String,
    presented: TokenHash,
    now: OffsetDateTime,
    certificate: CertificateRecord,
    events: Vec<PreparedEvent>,
) -> Result<Redemption, StoreError> {
    let tx = Savepoint::begin(conn).map_err(unavailable)?;
    let grant = match token_state(&tx, &id, &presented, now)? {
        Redemption::Granted(grant) => grant,
        refusal => return Ok(refusal),
    };
    // The token's grant changed between the check that decided what to
    // sign and now: tokens never change, so the store was altered. Not a
    // conflict to retry.
    if grant.spiffe_id != certificate.spiffe_id {
        return Err(StoreError::Corrupt(format!(
            "join token {id} grants {}, not {}",
            grant.spiffe_id, certificate.spiffe_id
        )));
    }
    // The guarded UPDATE is the single-winner step: of concurrent
    // writers, only one takes the last use.
    let taken = tx
        .execute_cached(
            "UPDATE join_tokens SET uses_left = uses_left - 1
                     WHERE id = ?1 AND uses_left > 0 AND expires_at > ?2",
            params![id, unix(now)],
        )
        .map_err(unavailable)?;
    if taken == 0 {
        return Ok(Redemption::UsedUp);
    }
    insert_certificate(&tx, &certificate)?;
    audit::append_in(&tx, events)?;
    tx.commit().map_err(unavailable)?;
    Ok(Redemption::Granted(grant))
}

/// What a join token would grant now, without taking a use. A hash that
/// does not match is `Unknown`, so a caller without the secret learns
/// nothing of the token.
fn token_state(
    conn: &Connection,
    id: &str,
    presented: &TokenHash,
    now: OffsetDateTime,
) -> Result<Redemption, StoreError> {
    // One statement for the token and whether its identity is banned: it
    // runs once per issuance on the store's one writer thread.
    let row = conn
        .query_row_cached(
            "SELECT t.hash, t.expires_at, t.uses_left, t.spiffe_id, t.dns_names, t.ip_addresses,
                    EXISTS (SELECT 1 FROM bans b WHERE b.spiffe_id = t.spiffe_id)
             FROM join_tokens t WHERE t.id = ?1",
            [id],
            |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    TokenGrant {
                        spiffe_id: parse_column(3, &row.get::<_, String>(3)?)?,
                        dns_names: json_column(4, &row.get::<_, String>(4)?)?,
                        ip_addresses: json_column(5, &row.get::<_, String>(5)?)?,
                    },
                    row.get::<_, bool>(6)?,
                ))
            },
        )
        .optional()
        .map_err(unavailable)?;
    let Some((stored, expires_at, uses_left, grant, banned)) = row else {
        return Ok(Redemption::Unknown);
    };
    if !join_token::hashes_match(&stored, presented) {
        return Ok(Redemption::Unknown);
    }
    Ok(if banned {
        Redemption::Banned(grant.spiffe_id)
    } else if expires_at <= unix(now) {
        Redemption::Expired
    } else if uses_left <= 0 {
        Redemption::UsedUp
    } else {
        Redemption::Granted(grant)
    })
}
