//! `sigil ca rotate`: a new issuing CA takes over from the current one,
//! which is retired (see `crate::rotation`): through the running server's
//! `POST /admin/v1/ca/rotate`, or on a stopped CA with `--offline`.

use clap::Subcommand;
use serde_json::{Value, json};

use super::admin_connection::AdminConnection;
use super::init::checked_issuing_ttl;
use super::local::{local_issuance, public_url};
use crate::audit::LOCAL_ACTOR;
use crate::ca::{DEFAULT_CRL_VALIDITY, Passphrase};
use crate::datadir::DataDir;
use crate::duration::HumanDuration;
use crate::rotation::{RotationRequest, RotationSettings};

#[derive(Debug, Subcommand)]
pub(super) enum CaCommand {
    /// Replace the issuing CA with a new one signed by the root. The old
    /// one is retired, not revoked: its leaves stay valid and renewable,
    /// and its CRL stays published until they expire. The bundle does not
    /// change. Prints the new issuing CA's key id.
    Rotate {
        /// How long the new issuing CA lives (at most the root's 10 years)
        #[arg(long, default_value = "365d")]
        issuing_ttl: HumanDuration,
        /// Also revoke the issuing CA being replaced, in the root's CRL
        /// (reason cACompromise), for a suspected compromise: every leaf
        /// it signed is then refused by relying parties, and agents must
        /// renew (their renewal still works) or attest again
        #[arg(long)]
        revoke_current: bool,
        /// Rotate the files of a stopped CA instead of asking the running
        /// server; `sigil serve` uses the new CA from its next start
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        connection: AdminConnection,
    },
}

pub(super) async fn run(
    dir: &DataDir,
    command: CaCommand,
    passphrase: Option<Passphrase>,
) -> anyhow::Result<()> {
    let CaCommand::Rotate {
        issuing_ttl,
        revoke_current,
        offline,
        connection,
    } = command;
    let lifetime = checked_issuing_ttl(issuing_ttl)?;
    let (issuing_key_id, retired_key_id, not_after) = if offline {
        let issuance = local_issuance(dir, passphrase.as_ref())?;
        let by = issuance.ca().trust_domain().id();
        let settings = RotationSettings {
            dir: dir.clone(),
            passphrase,
            public_url: public_url(dir)?,
            crl_validity: DEFAULT_CRL_VALIDITY,
        };
        let request = RotationRequest {
            lifetime,
            revoke_current,
        };
        // A stopped CA: the CRLs are in the store for its next start.
        let rotation = issuance
            .rotate(&settings, request, LOCAL_ACTOR, &by, |_| {})
            .await?;
        (
            rotation.issuing_key_id,
            rotation.retired_key_id,
            crate::rfc3339::format(rotation.not_after),
        )
    } else {
        let client = connection.client(dir)?;
        let body = json!({
            "issuing_ttl_seconds": lifetime.as_secs(),
            "revoke_current": revoke_current,
        });
        let answer: Value = client
            .post_json("/admin/v1/ca/rotate", &body)
            .await?
            .success()?
            .json()?;
        let text = |key: &str| answer[key].as_str().unwrap_or_default().to_owned();
        (
            text("issuing_key_id"),
            text("retired_key_id"),
            text("not_after"),
        )
    };
    if revoke_current {
        eprintln!("issuing CA {retired_key_id} is revoked in the root's CRL");
    }
    let when = if offline {
        "; restart `sigil serve` to issue from it"
    } else {
        ", in force now"
    };
    eprintln!(
        "issuing CA {issuing_key_id} (expires {not_after}) replaces {retired_key_id}, now retired{when}"
    );
    println!("{issuing_key_id}");
    Ok(())
}
