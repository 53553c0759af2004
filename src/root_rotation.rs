//! Rotating the root as the service does it: each step of
//! [`crate::ca::add_root`], [`crate::ca::activate_root`] and
//! [`crate::ca::drop_root`] on the files, then the CA in force, the CRLs a
//! new CA publishes before anyone meets it, and the audit log.
//!
//! `POST /admin/v1/ca/root/rotate` (`sigil ca root rotate`) takes the first
//! step; the rotation schedule takes the other two when they are due: the
//! next root takes over at its activation time, and the previous root is
//! dropped once no live leaf chains to it.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::audit::AuditEvent;
use crate::ca::{
    CaFiles, CertificateAuthority, RootActivation, RootAddition, activate_root, add_root, drop_root,
};
use crate::issuance::Issuance;
use crate::namespace::Namespace;
use crate::revocation::{CrlSigner, SignedCrl};
use crate::rfc3339;
use crate::rotation::RotationSettings;

impl Issuance {
    /// Step 1: a new root joins the bundle, to take over after
    /// `activate_after`. Its first CRL goes to `publish` just after the
    /// bundle shows it, which tells long-polling relying parties to fetch
    /// the bundle again.
    ///
    /// # Errors
    ///
    /// A root rotation is already under way, a file cannot be read or
    /// written, a key made, or the store cannot record.
    pub async fn add_root(
        &self,
        settings: &RotationSettings,
        activate_after: Duration,
        actor: &str,
        publish: impl Fn(Vec<SignedCrl>),
    ) -> anyhow::Result<RootAddition> {
        let now = OffsetDateTime::now_utc();
        let files = CaFiles::read(&settings.dir, settings.passphrase.as_ref())?;
        let added = add_root(
            &settings.dir,
            &files,
            settings.passphrase.as_ref(),
            now + activate_after,
            now,
        )?;
        drop(files);
        // No leaf chains to the new root yet, so the bundle may show it
        // before its CRL is out; and the CRL, published after, wakes the
        // long polls, whose answers then carry the new bundle sequence.
        let ca = settings.load_ca()?;
        self.replace_ca(Arc::clone(&ca));
        publish(vec![
            self.sign_crl_now(&ca, added.root.key_id(), now).await?,
        ]);
        let details = serde_json::json!({
            "root_key_id": added.root.key_id(),
            "fingerprint": added.root.fingerprint(),
            "not_after": rfc3339::format(added.root.not_after()),
            "activate_at": rfc3339::format(added.activate_at),
            "spiffe_sequence": added.sequence,
        });
        self.audit(actor, "ca.root.add", added.root.key_id(), details)
            .await?;
        Ok(added)
    }

    /// Step 2: the next root signs a new issuing CA living `lifetime`,
    /// which takes over. Its first CRL goes to `publish` before any leaf
    /// names it.
    ///
    /// # Errors
    ///
    /// No root waits, a file cannot be read or written, a key made, or the
    /// store cannot record.
    pub async fn activate_root(
        &self,
        settings: &RotationSettings,
        lifetime: Duration,
        actor: &str,
        publish: impl Fn(Vec<SignedCrl>),
    ) -> anyhow::Result<RootActivation> {
        let now = OffsetDateTime::now_utc();
        let files = CaFiles::read(&settings.dir, settings.passphrase.as_ref())?;
        let activated = activate_root(
            &settings.dir,
            &files,
            settings.passphrase.as_ref(),
            lifetime,
            now,
        )?;
        drop(files);
        let issuing = &activated.rotation.issuing_key_id;
        self.take_over(settings.load_ca()?, issuing, now, publish)
            .await?;
        let details = serde_json::json!({
            "root_key_id": activated.root_key_id,
            "previous_root_key_id": activated.previous_root_key_id,
            "issuing_key_id": issuing,
            "retired_key_id": activated.rotation.retired_key_id,
        });
        self.audit(actor, "ca.root.activate", &activated.root_key_id, details)
            .await?;
        Ok(activated)
    }

    /// Step 3: the previous root `key_id` leaves the bundle. Returns the
    /// bundle's new sequence.
    ///
    /// # Errors
    ///
    /// `key_id` is not a previous root, a file cannot be read or written,
    /// or the store cannot record.
    pub async fn drop_root(
        &self,
        settings: &RotationSettings,
        key_id: &str,
        actor: &str,
    ) -> anyhow::Result<u64> {
        let files = CaFiles::read(&settings.dir, settings.passphrase.as_ref())?;
        let sequence = drop_root(&settings.dir, &files, key_id)?;
        drop(files);
        self.replace_ca(settings.load_ca()?);
        let details = serde_json::json!({ "spiffe_sequence": sequence });
        self.audit(actor, "ca.root.drop", key_id, details).await?;
        Ok(sequence)
    }

    /// When the last live leaf chaining to the previous root `key_id`
    /// expires; `None` once none is left, so the root can go. The CA's own
    /// server certificate is left out: the server takes a new one when
    /// the next root takes over.
    ///
    /// # Errors
    ///
    /// The store cannot be read.
    pub async fn previous_root_needed_until(
        &self,
        key_id: &str,
    ) -> anyhow::Result<Option<OffsetDateTime>> {
        let ca = self.ca();
        let server = Namespace::new(ca.trust_domain()).server().clone();
        Ok(self
            .store()
            .latest_live_expiry(
                ca.issuing_cas_under(key_id),
                server,
                OffsetDateTime::now_utc(),
            )
            .await?)
    }

    /// Puts `ca`, just loaded from files a rotation changed, in force once
    /// the first CRL of its new CA `key_id` has gone to `publish`: a
    /// relying party must never meet a leaf whose issuer has no CRL yet.
    /// It is put in force even when the store cannot sign that CRL, or the
    /// CA in force would no longer match its files (and the schedule would
    /// retry a step already taken); the CRL re-signer then publishes the
    /// missing CRL within its next cycle.
    ///
    /// # Errors
    ///
    /// The CRL could not be signed or recorded.
    pub(crate) async fn take_over(
        &self,
        ca: Arc<CertificateAuthority>,
        key_id: &str,
        now: OffsetDateTime,
        publish: impl Fn(Vec<SignedCrl>),
    ) -> anyhow::Result<()> {
        let first_crl = self.sign_crl_now(&ca, key_id, now).await;
        if let Ok(crl) = &first_crl {
            publish(vec![crl.clone()]);
        }
        self.replace_ca(ca);
        first_crl.map(drop)
    }

    /// Signs and records a CRL of the CA `key_id` of `ca` now (its first,
    /// for a new CA).
    pub(crate) async fn sign_crl_now(
        &self,
        ca: &Arc<CertificateAuthority>,
        key_id: &str,
        now: OffsetDateTime,
    ) -> anyhow::Result<SignedCrl> {
        let signer: Arc<dyn CrlSigner> = ca.clone();
        Ok(self
            .store()
            .publish_crl(key_id.to_owned(), now, signer)
            .await?)
    }

    async fn audit(
        &self,
        actor: &str,
        action: &'static str,
        subject: &str,
        details: serde_json::Value,
    ) -> anyhow::Result<()> {
        self.store()
            .append_audit(vec![AuditEvent::now(actor, action, subject, details)])
            .await?;
        Ok(())
    }
}
