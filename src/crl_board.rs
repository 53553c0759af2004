//! The CRLs currently published: one per CA, the newest by CRL number.
//! The API serves them, revocations and the background re-signer post new
//! ones, and long-polls wait for a higher number.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::watch;

use crate::revocation::SignedCrl;

/// A consistent snapshot of the published CRLs.
#[derive(Debug, Clone, Default)]
pub struct CrlSet {
    by_issuer: BTreeMap<String, SignedCrl>,
    /// Issuers whose CRLs were withdrawn ([`CrlBoard::retain`]): never
    /// shown again.
    withdrawn: BTreeSet<String>,
}

impl CrlSet {
    /// The CRL of the CA with this key id.
    pub fn get(&self, issuer_key_id: &str) -> Option<&SignedCrl> {
        self.by_issuer.get(issuer_key_id)
    }

    /// Every CRL, by issuer key id.
    pub fn iter(&self) -> impl Iterator<Item = &SignedCrl> {
        self.by_issuer.values()
    }

    /// The highest CRL number in the set (0 when empty). Numbers are global,
    /// so a higher one means something newer.
    pub fn highest(&self) -> u64 {
        self.by_issuer
            .values()
            .map(|crl| crl.number)
            .max()
            .unwrap_or(0)
    }
}

/// The published CRLs, swapped atomically.
#[derive(Debug)]
pub struct CrlBoard {
    current: watch::Sender<Arc<CrlSet>>,
}

impl Default for CrlBoard {
    fn default() -> Self {
        Self {
            current: watch::Sender::new(Arc::new(CrlSet::default())),
        }
    }
}

impl CrlBoard {
    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<CrlSet> {
        self.current.borrow().clone()
    }

    /// Posts CRLs; for each issuer only a higher number than the one shown
    /// replaces it, so a late writer cannot roll a CRL back, and nothing of
    /// a withdrawn issuer is shown, so a late writer cannot bring back the
    /// CRL of a CA that is gone either.
    pub fn post(&self, crls: impl IntoIterator<Item = SignedCrl>) {
        self.current.send_if_modified(|current| {
            let mut next = (**current).clone();
            let mut changed = false;
            for crl in crls {
                let newer = !next.withdrawn.contains(&crl.issuer_key_id)
                    && next
                        .by_issuer
                        .get(&crl.issuer_key_id)
                        .is_none_or(|shown| crl.number > shown.number);
                if newer {
                    next.by_issuer.insert(crl.issuer_key_id.clone(), crl);
                    changed = true;
                }
            }
            if changed {
                *current = Arc::new(next);
            }
            changed
        });
    }

    /// Stops publishing the CRLs of issuers `keep` refuses, for good: CAs
    /// whose last leaf has expired, or a root rotation dropped. A CRL of
    /// theirs posted later (by a re-signer that read the store before) is
    /// not shown.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.current.send_if_modified(|current| {
            if current.by_issuer.keys().all(|key_id| keep(key_id)) {
                return false;
            }
            let mut next = (**current).clone();
            let withdrawn = &mut next.withdrawn;
            next.by_issuer.retain(|key_id, _| {
                keep(key_id) || {
                    withdrawn.insert(key_id.clone());
                    false
                }
            });
            *current = Arc::new(next);
            true
        });
    }

    /// Waits until the highest CRL number exceeds `after`, and returns that
    /// snapshot; returns at once if it already does.
    pub async fn newer_than(&self, after: u64) -> Arc<CrlSet> {
        let mut updates = self.current.subscribe();
        loop {
            let snapshot = updates.borrow_and_update().clone();
            if snapshot.highest() > after {
                return snapshot;
            }
            // The sender lives as long as the board, and the board as long
            // as any request that can wait on it.
            if updates.changed().await.is_err() {
                return snapshot;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;

    fn crl(issuer: &str, number: u64) -> SignedCrl {
        SignedCrl {
            issuer_key_id: issuer.to_owned(),
            number,
            this_update: OffsetDateTime::UNIX_EPOCH,
            next_update: OffsetDateTime::UNIX_EPOCH,
            der: vec![],
        }
    }

    #[test]
    fn only_a_higher_number_replaces_an_issuers_crl() {
        let board = CrlBoard::default();
        board.post([crl("a", 2), crl("b", 3)]);
        board.post([crl("a", 1)]);
        assert_eq!(board.snapshot().get("a").map(|c| c.number), Some(2));
        board.post([crl("a", 4)]);
        assert_eq!(board.snapshot().get("a").map(|c| c.number), Some(4));
        assert_eq!(board.snapshot().highest(), 4);
    }

    #[test]
    fn retain_stops_publishing_the_crls_of_issuers_gone() {
        let board = CrlBoard::default();
        board.post([crl("a", 1), crl("b", 2), crl("c", 3)]);
        board.retain(|key_id| key_id != "b");
        let shown: Vec<String> = board
            .snapshot()
            .iter()
            .map(|crl| crl.issuer_key_id.clone())
            .collect();
        assert_eq!(shown, ["a", "c"]);
    }

    #[test]
    fn a_withdrawn_issuers_crl_posted_late_is_not_shown() {
        let board = CrlBoard::default();
        board.post([crl("root-old", 1), crl("root-new", 2)]);
        // A root rotation drops the old root while a re-signer, which read
        // the store before the drop, is about to post that root's CRLs.
        board.retain(|key_id| key_id != "root-old");
        board.post([crl("root-old", 1), crl("root-old", 3)]);
        let shown: Vec<String> = board
            .snapshot()
            .iter()
            .map(|crl| crl.issuer_key_id.clone())
            .collect();
        assert_eq!(shown, ["root-new"]);
        assert_eq!(board.snapshot().highest(), 2);
        // Others still publish as before.
        board.post([crl("root-new", 4)]);
        assert_eq!(board.snapshot().get("root-new").map(|c| c.number), Some(4));
    }

    #[tokio::test]
    async fn a_waiter_wakes_on_the_first_newer_crl() {
        let board = Arc::new(CrlBoard::default());
        board.post([crl("a", 5)]);
        assert_eq!(board.newer_than(4).await.highest(), 5);
        let waiting = {
            let board = Arc::clone(&board);
            tokio::spawn(async move { board.newer_than(5).await.highest() })
        };
        tokio::task::yield_now().await;
        board.post([crl("a", 3)]);
        board.post([crl("b", 6)]);
        assert_eq!(waiting.await.ok(), Some(6));
    }
}
