//! Join-token grants read from the store moments ago, so that a fleet
//! redeeming one multi-use token does not pay a store round trip per
//! request before its CSR is verified and signed.
//!
//! The cache only decides what to sign. The store's redemption, in the
//! transaction that records the certificate, checks the token again
//! (hash, expiry, uses, bans), and its answer is the only one that counts:
//! a stale entry can cost a signature, never a certificate. An entry lives
//! at most [`GRANT_TTL`], matches only the token whose hash the store
//! accepted (compared in constant time), and is dropped as soon as a
//! redemption through it is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::join_token::{self, TokenHash};
use crate::store::TokenGrant;

/// How long a grant read from the store is used without reading it again.
const GRANT_TTL: Duration = Duration::from_secs(2);
/// The most tokens remembered; a full cache drops its stale entries, then,
/// if that is not enough, all of them.
const CAPACITY: usize = 4096;

/// Grants by token ID.
#[derive(Debug, Default)]
pub struct TokenGrants {
    entries: Mutex<HashMap<String, Entry>>,
    /// Bumped by every [`TokenGrants::forget`]: a grant read before a
    /// forget is not remembered after it.
    forgets: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    hash: TokenHash,
    grant: TokenGrant,
    read_at: Instant,
}

impl TokenGrants {
    /// The grant of token `id`, if the store granted it to a token with
    /// this hash less than [`GRANT_TTL`] ago.
    pub fn get(&self, id: &str, presented: &TokenHash) -> Option<TokenGrant> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(id)?;
        let fresh = entry.read_at.elapsed() < GRANT_TTL;
        (fresh && join_token::hashes_match(&entry.hash, presented)).then(|| entry.grant.clone())
    }

    /// Where the forgets stand: take it before reading a grant from the
    /// store, and hand it to [`TokenGrants::remember`].
    pub fn epoch(&self) -> u64 {
        self.forgets.load(Ordering::Acquire)
    }

    /// Remembers what the store granted token `id`, unless a redemption
    /// was refused since `epoch` (the read may predate that refusal).
    pub fn remember(&self, epoch: u64, id: String, hash: TokenHash, grant: TokenGrant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if self.forgets.load(Ordering::Acquire) != epoch {
            return;
        }
        if entries.len() >= CAPACITY && !entries.contains_key(&id) {
            entries.retain(|_, entry| entry.read_at.elapsed() < GRANT_TTL);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        let read_at = Instant::now();
        entries.insert(
            id,
            Entry {
                hash,
                grant,
                read_at,
            },
        );
    }

    /// Forgets token `id`: the store refused a redemption through it.
    pub fn forget(&self, id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        self.forgets.fetch_add(1, Ordering::AcqRel);
        entries.remove(id);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn grant() -> TokenGrant {
        TokenGrant {
            spiffe_id: "spiffe://example.org/agent".parse().unwrap(),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        }
    }

    #[test]
    fn a_grant_is_given_only_to_the_token_the_store_accepted_and_until_forgotten() {
        let grants = TokenGrants::default();
        let hash = [7u8; 32];
        assert_eq!(grants.get("id", &hash), None);
        grants.remember(grants.epoch(), "id".to_owned(), hash, grant());
        assert_eq!(grants.get("id", &hash), Some(grant()));
        // Another secret under the same public ID gets nothing.
        assert_eq!(grants.get("id", &[8u8; 32]), None);
        grants.forget("id");
        assert_eq!(grants.get("id", &hash), None);
    }

    #[test]
    fn a_full_cache_stays_bounded() {
        let grants = TokenGrants::default();
        for index in 0..=CAPACITY {
            grants.remember(grants.epoch(), format!("id-{index}"), [1u8; 32], grant());
        }
        let held = grants.entries.lock().unwrap().len();
        assert!(held <= CAPACITY, "{held} entries");
        assert!(grants.get(&format!("id-{CAPACITY}"), &[1u8; 32]).is_some());
    }

    #[test]
    fn a_grant_read_before_a_refusal_is_not_remembered_after_it() {
        let grants = TokenGrants::default();
        let hash = [7u8; 32];
        // A request reads the grant; meanwhile another's redemption through
        // the same token is refused.
        let epoch = grants.epoch();
        grants.forget("id");
        grants.remember(epoch, "id".to_owned(), hash, grant());
        assert_eq!(grants.get("id", &hash), None);
        // A read after the refusal is remembered.
        grants.remember(grants.epoch(), "id".to_owned(), hash, grant());
        assert_eq!(grants.get("id", &hash), Some(grant()));
    }
}
