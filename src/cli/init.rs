//! `sigil init`.

use clap::Args;
use sigil_core::TrustDomain;
use time::OffsetDateTime;

use super::admin::{DEFAULT_ADMIN_TTL, write_admin_credential};
use crate::ca::{CaFiles, KeyType};
use crate::datadir::DataDir;

#[derive(Debug, Args)]
pub(super) struct InitArgs {
    /// The trust domain, such as example.org
    #[arg(long)]
    trust_domain: TrustDomain,
    /// The CA key algorithm
    #[arg(long, default_value = "p256")]
    key_type: KeyType,
}

pub(super) async fn run(dir: &DataDir, args: InitArgs) -> anyhow::Result<()> {
    dir.create_empty()?;
    let files = CaFiles::generate(&args.trust_domain, args.key_type, OffsetDateTime::now_utc())?;
    files.write(dir)?;
    let credential =
        write_admin_credential(dir, "admin", DEFAULT_ADMIN_TTL, &dir.admin_dir()).await?;
    let ca = crate::ca::CertificateAuthority::load(&files, &super::admin::public_url(dir)?)?;
    eprintln!(
        "created trust domain {} in {}\nadmin credential: {} (expires {})",
        args.trust_domain,
        dir.path().display(),
        dir.admin_dir().display(),
        credential.not_after
    );
    println!("{}", ca.root().fingerprint());
    Ok(())
}
