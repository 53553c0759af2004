//! Keeps the audit log honest over time: every minute (and at shutdown) it
//! writes the counted anonymous refusals and signs a checkpoint of the
//! log's head with the audit key.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::audit::{AuditKey, Checkpoint, RefusalCounter};
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
            tracing::error!(%error, "checkpointing the audit log failed");
        }
    }

    async fn checkpoint(&self) -> Result<(), crate::store::StoreError> {
        let covered = self
            .store
            .latest_checkpoint()
            .await?
            .map_or(0, |checkpoint| checkpoint.seq);
        let mut head = None;
        let mut after = covered;
        loop {
            let page = self.store.audit_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            head = Some((last.seq, last.hash.clone()));
        }
        if let Some((seq, hash)) = head {
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
