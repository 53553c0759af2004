//! `sigil ca rotate`: a new issuing CA takes over from the current one,
//! which is retired (see `crate::ca::rotate_issuing`).

use std::sync::Arc;

use anyhow::anyhow;
use clap::Subcommand;
use time::OffsetDateTime;

use super::init::checked_issuing_ttl;
use super::local::public_url;
use crate::audit::{AuditEvent, LOCAL_ACTOR};
use crate::ca::{CaFiles, CertificateAuthority, Passphrase, rotate_issuing};
use crate::datadir::DataDir;
use crate::duration::HumanDuration;
use crate::revocation::{CrlSigner, ReasonCode};
use crate::rfc3339;
use crate::store::{
    AttestationKind, AuditFn, CertificateRecord, RevocationOutcome, RevocationRequest,
    RevocationTarget, SqliteStore, Store,
};

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
        /// Also revoke the issuing CA being replaced, in the root's CRL
        /// (reason cACompromise), for a suspected compromise: every leaf
        /// it signed is then refused by relying parties, and agents must
        /// renew (their renewal still works) or attest again
        #[arg(long)]
        revoke_current: bool,
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
    } = command;
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
    if revoke_current {
        revoke_retired(dir, passphrase.as_ref(), &store, &rotation.retired_key_id).await?;
        eprintln!(
            "issuing CA {} is revoked in the root's CRL",
            rotation.retired_key_id
        );
    }
    eprintln!(
        "issuing CA {} (expires {}) replaces {}, now retired; restart `sigil serve` to issue from it",
        rotation.issuing_key_id,
        rfc3339::format(rotation.not_after),
        rotation.retired_key_id,
    );
    println!("{}", rotation.issuing_key_id);
    Ok(())
}

/// Records the retired issuing CA `key_id` in the store (under the root)
/// and revokes it there, which re-signs the root's CRL to list it.
async fn revoke_retired(
    dir: &DataDir,
    passphrase: Option<&Passphrase>,
    store: &SqliteStore,
    key_id: &str,
) -> anyhow::Result<()> {
    let files = CaFiles::read(dir, passphrase)?;
    let ca = Arc::new(CertificateAuthority::load(&files, &public_url(dir)?)?);
    let retired = ca
        .retired()
        .find(|issuer| issuer.key_id() == key_id)
        .ok_or_else(|| anyhow!("the retired issuing CA {key_id} is missing"))?;
    let serial = retired
        .serial()
        .ok_or_else(|| anyhow!("issuing CA {key_id} has a serial Sigil did not make"))?;
    let now = OffsetDateTime::now_utc();
    if store.find_certificate(serial).await?.is_none() {
        let record = CertificateRecord {
            serial,
            spiffe_id: ca.trust_domain().id(),
            issuer_key_id: ca.root().key_id().to_owned(),
            not_before: retired.not_before(),
            not_after: retired.not_after(),
            attestation: AttestationKind::IssuingCa,
            parent_serial: None,
            der: retired.der().to_vec(),
            created_at: now,
        };
        store.record_certificate(record, Vec::new()).await?;
    }
    let signer: Arc<dyn CrlSigner> = ca.clone();
    let subject = key_id.to_owned();
    let audit: AuditFn<RevocationOutcome> = Box::new(move |outcome| match outcome {
        RevocationOutcome::Revoked {
            crls,
            changed: true,
            ..
        } => vec![AuditEvent::now(
            LOCAL_ACTOR,
            "ca.revoke",
            subject,
            serde_json::json!({
                "serial": serial.to_string(),
                "reason": ReasonCode::CaCompromise.to_string(),
                "crl_numbers": crls.iter().map(|crl| crl.number).collect::<Vec<_>>(),
            }),
        )],
        _ => Vec::new(),
    });
    store
        .revoke(
            RevocationRequest {
                target: RevocationTarget::Serial(serial),
                reason: ReasonCode::CaCompromise,
                by: ca.trust_domain().id(),
                now,
            },
            signer,
            audit,
        )
        .await?;
    Ok(())
}
