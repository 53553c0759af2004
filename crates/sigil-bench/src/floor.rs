//! The crypto floor: per certificate, what the server must do at the least
//! — verify the CSR's signature (`sigil::csr::verify_csr_pem`, the server's
//! own code) and sign a leaf with the Sigil leaf profile — in-process, with
//! no HTTP and no store.
//!
//! `CertificateAuthority::issue` is `pub(crate)` in the `sigil` crate, so the
//! signing half here rebuilds the same rcgen `CertificateParams` as
//! `src/ca/profile.rs::leaf_params` (same fields, same extensions) and calls
//! the same `signed_by` with the issuing CA's key.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, anyhow};
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, DistinguishedName,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    SubjectPublicKeyInfo,
};
use sigil::ca::CLOCK_SKEW_ALLOWANCE;
use sigil::csr::{KeyPolicy, verify_csr_pem};
use sigil::serial::Serial;
use time::OffsetDateTime;

use crate::KeyKind;

const SPIFFE_ID: &str = "spiffe://example.org/bench/agent";
const CRL_URL: &str = "https://127.0.0.1:8443/v1/crl/bench";
const TTL: time::Duration = time::Duration::hours(1);

fn issuer(data_dir: Option<&Path>) -> anyhow::Result<Issuer<'static, KeyPair>> {
    match data_dir {
        Some(dir) => {
            let dir = sigil::datadir::DataDir::new(dir);
            let read = |path: std::path::PathBuf| {
                std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))
            };
            let key = KeyPair::from_pem(&read(dir.issuing_key())?)?;
            Ok(Issuer::from_ca_cert_pem(&read(dir.issuing_cert())?, key)?)
        }
        None => {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let mut params = CertificateParams::default();
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            Ok(Issuer::new(params, key))
        }
    }
}

/// One certificate's worth of CA crypto.
fn issue_one(csr_pem: &str, issuer: &Issuer<'_, KeyPair>) -> anyhow::Result<usize> {
    let key = verify_csr_pem(csr_pem, KeyPolicy::default()).map_err(|e| anyhow!("{e}"))?;
    let spki = SubjectPublicKeyInfo::from_der(key.spki_der())?;
    let serial = Serial::random().map_err(|_| anyhow!("random source failed"))?;
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .map_err(|e| anyhow!("{e}"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
    params.not_before = now - CLOCK_SKEW_ALLOWANCE;
    params.not_after = now + TTL;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.crl_distribution_points = vec![CrlDistributionPoint {
        uris: vec![CRL_URL.to_owned()],
    }];
    params.subject_alt_names = vec![SanType::URI(
        SPIFFE_ID
            .to_owned()
            .try_into()
            .map_err(|e| anyhow!("{e}"))?,
    )];
    let cert = params.signed_by(&spki, issuer)?;
    Ok(cert.der().len())
}

pub(crate) fn run(
    threads: Option<usize>,
    count: usize,
    kind: KeyKind,
    data_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1);
    let issuer = issuer(data_dir)?;
    // Distinct CSRs, reused round-robin: verifying one is the same work
    // whichever it is.
    let csrs: Vec<String> = crate::generate_csrs(count.clamp(1, 2000), kind)?
        .into_iter()
        .map(|(_, csr)| csr)
        .collect();
    // Warm-up, and a check that the path works at all.
    for csr in csrs.iter().take(50) {
        issue_one(csr, &issuer)?;
    }
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let results: Vec<anyhow::Result<usize>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<usize> {
                    let mut done = 0;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return Ok(done);
                        }
                        let csr = csrs.get(i % csrs.len()).ok_or_else(|| anyhow!("no CSR"))?;
                        issue_one(csr, &issuer)?;
                        done += 1;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("thread panicked"))))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut done = 0;
    for result in results {
        done += result?;
    }
    let rate = done as f64 / elapsed;
    eprintln!(
        "floor: {done} CSR verify + leaf sign in {elapsed:.3}s on {threads} threads -> {rate:.1} ops/s"
    );
    println!(
        "RESULT kind=floor ok={done} errors=0 threads={threads} secs={elapsed:.3} rate={rate:.1}"
    );
    Ok(())
}
