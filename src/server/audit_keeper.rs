//! Keeps the audit log honest over time: every minute (and at shutdown) it
//! writes the counted anonymous refusals and signs a checkpoint of the
//! log's head with the audit key.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::audit::{AuditKey, Checkpoint, GENESIS_HASH, RefusalCounter};
use crate::store::Store;

/// How often refusals are written and the head is checkpointed.
const INTERVAL: Duration = Duration::from_secs(60);
/// How many records one read of the log returns.
const PAGE: u32 = 1000;

/// Writes refusals and checkpoints.
pub(super) struct AuditKeeper {
    store: Arc<dyn Store>,
    key: AuditKey,
    refusals: Arc<RefusalCounter>,
}

impl AuditKeeper {
    pub(super) fn new(store: Arc<dyn Store>, key: AuditKey, refusals: Arc<RefusalCounter>) -> Self {
        Self {
            store,
            key,
            refusals,
        }
    }

    /// Runs [`AuditKeeper::tick`] every minute, in the background.
    pub(super) fn spawn(self: Arc<Self>) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(INTERVAL).await;
                self.tick().await;
            }
        });
    }

    /// Writes the counted refusals, then checkpoints the head if it moved.
    pub(super) async fn tick(&self) {
        let refusals = self.refusals.drain();
        if !refusals.is_empty()
            && let Err(error) = self.store.append_audit(refusals).await
        {
            tracing::error!(%error, "writing refusals to the audit log failed");
        }
        if let Err(error) = self.checkpoint().await {
            tracing::error!(error = %format!("{error:#}"), "checkpointing the audit log failed");
        }
    }

    /// Signs the head, but only if the log still continues the last signed
    /// checkpoint: a log edited or truncated behind the CA's back is not
    /// laundered by a fresh signature.
    async fn checkpoint(&self) -> anyhow::Result<()> {
        let latest = self.store.latest_checkpoint().await?;
        let (mut seq, mut hash) = match &latest {
            Some(checkpoint) => {
                if !self.key.verifies(checkpoint) {
                    anyhow::bail!(
                        "checkpoint {} is not signed by the audit key; refusing to sign",
                        checkpoint.seq
                    );
                }
                let covered = self.store.audit_page(checkpoint.seq - 1, 1).await?;
                match covered.first() {
                    Some(record)
                        if record.seq == checkpoint.seq && record.hash == checkpoint.hash => {}
                    _ => anyhow::bail!(
                        "audit record {} no longer matches its signed checkpoint; refusing to sign",
                        checkpoint.seq
                    ),
                }
                (checkpoint.seq, checkpoint.hash.clone())
            }
            None => (0, GENESIS_HASH.to_owned()),
        };
        let start = seq;
        loop {
            let page = self.store.audit_page(seq, PAGE).await?;
            if page.is_empty() {
                break;
            }
            for record in page {
                if record.seq != seq + 1
                    || record.prev_hash != hash
                    || record.hash != record.expected_hash()
                {
                    anyhow::bail!(
                        "audit record {} does not continue the chain; refusing to sign",
                        seq + 1
                    );
                }
                seq = record.seq;
                hash = record.hash;
            }
        }
        if seq > start {
            let signature = self.key.sign(seq, &hash);
            self.store
                .record_checkpoint(Checkpoint {
                    seq,
                    hash,
                    time: crate::rfc3339::format(OffsetDateTime::now_utc()),
                    signature,
                })
                .await?;
        }
        Ok(())
    }
}
