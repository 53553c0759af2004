//! Keeps every CRL fresh: at start-up each CA without a current CRL gets
//! one, and a background task re-signs each CRL well before its nextUpdate:
//! the issuing CA's once `crl_resign` has passed since it was signed (half
//! its validity unless configured), the root's after half its validity.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use time::OffsetDateTime;

use crate::crl_board::CrlBoard;
use crate::issuance::Issuance;
use crate::revocation::CrlSigner;

/// The most time between two checks.
const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Publishes what is due now, then keeps doing so in the background;
/// `resign` is the age at which the issuing CA's CRL is re-signed (less than
/// its validity).
pub(super) async fn start(
    issuance: Issuance,
    board: Arc<CrlBoard>,
    resign: Duration,
) -> anyhow::Result<()> {
    refresh_due(&issuance, &board, resign)
        .await
        .context("publishing the CRLs")?;
    let interval = (resign / 2)
        .min(MAX_CHECK_INTERVAL)
        .max(Duration::from_secs(1));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            if let Err(error) = refresh_due(&issuance, &board, resign).await {
                // The last good CRLs stay published; the next check retries.
                tracing::warn!(error = %format!("{error:#}"), "re-signing a CRL failed");
            }
        }
    });
    Ok(())
}

async fn refresh_due(
    issuance: &Issuance,
    board: &CrlBoard,
    issuing_resign: Duration,
) -> anyhow::Result<()> {
    let store = issuance.store();
    let ca = issuance.ca();
    let now = OffsetDateTime::now_utc();
    let key_ids = ca.crl_issuers(now);
    let current = store.current_crls().await?;
    // Not the CRLs of CAs no leaf chains to any more. (Only those known to
    // be gone: a CA a concurrent rotation has just made is not in `ca`.)
    let needed = |key_id: &str| !ca.crl_no_longer_needed(key_id, now);
    board.post(
        current
            .iter()
            .filter(|crl| needed(&crl.issuer_key_id))
            .cloned(),
    );
    board.retain(needed);
    let roots: Vec<&str> = ca.roots().map(|root| root.key_id()).collect();
    for key_id in key_ids.iter().copied() {
        let Some(validity) = ca.crl_validity(key_id) else {
            continue;
        };
        let resign = if roots.contains(&key_id) {
            validity / 2
        } else {
            issuing_resign.min(validity)
        };
        // Signed `validity` before its nextUpdate: `resign` old once less
        // than `validity - resign` is left.
        let due = current
            .iter()
            .find(|crl| crl.issuer_key_id == key_id)
            .is_none_or(|crl| crl.next_update - now < validity - resign);
        if due {
            let signer: Arc<dyn CrlSigner> = ca.clone();
            let crl = store.publish_crl(key_id.to_owned(), now, signer).await?;
            tracing::debug!(issuer = key_id, number = crl.number, "published a CRL");
            board.post([crl]);
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, Store};

    const HALF: Duration = Duration::from_secs(2);

    #[tokio::test]
    async fn crls_are_published_at_start_and_re_signed_after_half_their_validity() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::ca::example_authority().with_crl_validity(Duration::from_secs(4));
        let (issuing, root) = (
            ca.issuing().key_id().to_owned(),
            ca.root().key_id().to_owned(),
        );
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let issuance = Issuance::new(Arc::new(ca), store);
        let board = CrlBoard::default();

        refresh_due(&issuance, &board, HALF).await.unwrap();
        let first = board.snapshot();
        let number = |set: &crate::crl_board::CrlSet, key: &str| set.get(key).map(|c| c.number);
        assert!(number(&first, &issuing).is_some() && number(&first, &root).is_some());

        // Nothing is due yet.
        refresh_due(&issuance, &board, HALF).await.unwrap();
        assert_eq!(board.snapshot().highest(), first.highest());

        // Past half of the issuing CRL's 4 s (CRL times are whole seconds,
        // so allow for one lost to rounding): it, and only it, is re-signed.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        refresh_due(&issuance, &board, HALF).await.unwrap();
        let second = board.snapshot();
        assert!(number(&second, &issuing) > number(&first, &issuing));
        assert_eq!(
            number(&second, &root),
            number(&first, &root),
            "the root key rests"
        );
    }

    #[tokio::test]
    async fn a_configured_re_sign_interval_replaces_half_the_validity() {
        let dir = tempfile::tempdir().unwrap();
        let ca = crate::ca::example_authority().with_crl_validity(Duration::from_secs(3600));
        let issuing = ca.issuing().key_id().to_owned();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let issuance = Issuance::new(Arc::new(ca), store);
        let board = CrlBoard::default();
        let resign = Duration::from_secs(1);

        refresh_due(&issuance, &board, resign).await.unwrap();
        let first = board.snapshot().get(&issuing).map(|c| c.number);
        // A second and a bit (plus one lost to whole-second CRL times), far
        // from half of the hour.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        refresh_due(&issuance, &board, resign).await.unwrap();
        assert!(board.snapshot().get(&issuing).map(|c| c.number) > first);
    }
}
