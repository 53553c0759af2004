//! Checking the audit log: every record's hash matches its content, every
//! record names its predecessor's hash, sequence numbers have no gaps, and
//! the latest signed checkpoint still matches the record it covers.

use std::fmt;

use super::{AuditKey, AuditRecord, Checkpoint, GENESIS_HASH};

/// The first place the log fails to verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The sequence number of the first broken (or missing) record.
    pub seq: u64,
    /// What is wrong there.
    pub why: String,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "audit record {}: {}", self.seq, self.why)
    }
}

/// Verifies records (in sequence order, from the first) against every
/// signed checkpoint.
///
/// # Errors
///
/// The first record that breaks the chain, or the first checkpoint that no
/// longer matches.
pub fn verify_chain(
    records: &[AuditRecord],
    checkpoints: &[Checkpoint],
    key: &AuditKey,
) -> Result<(), ChainBreak> {
    let mut prev_hash = GENESIS_HASH.to_owned();
    for (index, record) in records.iter().enumerate() {
        let expected_seq = index as u64 + 1;
        if record.seq != expected_seq {
            return Err(ChainBreak {
                seq: expected_seq,
                why: format!("missing (the next record is {})", record.seq),
            });
        }
        if record.prev_hash != prev_hash {
            return Err(ChainBreak {
                seq: record.seq,
                why: "does not follow its predecessor (prev_hash differs): a record before it \
                      was changed, removed or inserted"
                    .to_owned(),
            });
        }
        if record.hash != record.expected_hash() {
            return Err(ChainBreak {
                seq: record.seq,
                why: "its content does not match its hash: it was edited".to_owned(),
            });
        }
        prev_hash.clone_from(&record.hash);
    }
    for checkpoint in checkpoints {
        if !key.verifies(checkpoint) {
            return Err(ChainBreak {
                seq: checkpoint.seq,
                why: "the checkpoint's signature is not the audit key's".to_owned(),
            });
        }
        match records.get(checkpoint.seq.saturating_sub(1) as usize) {
            None => {
                return Err(ChainBreak {
                    seq: records.len() as u64 + 1,
                    why: format!(
                        "missing: the log ends at {} but a signed checkpoint covers {}; it was \
                         truncated",
                        records.len(),
                        checkpoint.seq
                    ),
                });
            }
            Some(record) if record.hash != checkpoint.hash => {
                return Err(ChainBreak {
                    seq: record.seq,
                    why: "differs from the signed checkpoint: the log was rewritten".to_owned(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}
