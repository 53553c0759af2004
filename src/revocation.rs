//! Revocation: the RFC 5280 reasons an admin gives, the entries a CRL
//! lists, and the signer the store calls to publish a CRL in the same
//! transaction as the revocation it reflects.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::serial::Serial;

/// Why a certificate was revoked (RFC 5280, section 5.3.1). `certificateHold`
/// and `removeFromCRL` are absent: Sigil revocations are permanent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReasonCode {
    /// No reason given.
    #[default]
    Unspecified,
    /// The subject's private key was compromised.
    KeyCompromise,
    /// A CA key was compromised.
    CaCompromise,
    /// The subject's affiliation changed.
    AffiliationChanged,
    /// The certificate was replaced.
    Superseded,
    /// The subject no longer operates.
    CessationOfOperation,
    /// A privilege in the certificate was withdrawn.
    PrivilegeWithdrawn,
    /// An attribute authority was compromised.
    AaCompromise,
}

const NAMES: [(ReasonCode, &str); 8] = [
    (ReasonCode::Unspecified, "unspecified"),
    (ReasonCode::KeyCompromise, "keyCompromise"),
    (ReasonCode::CaCompromise, "cACompromise"),
    (ReasonCode::AffiliationChanged, "affiliationChanged"),
    (ReasonCode::Superseded, "superseded"),
    (ReasonCode::CessationOfOperation, "cessationOfOperation"),
    (ReasonCode::PrivilegeWithdrawn, "privilegeWithdrawn"),
    (ReasonCode::AaCompromise, "aACompromise"),
];

impl FromStr for ReasonCode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        NAMES
            .iter()
            .find(|(_, name)| *name == text)
            .map(|(code, _)| *code)
            .ok_or_else(|| {
                let known: Vec<&str> = NAMES.iter().map(|(_, name)| *name).collect();
                format!(
                    "unknown revocation reason '{text}'; use one of {}",
                    known.join(", ")
                )
            })
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = NAMES
            .iter()
            .find(|(code, _)| code == self)
            .map_or("unspecified", |(_, name)| name);
        f.write_str(name)
    }
}

impl From<ReasonCode> for rcgen::RevocationReason {
    fn from(code: ReasonCode) -> Self {
        match code {
            ReasonCode::Unspecified => Self::Unspecified,
            ReasonCode::KeyCompromise => Self::KeyCompromise,
            ReasonCode::CaCompromise => Self::CaCompromise,
            ReasonCode::AffiliationChanged => Self::AffiliationChanged,
            ReasonCode::Superseded => Self::Superseded,
            ReasonCode::CessationOfOperation => Self::CessationOfOperation,
            ReasonCode::PrivilegeWithdrawn => Self::PrivilegeWithdrawn,
            ReasonCode::AaCompromise => Self::AaCompromise,
        }
    }
}

/// One line of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The revoked certificate.
    pub serial: Serial,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: ReasonCode,
}

/// A signed CRL as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCrl {
    /// The key id of the CA whose certificates it covers.
    pub issuer_key_id: String,
    /// Its CRL number, from the one global sequence.
    pub number: u64,
    /// When it was signed.
    pub this_update: OffsetDateTime,
    /// When the next one is due.
    pub next_update: OffsetDateTime,
    /// The CRL, DER.
    pub der: Vec<u8>,
}

/// Signs CRLs; the store calls it inside the transaction that changes what
/// a CRL must say, so that a revocation and its CRL commit together.
pub trait CrlSigner: Send + Sync {
    /// Signs the CRL of the CA with this key id.
    ///
    /// # Errors
    ///
    /// No CA with this key id, or signing failed.
    fn sign_crl(
        &self,
        issuer_key_id: &str,
        number: u64,
        entries: &[RevokedEntry],
        now: OffsetDateTime,
    ) -> Result<SignedCrl, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_and_print_their_rfc_5280_names() {
        for (code, name) in NAMES {
            assert_eq!(name.parse::<ReasonCode>(), Ok(code));
            assert_eq!(code.to_string(), name);
        }
        for bad in [
            "",
            "KeyCompromise",
            "certificateHold",
            "removeFromCRL",
            "stolen",
        ] {
            assert!(bad.parse::<ReasonCode>().is_err(), "{bad}");
        }
    }
}
