//! `sigil-bench seed` and `sigil-bench crl`: the scale measurements of
//! issue 7. `seed` fills a data dir's store with certificates (a share of
//! them revoked and unexpired) as a long-running CA would hold them, by
//! direct SQL in one transaction; `crl` then times what a revocation costs
//! the CA: the store query, signing and storing the issuing CA's CRL.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context, bail};
use rusqlite::{Connection, params};
use sigil::ca::{CaFiles, CertificateAuthority, Passphrase};
use sigil::datadir::DataDir;
use sigil::revocation::CrlSigner;
use sigil::serial::Serial;
use sigil::store::{SqliteStore, Store};
use time::OffsetDateTime;

/// Adds `count` certificates to the store of `data_dir`, of which
/// `revoked` are revoked and unexpired. Each starts its own line, as an
/// attestation does (a line gets a row in `lines` only once it renews),
/// and carries the DER of the CA's own first certificate
/// (a real leaf of the usual size); each serial carries its certificate's
/// issuance time, as the CA's own do.
pub(crate) fn seed(data_dir: &Path, count: u64, revoked: u64) -> anyhow::Result<()> {
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
            let issued = UNIX_EPOCH + Duration::from_secs(not_before.unsigned_abs());
            let serial = Serial::generate_at(issued)
                .map_err(|_| anyhow::anyhow!("random source"))?
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
