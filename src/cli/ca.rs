//! `sigil ca rotate`: a new issuing CA takes over from the current one,
//! which is retired (see `crate::rotation`): through the running server's
//! `POST /admin/v1/ca/rotate`, or on a stopped CA with `--offline`.
//! `sigil ca root rotate` starts a root rotation (see
//! `crate::root_rotation`) the same two ways.

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::admin_connection::AdminConnection;
use super::init::checked_issuing_ttl;
use super::local::{local_issuance, public_url};
use crate::audit::LOCAL_ACTOR;
use crate::ca::{DEFAULT_CRL_VALIDITY, Passphrase};
use crate::config::MAX_ROOT_ACTIVATION_DELAY;
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
    /// The root CA
    #[command(subcommand)]
    Root(RootCommand),
}

#[derive(Debug, Subcommand)]
pub(super) enum RootCommand {
    /// Start a root rotation: a new root joins the trust bundle beside the
    /// current one now (the bundle's spiffe_sequence grows), and after
    /// --activate-after it signs a new issuing CA, which takes over. The
    /// old root stays in the bundle until no live certificate chains to
    /// it. Agents and relying parties following the CA pick up both
    /// changes by themselves; anything that pinned the old root's
    /// fingerprint must be given the new one, which this prints.
    Rotate {
        /// How long the new root waits in the bundle before it takes over:
        /// long enough for everything that trusts the CA to fetch the
        /// bundle, 0s to 365d
        #[arg(long, default_value = "1d")]
        activate_after: HumanDuration,
        /// Add the root to the files of a stopped CA instead of asking the
        /// running server; `sigil serve` publishes it from its next start
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
    let (issuing_ttl, revoke_current, offline, connection) = match command {
        CaCommand::Rotate {
            issuing_ttl,
            revoke_current,
            offline,
            connection,
        } => (issuing_ttl, revoke_current, offline, connection),
        CaCommand::Root(RootCommand::Rotate {
            activate_after,
            offline,
            connection,
        }) => return rotate_root(dir, activate_after, offline, connection, passphrase).await,
    };
    let lifetime = checked_issuing_ttl(issuing_ttl)?;
    let (issuing_key_id, retired_key_id, not_after) = if offline {
        let _ca_lock = offline_lock(dir)?;
        let issuance = local_issuance(dir, passphrase.as_ref())?;
        let by = issuance.ca().trust_domain().id();
        let settings = rotation_settings(dir, passphrase)?;
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

/// The data dir's CA lock, for an offline rotation.
fn offline_lock(dir: &DataDir) -> anyhow::Result<std::fs::File> {
    dir.lock_ca().context(
        "--offline rotates a stopped CA: stop `sigil serve` first, or rotate through it \
         without --offline",
    )
}

/// How a stopped CA rotates: its CRLs wait in the store for its next start.
fn rotation_settings(
    dir: &DataDir,
    passphrase: Option<Passphrase>,
) -> anyhow::Result<RotationSettings> {
    Ok(RotationSettings {
        dir: dir.clone(),
        passphrase,
        public_url: public_url(dir)?,
        crl_validity: DEFAULT_CRL_VALIDITY,
    })
}

/// Below this, relying parties that refresh the bundle on the SPIFFE
/// refresh hint may not have the new root when it takes over.
const SHORTEST_SAFE_ACTIVATION_DELAY: std::time::Duration = std::time::Duration::from_secs(300);

/// `sigil ca root rotate`.
async fn rotate_root(
    dir: &DataDir,
    activate_after: HumanDuration,
    offline: bool,
    connection: AdminConnection,
    passphrase: Option<Passphrase>,
) -> anyhow::Result<()> {
    let delay = activate_after.get();
    if delay > MAX_ROOT_ACTIVATION_DELAY {
        bail!("--activate-after must lie between 0s and 365d");
    }
    if delay < SHORTEST_SAFE_ACTIVATION_DELAY {
        eprintln!(
            "warning: the new root takes over in {}s. Agents and sigil-verifier live sources \
             learn of it within a second, but relying parties that fetch the bundle on a \
             schedule (every 5 minutes is the SPIFFE refresh hint) may meet leaves of a root \
             they do not have yet",
            delay.as_secs()
        );
    }
    let answer: Value = if offline {
        let _ca_lock = offline_lock(dir)?;
        let issuance = local_issuance(dir, passphrase.as_ref())?;
        let settings = rotation_settings(dir, passphrase)?;
        // A stopped CA: the new root's CRL is in the store for its next
        // start.
        let added = issuance
            .add_root(&settings, delay, LOCAL_ACTOR, |_| {})
            .await?;
        json!({
            "root_key_id": added.root.key_id(),
            "fingerprint": added.root.fingerprint(),
            "activate_at": crate::rfc3339::format(added.activate_at),
        })
    } else {
        let client = connection.client(dir)?;
        let body = json!({ "activate_after_seconds": delay.as_secs() });
        client
            .post_json("/admin/v1/ca/root/rotate", &body)
            .await?
            .success()?
            .json()?
    };
    let text = |key: &str| answer[key].as_str().unwrap_or_default().to_owned();
    let restart = if offline {
        " (restart `sigil serve` to publish it)"
    } else {
        ""
    };
    eprintln!(
        "root {} joins the trust bundle{restart}; it takes over at {}. Give its fingerprint \
         to anything that pinned the current root's:",
        text("root_key_id"),
        text("activate_at")
    );
    println!("{}", text("fingerprint"));
    Ok(())
}
