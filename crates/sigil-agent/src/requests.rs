//! The two requests that get the agent a certificate: `POST /v1/svid` with
//! an attestation, and `POST /v1/renew` over mTLS with the current SVID.
//! Each sends a CSR for a key made just now.

use std::time::{Duration, SystemTime};

use sigil_core::wire::{RenewRequest, SvidRequest, SvidResponse};
use sigil_verifier::TrustSource;
use sigil_verifier::ca::{CaClient, CaResponse};

use crate::Error;
use crate::attestation::Attestor;
use crate::files::SvidFiles;
use crate::key::KeyType;
use crate::svid::Svid;

/// What every request needs.
pub(crate) struct Requests<'a> {
    pub(crate) url: &'a str,
    pub(crate) trust: &'a TrustSource,
    pub(crate) key_type: KeyType,
    pub(crate) ttl: Option<Duration>,
    /// Where the result goes: checked writable before anything is sent,
    /// so that a full disk does not spend a renewal.
    pub(crate) files: Option<&'a SvidFiles>,
}

/// The error codes after which renewing is over.
const FINAL_CODES: &[&str] = &["revoked", "banned", "lineage_fork", "reserved_identity"];

impl Requests<'_> {
    fn check_files(&self) -> Result<(), Error> {
        self.files.map_or(Ok(()), SvidFiles::check_writable)
    }

    fn ttl_seconds(&self) -> Option<u64> {
        self.ttl.map(|ttl| ttl.as_secs().max(1))
    }

    /// A first SVID, from an attestation.
    pub(crate) async fn issue(&self, attestor: &dyn Attestor) -> Result<Svid, Error> {
        self.check_files()?;
        let fresh = self.key_type.generate()?;
        let request = SvidRequest {
            csr: fresh.csr_pem.clone(),
            attestation: attestor.attestation().await?,
            ttl_seconds: self.ttl_seconds(),
        };
        let ca = CaClient::new(self.url, self.trust, None)?;
        let answer = ca.post_json("/v1/svid", &request).await?;
        svid_from(answer, fresh.key_pem())
    }

    /// A new SVID with a new key, over mTLS with the current one.
    pub(crate) async fn renew(&self, current: &Svid) -> Result<Svid, Error> {
        self.check_files()?;
        let fresh = self.key_type.generate()?;
        let request = RenewRequest {
            csr: fresh.csr_pem.clone(),
            ttl_seconds: self.ttl_seconds(),
        };
        let ca = CaClient::new(self.url, self.trust, Some(current.credentials()?))?;
        let answer = ca.post_json("/v1/renew", &request).await?;
        let renewed = svid_from(answer, fresh.key_pem())?;
        if renewed.spiffe_id() != current.spiffe_id() {
            return Err(Error::Answer(format!(
                "renewing {} returned {}",
                current.spiffe_id(),
                renewed.spiffe_id()
            )));
        }
        Ok(renewed)
    }
}

/// The longest `Retry-After` heeded: a CA (or proxy) asking for more is
/// retried after this anyway.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A `Retry-After` in seconds (the form Sigil sends; an HTTP date is
/// ignored).
fn retry_after(answer: &CaResponse) -> Option<Duration> {
    let seconds: u64 = answer
        .headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

fn svid_from(answer: CaResponse, key_pem: String) -> Result<Svid, Error> {
    if !answer.status.is_success() {
        let status = answer.status.as_u16();
        let (code, message) = match answer.error() {
            Some(error) => (error.code, error.message),
            None => (
                crate::error::UNKNOWN_CODE.to_owned(),
                format!("answered {} without a Sigil error body", answer.status),
            ),
        };
        if FINAL_CODES.contains(&code.as_str()) {
            return Err(Error::Revoked { code, message });
        }
        return Err(Error::Refused {
            status,
            code,
            message,
            retry_after: retry_after(&answer),
        });
    }
    let body: SvidResponse = answer.json().map_err(|e| Error::Answer(format!("{e}")))?;
    Svid::new(body.cert_chain_pem, key_pem, SystemTime::now())
}
