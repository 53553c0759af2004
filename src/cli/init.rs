//! `sigil init`.

use anyhow::bail;
use clap::Args;
use sigil_core::TrustDomain;
use time::OffsetDateTime;

use super::local::{DEFAULT_ADMIN_TTL, write_admin_credential};
use crate::audit::{AuditEvent, AuditKey, LOCAL_ACTOR};
use crate::ca::{CaFiles, KeyType, Passphrase, ROOT_LIFETIME};
use crate::datadir::DataDir;
use crate::duration::HumanDuration;
use crate::store::{SqliteStore, Store};

/// An issuing CA shorter-lived than this would outlive few of its leaves.
const MIN_ISSUING_TTL: std::time::Duration = std::time::Duration::from_secs(86_400);

#[derive(Debug, Args)]
pub(super) struct InitArgs {
    /// The trust domain, such as example.org
    #[arg(long)]
    trust_domain: TrustDomain,
    /// The CA key algorithm
    #[arg(long, default_value = "p256")]
    key_type: KeyType,
    /// How long the issuing CA lives (at most the root's 10 years)
    #[arg(long, default_value = "365d")]
    issuing_ttl: HumanDuration,
}

/// The first record of the audit log: which CA this log belongs to.
async fn record_init(dir: &DataDir, files: &CaFiles) -> anyhow::Result<()> {
    let ca = crate::ca::CertificateAuthority::load(files, &super::local::public_url(dir)?)?;
    let store = SqliteStore::open(&dir.store())?;
    store
        .append_audit(vec![AuditEvent::now(
            LOCAL_ACTOR,
            "ca.init",
            ca.trust_domain().to_string(),
            serde_json::json!({
                "root_fingerprint": ca.root().fingerprint(),
                "issuing_key_id": ca.issuing().key_id(),
            }),
        )])
        .await?;
    Ok(())
}

/// An issuing CA's lifetime, between a day and the root's ten years.
pub(super) fn checked_issuing_ttl(ttl: HumanDuration) -> anyhow::Result<std::time::Duration> {
    let ttl = ttl.get();
    if ttl < MIN_ISSUING_TTL || ttl > ROOT_LIFETIME {
        bail!("--issuing-ttl must lie between 1d and 3650d");
    }
    Ok(ttl)
}

pub(super) async fn run(
    dir: &DataDir,
    args: InitArgs,
    passphrase: Option<Passphrase>,
) -> anyhow::Result<()> {
    let issuing_ttl = checked_issuing_ttl(args.issuing_ttl)?;
    dir.create_empty()?;
    let files = CaFiles::generate(
        &args.trust_domain,
        args.key_type,
        issuing_ttl,
        OffsetDateTime::now_utc(),
    )?;
    files.write(dir, passphrase.as_ref())?;
    AuditKey::load_or_create(dir)?;
    record_init(dir, &files).await?;
    let credential = write_admin_credential(
        dir,
        passphrase.as_ref(),
        "admin",
        DEFAULT_ADMIN_TTL,
        &dir.admin_dir(),
    )
    .await?;
    let ca = crate::ca::CertificateAuthority::load(&files, &super::local::public_url(dir)?)?;
    eprintln!(
        "created trust domain {} in {}{}\nadmin credential: {} (expires {})",
        args.trust_domain,
        dir.path().display(),
        if passphrase.is_some() {
            " (CA keys encrypted with the passphrase)"
        } else {
            ""
        },
        dir.admin_dir().display(),
        crate::rfc3339::format(credential.not_after)
    );
    println!("{}", ca.root().fingerprint());
    Ok(())
}
