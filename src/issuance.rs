//! Issuance as one step: sign, then commit to the store, and only then hand
//! the certificate out. Every SVID in the wild can be found and revoked.

use std::sync::Arc;
use std::time::Duration;

use rcgen::KeyPair;
use time::OffsetDateTime;

use crate::ca::{CertificateAuthority, IssuedCertificate, KeyType, LeafRequest, Serial};
use crate::csr::VerifiedPublicKey;
use crate::store::{AttestationKind, CertificateRecord, Store, StoreError};

/// Lifetimes the CA grants.
#[derive(Debug, Clone, Copy)]
pub struct TtlPolicy {
    /// When a request names none.
    pub default: Duration,
    /// Shortest lifetime a request may ask for.
    pub min: Duration,
    /// Longest lifetime a request may ask for.
    pub max: Duration,
}

impl Default for TtlPolicy {
    fn default() -> Self {
        Self {
            default: Duration::from_secs(3600),
            min: Duration::from_secs(60),
            max: Duration::from_secs(24 * 3600),
        }
    }
}

impl TtlPolicy {
    /// Checks that the bounds make sense.
    ///
    /// # Errors
    ///
    /// `min` is zero, or the default lies outside `min..=max`.
    pub fn validate(self) -> Result<Self, String> {
        if self.min.is_zero() {
            return Err("the minimum TTL must be at least 1s".to_owned());
        }
        if !(self.min <= self.default && self.default <= self.max) {
            return Err(format!(
                "the default TTL ({}s) must lie between the minimum ({}s) and the maximum ({}s)",
                self.default.as_secs(),
                self.min.as_secs(),
                self.max.as_secs()
            ));
        }
        Ok(self)
    }

    /// The lifetime for a request: its own, if within bounds, else the
    /// default. Never clamped silently.
    ///
    /// # Errors
    ///
    /// The requested lifetime is outside the bounds.
    pub fn resolve(&self, requested: Option<u64>) -> Result<Duration, String> {
        let Some(seconds) = requested else {
            return Ok(self.default);
        };
        let ttl = Duration::from_secs(seconds);
        if ttl < self.min || ttl > self.max {
            return Err(format!(
                "ttl_seconds must lie between {} and {}, got {seconds}",
                self.min.as_secs(),
                self.max.as_secs()
            ));
        }
        Ok(ttl)
    }
}

/// Why issuance failed. Neither is the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum IssuanceError {
    /// Signing failed, or the CA cannot sign this (a bug upstream).
    #[error("signing: {0:#}")]
    Signing(anyhow::Error),
    /// The certificate could not be committed, so it was not handed out.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Signs and records certificates.
#[derive(Clone)]
pub struct Issuance {
    ca: Arc<CertificateAuthority>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Issuance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuance")
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

impl Issuance {
    /// Issuance by this CA into this store.
    pub fn new(ca: Arc<CertificateAuthority>, store: Arc<dyn Store>) -> Self {
        Self { ca, store }
    }

    /// The CA.
    pub fn ca(&self) -> &Arc<CertificateAuthority> {
        &self.ca
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Signs a leaf and commits it to the store; only a committed
    /// certificate is returned.
    ///
    /// # Errors
    ///
    /// See [`IssuanceError`].
    pub async fn issue(
        &self,
        request: &LeafRequest<'_>,
        attestation: AttestationKind,
        parent_serial: Option<Serial>,
    ) -> Result<IssuedCertificate, IssuanceError> {
        // A repeated serial (2^-120 per pair) is refused by the store; draw
        // a new one rather than fail the caller.
        let mut attempts = 0;
        loop {
            let now = OffsetDateTime::now_utc();
            let issued = self
                .ca
                .issue(request, now)
                .map_err(IssuanceError::Signing)?;
            let record = CertificateRecord {
                serial: issued.serial,
                spiffe_id: issued.spiffe_id.clone(),
                issuer_key_id: issued.issuer_key_id.clone(),
                not_before: issued.not_before,
                not_after: issued.not_after,
                attestation,
                parent_serial,
                der: issued.der.to_vec(),
                created_at: crate::ca::whole_seconds(now),
            };
            match self.store.record_certificate(record).await {
                Ok(()) => return Ok(issued),
                Err(StoreError::Conflict(_)) if attempts < 2 => attempts += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Mints a key pair and a recorded certificate for one of the CA's own
    /// identities (the server, an admin): attestation is holding the data
    /// dir.
    ///
    /// # Errors
    ///
    /// See [`IssuanceError`].
    pub async fn mint_local(
        &self,
        spiffe_id: &sigil_core::SpiffeId,
        dns_names: &[String],
        ip_addresses: &[std::net::IpAddr],
        ttl: Duration,
    ) -> Result<(IssuedCertificate, KeyPair), IssuanceError> {
        let key = KeyType::P256
            .generate()
            .map_err(|e| IssuanceError::Signing(anyhow::anyhow!("key generation: {e}")))?;
        let public_key = VerifiedPublicKey::from_own_key(&key).map_err(IssuanceError::Signing)?;
        let request = LeafRequest {
            spiffe_id,
            public_key: &public_key,
            dns_names,
            ip_addresses,
            ttl,
        };
        let issued = self.issue(&request, AttestationKind::Local, None).await?;
        Ok((issued, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_outside_bounds_is_refused_not_clamped() {
        let policy = TtlPolicy::default();
        assert_eq!(policy.resolve(None), Ok(Duration::from_secs(3600)));
        assert_eq!(policy.resolve(Some(60)), Ok(Duration::from_secs(60)));
        assert_eq!(
            policy.resolve(Some(86_400)),
            Ok(Duration::from_secs(86_400))
        );
        assert!(policy.resolve(Some(59)).is_err());
        assert!(policy.resolve(Some(0)).is_err());
        assert!(policy.resolve(Some(86_401)).is_err());
        assert!(policy.resolve(Some(u64::MAX)).is_err());
    }

    #[test]
    fn inconsistent_ttl_bounds_are_refused() {
        let zero_min = TtlPolicy {
            min: Duration::ZERO,
            ..TtlPolicy::default()
        };
        assert!(zero_min.validate().is_err());
        let default_above_max = TtlPolicy {
            default: Duration::from_secs(90_000),
            ..TtlPolicy::default()
        };
        assert!(default_above_max.validate().is_err());
        assert!(TtlPolicy::default().validate().is_ok());
    }
}
