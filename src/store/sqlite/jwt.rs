//! JWT redemption: the token's `jti` is marked used and the certificate it
//! yields recorded in one transaction, so a token is honoured once.

use rusqlite::{Connection, params};
use time::OffsetDateTime;

/// How long a spent `jti` is kept past the time it was to be remembered
/// until.
const PURGE_MARGIN_SECONDS: i64 = 300;

use super::audit::{self, PreparedEvent};
use super::certificates::insert_certificate;
use super::columns::{unavailable, unix};
use super::revocations;
use super::sql::{CachedSql, Savepoint};
use crate::store::{CertificateRecord, JwtRedemption, StoreError};

pub(super) fn redeem(
    conn: &mut Connection,
    issuer: String,
    jti: Option<String>,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
    certificate: CertificateRecord,
    events: Vec<PreparedEvent>,
) -> Result<JwtRedemption, StoreError> {
    let tx = Savepoint::begin(conn).map_err(unavailable)?;
    // A token already past the point its `jti` is remembered until could
    // only get here by a slow path after its checks; never let it in.
    if jti.is_some() && expires_at <= now {
        return Ok(JwtRedemption::Replayed);
    }
    // Housekeeping, with a margin: a token is checked a moment before it is
    // redeemed, so its row must outlive its expiry by more than that.
    tx.execute_cached(
        "DELETE FROM jwt_replay WHERE expires_at < ?1",
        [unix(now) - PURGE_MARGIN_SECONDS],
    )
    .map_err(unavailable)?;
    if let Some(jti) = &jti {
        // The insert that does nothing on a known (issuer, jti) is the
        // single-winner step: of concurrent writers, only one inserts.
        let inserted = tx
            .execute_cached(
                "INSERT INTO jwt_replay (issuer, jti, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (issuer, jti) DO NOTHING",
                params![issuer, jti, unix(expires_at)],
            )
            .map_err(unavailable)?;
        if inserted == 0 {
            // Dropping the transaction rolls it back: nothing is written.
            return Ok(JwtRedemption::Replayed);
        }
    }
    // No path gives a banned identity a certificate.
    if revocations::is_banned(&tx, &certificate.spiffe_id)? {
        return Ok(JwtRedemption::Banned(certificate.spiffe_id));
    }
    insert_certificate(&tx, &certificate)?;
    audit::append_in(&tx, events)?;
    tx.commit().map_err(unavailable)?;
    Ok(JwtRedemption::Granted)
}
