//! `sigil ca rotate`: a new issuing CA takes over from the current one,
//! which is retired (see `crate::ca::rotate_issuing`).

use clap::Subcommand;
use time::OffsetDateTime;

use super::init::checked_issuing_ttl;
use crate::audit::{AuditEvent, LOCAL_ACTOR};
use crate::ca::{CaFiles, Passphrase, rotate_issuing};
use crate::datadir::DataDir;
use crate::duration::HumanDuration;
use crate::rfc3339;
use crate::store::{SqliteStore, Store};

#[derive(Debug, Subcommand)]
pub(super) enum CaCommand {
    /// Replace the issuing CA with a new one signed by the root. The old
    /// one is retired, not revoked: its leaves stay valid and renewable,
    /// and its CRL stays published until they expire. `sigil serve` uses
    /// the new one from its next start. Prints the new issuing CA's key id.
    Rotate {
        /// How long the new issuing CA lives (at most the root's 10 years)
        #[arg(long, default_value = "365d")]
        issuing_ttl: HumanDuration,
    },
}

pub(super) async fn run(
    dir: &DataDir,
    command: CaCommand,
    passphrase: Option<Passphrase>,
) -> anyhow::Result<()> {
    let CaCommand::Rotate { issuing_ttl } = command;
    let lifetime = checked_issuing_ttl(issuing_ttl)?;
    let files = CaFiles::read(dir, passphrase.as_ref())?;
    let rotation = rotate_issuing(
        dir,
        &files,
        passphrase.as_ref(),
        lifetime,
        OffsetDateTime::now_utc(),
    )?;
    let store = SqliteStore::open(&dir.store())?;
    store
        .append_audit(vec![AuditEvent::now(
            LOCAL_ACTOR,
            "ca.rotate",
            rotation.issuing_key_id.clone(),
            serde_json::json!({
                "retired_key_id": rotation.retired_key_id,
                "issuing_key_id": rotation.issuing_key_id,
                "not_after": rfc3339::format(rotation.not_after),
            }),
        )])
        .await?;
    eprintln!(
        "issuing CA {} (expires {}) replaces {}, now retired; restart `sigil serve` to issue from it",
        rotation.issuing_key_id,
        rfc3339::format(rotation.not_after),
        rotation.retired_key_id,
    );
    println!("{}", rotation.issuing_key_id);
    Ok(())
}
