//! `sigil-bench seed` and `sigil-bench crl`: the scale measurements of
//! issue 7. `seed` fills a data dir's store with certificates (a share of
//! them revoked and unexpired) as a long-running CA would hold them, by
//! direct SQL in one transaction; `crl` then times what a revocation costs
//! the CA: the store query, signing and storing the issuing CA's CRL.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{Connection, params};
use sigil::ca::{CaFiles, CertificateAuthority, Passphrase};
use sigil::datadir::DataDir;
use sigil::revocation::CrlSigner;
use sigil::serial::Serial;
use sigil::store::{SqliteStore, Store};
use time::{Duration, OffsetDateTime};

/// Adds `count` certificates to the store of `data_dir`, of which
/// `revoked` are revoked and unexpired. Each starts its own line, as an
/// attestation does (a line gets a row in `lines` only once it renews),
/// and carries the DER of the CA's own first certificate
/// (a real leaf of the usual size); each serial carries its certificate's
/// issuance time (see [`issued_at`]), as the CA's own do, or with
/// `random_serials` is 16 random bytes, as Sigil's were before.
pub(crate) fn seed(
    data_dir: &Path,
    count: u64,
    revoked: u64,
    random_serials: bool,
) -> anyhow::Result<()> {
    if revoked > count {
        bail!("--revoked ({revoked}) exceeds --certificates ({count})");
    }
    let dir = DataDir::new(data_dir.to_owned());
    let mut conn = Connection::open(dir.store()).context("opening the store")?;
    let (issuer, der): (String, Vec<u8>) = conn
        .query_row(
            "SELECT issuer_key_id, der FROM certificates ORDER BY created_at LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .context("the store holds no certificate to copy (run `sigil serve` once first)")?;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let started = Instant::now();
    let tx = conn.transaction()?;
    {
        let mut certificate = tx.prepare(
            "INSERT INTO certificates (serial, spiffe_id, issuer_key_id, not_before, not_after,
                                       attestation, parent_serial, der, created_at, line_id)
             VALUES (?1, ?2, ?3, ?4, ?5, 'join_token', NULL, ?6, ?4, ?1)",
        )?;
        let mut revocation = tx.prepare(
            "INSERT INTO revocations (serial, revoked_at, reason, revoked_by, issuer_key_id,
                                      not_after)
             VALUES (?1, ?2, 'keyCompromise', 'spiffe://seed/sigil/admin', ?3, ?4)",
        )?;
        for index in 0..count {
            // Revoked ones are unexpired (they belong on the CRL); of the
            // rest, half have expired, as in a store that has run for a
            // while.
            let is_revoked = index < revoked;
            let (not_before, not_after) = if is_revoked || index % 2 == 0 {
                (now - 600, now + 3600)
            } else {
                (now - 7 * 86_400, now - 6 * 86_400)
            };
            let serial = if random_serials {
                random_serial()?
            } else {
                Serial::generate_at(issued_at(not_before, index)?)
                    .map_err(|_| anyhow::anyhow!("random source"))?
            }
            .to_string();
            let spiffe_id = format!("spiffe://seed.example/agents/agent-{}", index % 50_000);
            certificate.execute(params![
                serial, spiffe_id, issuer, not_before, not_after, der
            ])?;
            if is_revoked {
                revocation.execute(params![serial, now - 60, issuer, not_after])?;
            }
        }
    }
    tx.commit()?;
    let total: i64 = conn.query_row("SELECT count(*) FROM certificates", [], |row| row.get(0))?;
    let revocations: i64 =
        conn.query_row("SELECT count(*) FROM revocations", [], |row| row.get(0))?;
    eprintln!(
        "seed: added {count} certificates ({revoked} revoked) in {:.1}s; the store holds \
         {total} certificates and {revocations} revocations",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// When the CA would have issued the `index`th seeded certificate, whose
/// validity starts at `not_before`: 30 s later (the CA back-dates by that
/// much), and a millisecond after the one before, so that the seeded
/// serials follow one another as a running CA's do.
fn issued_at(not_before: i64, index: u64) -> anyhow::Result<OffsetDateTime> {
    let index = i64::try_from(index).context("too many certificates")?;
    Ok(OffsetDateTime::from_unix_timestamp(not_before)?
        + Duration::seconds(30)
        + Duration::milliseconds(index))
}

/// A serial as Sigil drew them before they carried their issuance time: 16
/// random bytes, the first in `0x01..=0x7f`.
fn random_serial() -> anyhow::Result<Serial> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("random source"))?;
    bytes[0] = 0x01 + bytes[0] % 0x7f;
    Serial::from_der_bytes(&bytes).context("a random serial out of range")
}

