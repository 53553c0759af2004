//! Commands that work from the data dir alone, with no server:
//! `sigil admin credential` and `sigil fingerprint`, and what `init` and
//! `serve --dev` share with them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::ca::{CaFiles, CertificateAuthority, IssuedCertificate, Passphrase};
use crate::datadir::{self, DataDir};
use crate::duration::HumanDuration;
use crate::issuance::{Issuance, IssuanceError};
use crate::namespace::Namespace;
use crate::store::{SqliteStore, StoreError};

/// An admin credential lives this long unless asked otherwise.
pub(super) const DEFAULT_ADMIN_TTL: Duration = Duration::from_secs(8 * 3600);
/// And at most this long: admin credentials are not renewable, so a stolen
/// one dies with its TTL.
const MAX_ADMIN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Where leaves point for their CRL when no server has recorded its URL.
const DEFAULT_PUBLIC_URL: &str = "https://localhost:8443";

#[derive(Debug, Subcommand)]
pub(super) enum AdminCommand {
    /// Mint a fresh short-lived admin credential from the data dir (needs no
    /// server).
    Credential {
        /// The admin's name: spiffe://<td>/sigil/admin/<NAME>
        #[arg(long, default_value = "admin")]
        name: String,
        /// Lifetime, at most 24h
        #[arg(long, default_value = "8h")]
        ttl: HumanDuration,
        /// Directory for svid.pem and svid.key [default: DATA_DIR/admin]
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// The public URL leaves name for their CRL: the one `sigil serve`
/// recorded, else the default.
pub(super) fn public_url(dir: &DataDir) -> anyhow::Result<String> {
    match std::fs::read_to_string(dir.public_url()) {
        Ok(url) => Ok(url.trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok(DEFAULT_PUBLIC_URL.to_owned())
        }
        Err(error) => Err(error).context("reading the recorded public URL"),
    }
}

pub(super) fn local_issuance(
    dir: &DataDir,
    passphrase: Option<&Passphrase>,
) -> anyhow::Result<Issuance> {
    let files = CaFiles::read(dir, passphrase)?;
    let ca = CertificateAuthority::load(&files, &public_url(dir)?)?;
    let store = SqliteStore::open(&dir.store())?;
    Ok(Issuance::new(Arc::new(ca), Arc::new(store)))
}

/// Mints an admin credential and writes `svid.pem` (leaf, then issuing CA)
/// and `svid.key` (mode 0600) into `out`.
pub(super) async fn write_admin_credential(
    dir: &DataDir,
    passphrase: Option<&Passphrase>,
    name: &str,
    ttl: Duration,
    out: &std::path::Path,
) -> anyhow::Result<IssuedCertificate> {
    if ttl.is_zero() || ttl > MAX_ADMIN_TTL {
        bail!("an admin credential's --ttl must lie between 1s and 24h");
    }
    let issuance = local_issuance(dir, passphrase)?;
    let spiffe_id = Namespace::new(issuance.ca().trust_domain()).admin(name)?;
    let (issued, key) = match issuance
        .mint_local("admin.credential", &spiffe_id, &[], &[], ttl)
        .await
    {
        Err(IssuanceError::Store(StoreError::Banned(_))) => {
            bail!("{spiffe_id} is banned; another admin can lift the ban with `sigil unban`")
        }
        minted => minted?,
    };
    datadir::write_secret(&out.join("svid.key"), key.serialize_pem().as_bytes())?;
    datadir::write_public(
        &out.join("svid.pem"),
        issuance.ca().chain_pem(&issued).as_bytes(),
    )?;
    Ok(issued)
}

pub(super) fn fingerprint(dir: &DataDir) -> anyhow::Result<()> {
    println!("{}", CaFiles::read_root_fingerprint(dir)?);
    Ok(())
}

pub(super) async fn run_admin(
    dir: &DataDir,
    command: AdminCommand,
    passphrase: Option<Passphrase>,
) -> anyhow::Result<()> {
    match command {
        AdminCommand::Credential { name, ttl, out } => {
            let out = out.unwrap_or_else(|| dir.admin_dir());
            let issued =
                write_admin_credential(dir, passphrase.as_ref(), &name, ttl.get(), &out).await?;
            eprintln!(
                "{} until {}: {}",
                issued.spiffe_id,
                crate::rfc3339::format(issued.not_after),
                out.display()
            );
            println!("{}", out.join("svid.pem").display());
            Ok(())
        }
    }
}
