//! The audit log: an append-only, hash-chained record of every issuance,
//! renewal, refusal, revocation, ban, token and admin action. Each record
//! holds its own SHA-256 and its predecessor's; the CA signs the head
//! periodically with a dedicated audit key ([`AuditKey`]), so an edited,
//! removed or truncated record is detectable ([`verify_chain`]).

mod key;
mod refusals;
mod verify;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

pub use key::AuditKey;
pub use refusals::{REFUSE_ACTION, RefusalCounter};
pub use verify::{ChainBreak, verify_chain};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The actor of data-dir commands (`sigil init`, `sigil admin credential`)
/// and of the CA's own actions.
pub const LOCAL_ACTOR: &str = "local";

/// Something that happened, before it is numbered and chained.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    /// When.
    pub time: OffsetDateTime,
    /// Who: a SPIFFE ID, or [`LOCAL_ACTOR`], or `anonymous`.
    pub actor: String,
    /// What, as a dotted name such as `svid.issue`.
    pub action: &'static str,
    /// On what: a serial, a SPIFFE ID, a token id.
    pub subject: String,
    /// Everything else, as JSON.
    pub details: Value,
}

impl AuditEvent {
    /// An event happening now.
    pub fn now(
        actor: impl Into<String>,
        action: &'static str,
        subject: impl Into<String>,
        details: Value,
    ) -> Self {
        Self {
            time: OffsetDateTime::now_utc(),
            actor: actor.into(),
            action,
            subject: subject.into(),
            details,
        }
    }
}

/// A record of the log, as stored and served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When, RFC 3339 UTC.
    pub time: String,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub subject: String,
    /// Everything else, JSON text exactly as hashed.
    pub details: String,
    /// SHA-256 of this record's content and `prev_hash`, hex.
    pub hash: String,
    /// The previous record's `hash` ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
}

impl AuditRecord {
    /// The hash this record's content and `prev_hash` must have.
    pub fn expected_hash(&self) -> String {
        record_hash(
            self.seq,
            &self.time,
            &self.actor,
            &self.action,
            &self.subject,
            &self.details,
            &self.prev_hash,
        )
    }
}

/// SHA-256 (hex) over the canonical JSON array of a record's fields.
pub fn record_hash(
    seq: u64,
    time: &str,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
    prev_hash: &str,
) -> String {
    // A tuple serializes as the same compact JSON array as `json!([...])`
    // would, without copying each field into a `Value` first (the writer
    // hashes one record per certificate, on the store's one thread).
    let canonical = (seq, time, actor, action, subject, details, prev_hash);
    // Serializing strings and an integer into a Vec cannot fail; were it
    // ever to, hashing nothing would write a record that never verifies,
    // so it panics instead (the store fails that one operation).
    #[allow(clippy::expect_used)]
    let canonical = serde_json::to_vec(&canonical).expect("strings and an integer serialize");
    let digest = ring::digest::digest(&ring::digest::SHA256, &canonical);
    hex::encode(digest)
}

/// A signed statement that the log's record `seq` had hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The head's position.
    pub seq: u64,
    /// The head's hash.
    pub hash: String,
    /// When it was signed, RFC 3339 UTC.
    pub time: String,
    /// Ed25519 signature by the audit key over [`Checkpoint::message`].
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// What the audit key signs.
    pub fn message(seq: u64, hash: &str) -> Vec<u8> {
        format!("sigil audit checkpoint\n{seq}\n{hash}\n").into_bytes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The hash is over the compact JSON array of the fields, as records
    /// written by earlier versions were hashed: logs stay verifiable.
    #[test]
    fn a_record_hash_is_over_the_canonical_json_array_of_its_fields() {
        let cases = [
            (
                1,
                "2026-11-29T20:00:00Z",
                "spiffe://example.org/a",
                "svid.issue",
                "ab12",
                "{}",
                GENESIS_HASH,
            ),
            (
                u64::MAX,
                "t",
                "quote \" backslash \\ newline \n tab \t nul \u{0} é 🦀",
                "x",
                "</script>",
                r#"{"k":"v","n":[1,2]}"#,
                "ff",
            ),
        ];
        for (seq, time, actor, action, subject, details, prev) in cases {
            let canonical = serde_json::json!([seq, time, actor, action, subject, details, prev]);
            let expected = hex::encode(ring::digest::digest(
                &ring::digest::SHA256,
                canonical.to_string().as_bytes(),
            ));
            assert_eq!(
                record_hash(seq, time, actor, action, subject, details, prev),
                expected
            );
        }
    }
}