/// Times the CA's CRL regeneration on the store of `data_dir`, as a
/// revocation runs it: the store query, signing, storing. Prints one
/// `RESULT` line with the median of `runs`.
pub(crate) async fn crl(data_dir: &Path, runs: usize) -> anyhow::Result<()> {
    let dir = DataDir::new(data_dir.to_owned());
    // An encrypted CA's passphrase comes from SIGIL_CA_PASSPHRASE.
    let files = CaFiles::read(&dir, Passphrase::from_file_or_env(None)?.as_ref())?;
    let ca = Arc::new(CertificateAuthority::load(
        &files,
        "https://localhost:8443",
    )?);
    let store = SqliteStore::open(&dir.store())?;
    let issuer = ca.issuing().key_id().to_owned();
    let signer: Arc<dyn CrlSigner> = ca;
    let mut times = Vec::with_capacity(runs);
    let mut entries = 0;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let crl = store
            .publish_crl(
                issuer.clone(),
                OffsetDateTime::now_utc(),
                Arc::clone(&signer),
            )
            .await?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        entries = count_entries(&crl.der)?;
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    eprintln!(
        "crl: {entries} entries, regenerated {} times: median {median:.1} ms (min {:.1}, max {:.1})",
        times.len(),
        times[0],
        times[times.len() - 1]
    );
    println!("RESULT kind=crl entries={entries} median_ms={median:.1}");
    Ok(())
}

fn count_entries(der: &[u8]) -> anyhow::Result<usize> {
    use x509_parser::prelude::FromDer;
    let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(der)
        .context("the regenerated CRL does not parse")?;
    Ok(crl.iter_revoked_certificates().count())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A store with the one certificate `seed` copies, as `sigil init`
    /// leaves it.
    fn store_with_one_certificate() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let path = DataDir::new(dir.path().to_owned()).store();
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO certificates (serial, spiffe_id, issuer_key_id, not_before, not_after,
                                       attestation, der, created_at, line_id)
             VALUES ('01000000000000000000000000000001', 'spiffe://seed/ca', 'issuer', 0, 0,
                     'init', x'3000', 0, '01000000000000000000000000000001')",
            [],
        )
        .unwrap();
        dir
    }

    /// For each seeded certificate, the milliseconds from its `not_before`
    /// to the time its serial carries.
    fn serial_time_after_not_before(dir: &Path) -> Vec<i64> {
        let conn = Connection::open(DataDir::new(dir.to_owned()).store()).unwrap();
        let mut statement = conn
            .prepare(
                "SELECT serial, not_before FROM certificates
                 WHERE spiffe_id LIKE 'spiffe://seed.example/%'",
            )
            .unwrap();
        let rows: Vec<(String, i64)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 200);
        rows.iter()
            .map(|(serial, not_before)| {
                assert!(serial.parse::<Serial>().is_ok(), "{serial}");
                i64::from_str_radix(&serial[..12], 16).unwrap() - not_before * 1000
            })
            .collect()
    }

    #[test]
    fn seeded_serials_carry_their_issuance_time_unless_asked_for_random_ones() {
        let dated = store_with_one_certificate();
        seed(dated.path(), 200, 20, false).unwrap();
        let issued_after = serial_time_after_not_before(dated.path());
        // 30 s after `not_before`, plus a millisecond per certificate.
        assert!(issued_after.iter().all(|ms| (30_000..30_200).contains(ms)));

        let random = store_with_one_certificate();
        seed(random.path(), 200, 20, true).unwrap();
        let issued_after = serial_time_after_not_before(random.path());
        let dated_alike = issued_after
            .iter()
            .filter(|ms| (30_000..30_200).contains(*ms));
        assert!(dated_alike.count() < 5);
    }
}
