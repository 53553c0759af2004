//! Rotating the issuing CA of a data dir as the service does it: the
//! files ([`crate::ca::rotate_issuing`]), then the CA in force, the new
//! issuer's first CRL, and, for a suspected compromise, the revocation of
//! the replaced CA in the root's CRL. The server runs it for
//! `POST /admin/v1/ca/rotate`, while requests go on: each keeps the CA it
//! started with. `sigil ca rotate --offline` runs it on a stopped CA.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use sigil_core::SpiffeId;
use time::OffsetDateTime;

use crate::audit::AuditEvent;
use crate::ca::{CaFiles, CertificateAuthority, Passphrase, Rotation, rotate_issuing};
use crate::datadir::DataDir;
use crate::issuance::Issuance;
use crate::revocation::{CrlSigner, ReasonCode, SignedCrl};
use crate::rfc3339;
use crate::store::{
    AttestationKind, AuditFn, CertificateRecord, RevocationOutcome, RevocationRequest,
    RevocationTarget,
};

/// What a rotation needs besides the CA in force.
#[derive(Debug)]
pub struct RotationSettings {
    /// The data dir whose `ca/` files change.
    pub dir: DataDir,
    /// Encrypts the new key when the CA's keys are encrypted.
    pub passphrase: Option<Passphrase>,
    /// Where leaves find their CRLs.
    pub public_url: String,
    /// How long the issuing CA's CRLs are valid.
    pub crl_validity: Duration,
}

impl RotationSettings {
    /// Loads the CA of the data dir as it is on disk now.
    ///
    /// # Errors
    ///
    /// A file cannot be read or does not load.
    pub(crate) fn load_ca(&self) -> anyhow::Result<Arc<CertificateAuthority>> {
        let files = CaFiles::read(&self.dir, self.passphrase.as_ref())?;
        Ok(Arc::new(
            CertificateAuthority::load(&files, &self.public_url)?
                .with_crl_validity(self.crl_validity),
        ))
    }
}

/// What to rotate.
#[derive(Debug, Clone, Copy)]
pub struct RotationRequest {
    /// How long the new issuing CA lives.
    pub lifetime: Duration,
    /// Revoke the replaced issuing CA in the root's CRL.
    pub revoke_current: bool,
}

impl Issuance {
    /// Rotates the issuing CA: new files, then the new issuer's first CRL,
    /// handed to `publish` before the new CA is put in force (a relying
    /// party must never meet a leaf whose issuer has no CRL yet), then
    /// (if asked) the revocation of the old one, also handed to `publish`;
    /// `actor` and `by` name who asked in the audit log.
    ///
    /// # Errors
    ///
    /// A file cannot be read or written, a key made, or the store cannot
    /// record. A failure after the files changed leaves the new CA on disk
    /// for the next start.
    pub async fn rotate(
        &self,
        settings: &RotationSettings,
        request: RotationRequest,
        actor: &str,
        by: &SpiffeId,
        publish: impl Fn(Vec<SignedCrl>),
    ) -> anyhow::Result<Rotation> {
        let passphrase = settings.passphrase.as_ref();
        let now = OffsetDateTime::now_utc();
        let files = CaFiles::read(&settings.dir, passphrase)?;
        let rotation = rotate_issuing(&settings.dir, &files, passphrase, request.lifetime, now)?;
        drop(files);
        let ca = settings.load_ca()?;
        self.take_over(Arc::clone(&ca), &rotation.issuing_key_id, now, &publish)
            .await?;
        self.store()
            .append_audit(vec![AuditEvent::now(
                actor,
                "ca.rotate",
                rotation.issuing_key_id.clone(),
                serde_json::json!({
                    "retired_key_id": rotation.retired_key_id,
                    "issuing_key_id": rotation.issuing_key_id,
                    "not_after": rfc3339::format(rotation.not_after),
                    "revoke_current": request.revoke_current,
                }),
            )])
            .await?;
        if request.revoke_current {
            publish(
                self.revoke_retired(&ca, &rotation.retired_key_id, actor, by)
                    .await?,
            );
        }
        Ok(rotation)
    }

    /// Records the retired issuing CA `key_id` in the store (under the
    /// root) and revokes it there, which re-signs the root's CRL to list
    /// it.
    async fn revoke_retired(
        &self,
        ca: &Arc<CertificateAuthority>,
        key_id: &str,
        actor: &str,
        by: &SpiffeId,
    ) -> anyhow::Result<Vec<SignedCrl>> {
        let retired = ca
            .retired()
            .find(|issuer| issuer.key_id() == key_id)
            .ok_or_else(|| anyhow!("the retired issuing CA {key_id} is missing"))?;
        let serial = retired
            .serial()
            .ok_or_else(|| anyhow!("issuing CA {key_id} has a serial Sigil did not make"))?;
        let now = OffsetDateTime::now_utc();
        let store = self.store();
        if store.find_certificate(serial).await?.is_none() {
            let record = CertificateRecord {
                serial,
                spiffe_id: ca.trust_domain().id(),
                // Its own root: a root rotation may have replaced it.
                issuer_key_id: retired
                    .authority_key_id()
                    .unwrap_or(ca.root().key_id())
                    .to_owned(),
                not_before: retired.not_before(),
                not_after: retired.not_after(),
                attestation: AttestationKind::IssuingCa,
                parent_serial: None,
                der: retired.der().to_vec(),
                created_at: now,
            };
            store
                .record_certificate(record, Vec::new())
                .await
                .context("recording the issuing CA")?;
        }
        let signer: Arc<dyn CrlSigner> = ca.clone();
        let (actor, subject) = (actor.to_owned(), key_id.to_owned());
        let audit: AuditFn<RevocationOutcome> = Box::new(move |outcome| match outcome {
            RevocationOutcome::Revoked {
                crls,
                changed: true,
                ..
            } => vec![AuditEvent::now(
                actor,
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
        let outcome = store
            .revoke(
                RevocationRequest {
                    target: RevocationTarget::Serial(serial),
                    reason: ReasonCode::CaCompromise,
                    by: by.clone(),
                    now,
                },
                signer,
                audit,
            )
            .await?;
        Ok(match outcome {
            RevocationOutcome::Revoked { crls, .. } => crls,
            RevocationOutcome::UnknownSerial => Vec::new(),
        })
    }
}
