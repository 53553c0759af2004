//! Issuance as one step: sign, then commit to the store, and only then hand
//! the certificate out. Every SVID in the wild can be found and revoked.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::Duration;

use rcgen::KeyPair;
use time::OffsetDateTime;

use crate::audit::{AuditEvent, LOCAL_ACTOR};
use crate::ca::{CertificateAuthority, IssuedCertificate, KeyType, LeafRequest, SubjectKey};
use crate::csr::{CsrError, VerifiedPublicKey};
use crate::join_token::TokenHash;
use crate::revocation::CrlSigner;
use crate::serial::Serial;
use crate::store::{
    AttestationKind, CertificateRecord, JwtRedemption, Redemption, RenewalOutcome, Store,
    StoreError,
};

/// Builds the audit records of an issuance from the certificate signed.
pub(crate) type IssueAudit<'a> = dyn Fn(&IssuedCertificate) -> Vec<AuditEvent> + Sync + 'a;

/// Builds the audit records of a renewal from the certificate signed and
/// what the store made of it.
pub(crate) type RenewAudit =
    Arc<dyn Fn(&IssuedCertificate, &RenewalOutcome) -> Vec<AuditEvent> + Send + Sync>;

/// How often a repeated serial is redrawn before giving up.
const MAX_SERIAL_RETRIES: u32 = 2;
/// The longest SVID lifetime any configuration may allow.
pub const MAX_TTL_CAP: Duration = Duration::from_secs(30 * 86_400);

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
        if self.max > MAX_TTL_CAP {
            return Err(format!(
                "the maximum TTL must be at most {}d: SVIDs are short-lived",
                MAX_TTL_CAP.as_secs() / 86_400
            ));
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

/// Why issuance failed.
#[derive(Debug, thiserror::Error)]
pub enum IssuanceError {
    /// The request's CSR was refused (the caller's fault).
    #[error(transparent)]
    Csr(#[from] CsrError),
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
    /// The CA in force; a rotation swaps it while requests run, each of
    /// which keeps the one it started with.
    ca: Arc<ArcSwap<CertificateAuthority>>,
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
        Self {
            ca: Arc::new(ArcSwap::new(ca)),
            store,
        }
    }

    /// The CA in force.
    pub fn ca(&self) -> Arc<CertificateAuthority> {
        self.ca.load_full()
    }

    /// Puts `ca` in force for every request that starts from now on (a
    /// rotation of its issuing CA).
    pub fn replace_ca(&self, ca: Arc<CertificateAuthority>) {
        self.ca.store(ca);
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Signs a leaf, on the calling runtime worker, and the record that
    /// must be committed before it leaves the CA.
    ///
    /// The CSR check and the signature (about 0.1 ms of CPU with P-256) run
    /// on the runtime's worker threads, one per core, holding no lock: a
    /// separate signing pool cost two thread hand-offs per request, about
    /// 8 % of the issuance rate on the reference machine (BENCHMARKS.md),
    /// and a worker already runs each renewal's TLS handshake, ten times
    /// longer. A panic (a bug) fails this request alone.
    fn sign(
        &self,
        request: &LeafRequest<'_>,
        attestation: AttestationKind,
        parent_serial: Option<Serial>,
    ) -> Result<(IssuedCertificate, CertificateRecord), IssuanceError> {
        let now = OffsetDateTime::now_utc();
        let ca = self.ca();
        let issued = catch_unwind(AssertUnwindSafe(|| {
            #[cfg(test)]
            faults::panic_if_asked();
            ca.issue(request, now)
        }))
        .map_err(|_| IssuanceError::Signing(anyhow::anyhow!("the signer panicked (a bug)")))?
        .map_err(|error| match error.downcast::<CsrError>() {
            Ok(refused) => IssuanceError::Csr(refused),
            Err(error) => IssuanceError::Signing(error),
        })?;
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
        Ok((issued, record))
    }

    /// Signs a leaf and commits it to the store; only a committed
    /// certificate is returned.
    ///
    /// # Errors
    ///
    /// See [`IssuanceError`].
    pub(crate) async fn issue(
        &self,
        request: &LeafRequest<'_>,
        attestation: AttestationKind,
        parent_serial: Option<Serial>,
        audit: &IssueAudit<'_>,
    ) -> Result<IssuedCertificate, IssuanceError> {
        let mut attempt = 0;
        loop {
            let (issued, record) = self.sign(request, attestation, parent_serial)?;
            match self.store.record_certificate(record, audit(&issued)).await {
                Ok(()) => return Ok(issued),
                // A repeated serial (2^-80 per pair of one millisecond): draw a
                // new one.
                Err(StoreError::Conflict(_)) if attempt < MAX_SERIAL_RETRIES => attempt += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Signs a leaf for what a join token grants, then takes one use of the
    /// token and commits the certificate in one transaction. If the token
    /// has meanwhile been used up (a concurrent redemption won) or has
    /// expired, the certificate is discarded unrecorded and the refusal is
    /// returned instead.
    ///
    /// # Errors
    ///
    /// See [`IssuanceError`]; nothing is committed, and the token keeps its
    /// use.
    pub(crate) async fn issue_for_join_token(
        &self,
        request: &LeafRequest<'_>,
        token_id: &str,
        token_hash: TokenHash,
        audit: &IssueAudit<'_>,
    ) -> Result<Result<IssuedCertificate, Redemption>, IssuanceError> {
        let mut attempt = 0;
        loop {
            let (issued, record) = self.sign(request, AttestationKind::JoinToken, None)?;
            let redemption = self
                .store
                .redeem_join_token(
                    token_id.to_owned(),
                    token_hash,
                    OffsetDateTime::now_utc(),
                    record,
                    audit(&issued),
                )
                .await;
            match redemption {
                Ok(Redemption::Granted(_)) => return Ok(Ok(issued)),
                Ok(refusal) => return Ok(Err(refusal)),
                Err(StoreError::Conflict(_)) if attempt < MAX_SERIAL_RETRIES => attempt += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Signs a leaf for a verified JWT, then marks its `jti` used for
    /// `issuer` and commits the certificate in one transaction. If the
    /// `jti` was already used (a concurrent redemption won, or the token is
    /// replayed) or the identity is banned, the certificate is discarded
    /// unrecorded and the refusal is returned instead. `expires_at` is how
    /// long the `jti` is remembered: the last instant the token would still
    /// be accepted (its `exp` plus any leeway). `jti = None` skips replay
    /// protection.
    ///
    /// # Errors
    ///
    /// See [`IssuanceError`]; nothing is committed, and the `jti` stays
    /// unused.
    pub(crate) async fn issue_for_jwt(
        &self,
        request: &LeafRequest<'_>,
        issuer: &str,
        jti: Option<&str>,
        expires_at: OffsetDateTime,
        audit: &IssueAudit<'_>,
    ) -> Result<Result<IssuedCertificate, JwtRedemption>, IssuanceError> {
        let mut attempt = 0;
        loop {
            let (issued, record) = self.sign(request, AttestationKind::Jwt, None)?;
            let redemption = self
                .store
                .redeem_jwt(
                    issuer.to_owned(),
                    jti.map(str::to_owned),
                    expires_at,
                    OffsetDateTime::now_utc(),
                    record,
                    audit(&issued),
                )
                .await;
            match redemption {
                Ok(JwtRedemption::Granted) => return Ok(Ok(issued)),
                Ok(refusal) => return Ok(Err(refusal)),
                // A repeated serial (2^-80 per pair of one millisecond): draw a
                // new one.
                Err(StoreError::Conflict(_)) if attempt < MAX_SERIAL_RETRIES => attempt += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Signs a renewal of `presented` and lets the store decide, by the
    /// presented certificate's line, whether it continues the line.
    ///
    /// # Errors
    ///
    /// See [`IssuanceError`]; nothing is committed.
    pub(crate) async fn renew(
        &self,
        request: &LeafRequest<'_>,
        presented: Serial,
        audit: RenewAudit,
    ) -> Result<(IssuedCertificate, RenewalOutcome), IssuanceError> {
        let mut attempt = 0;
        loop {
            let (issued, record) = self.sign(request, AttestationKind::Renewal, Some(presented))?;
            let signer: Arc<dyn CrlSigner> = self.ca();
            let for_audit = issued.clone();
            let audit = Arc::clone(&audit);
            match self
                .store
                .renew(
                    record,
                    OffsetDateTime::now_utc(),
                    signer,
                    Box::new(move |outcome| audit(&for_audit, outcome)),
                )
                .await
            {
                Ok(outcome) => return Ok((issued, outcome)),
                Err(StoreError::Conflict(_)) if attempt < MAX_SERIAL_RETRIES => attempt += 1,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Mints a key pair and a recorded certificate for one of the CA's own
    /// identities (the server, an admin): attestation is holding the data
    /// dir. The audit log records it under `action`, by the local actor.
    ///
    /// # Errors
    ///
    /// See [`IssuanceError`].
    pub(crate) async fn mint_local(
        &self,
        action: &'static str,
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
            key: &SubjectKey::Verified(public_key),
            dns_names,
            ip_addresses,
            ttl,
        };
        let audit = |issued: &IssuedCertificate| {
            vec![AuditEvent::now(
                LOCAL_ACTOR,
                action,
                spiffe_id.to_string(),
                serde_json::json!({
                    "serial": issued.serial.to_string(),
                    "not_after": crate::rfc3339::format(issued.not_after),
                    "attestation": "local",
                }),
            )]
        };
        let issued = self
            .issue(&request, AttestationKind::Local, None, &audit)
            .await?;
        Ok((issued, key))
    }
}

/// Fault injection for the tests: a panic inside the signer.
#[cfg(test)]
mod faults {
    use std::cell::Cell;

    thread_local! {
        static PANIC_NEXT_SIGN: Cell<bool> = const { Cell::new(false) };
    }

    /// Makes this thread's next signature panic.
    pub(super) fn panic_next_sign() {
        PANIC_NEXT_SIGN.with(|flag| flag.set(true));
    }

    pub(super) fn panic_if_asked() {
        if PANIC_NEXT_SIGN.with(Cell::take) {
            panic!("an injected signer fault");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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
        let max_above_cap = TtlPolicy {
            max: MAX_TTL_CAP + Duration::from_secs(1),
            ..TtlPolicy::default()
        };
        assert!(max_above_cap.validate().is_err());
        assert!(TtlPolicy::default().validate().is_ok());
    }

    /// A CA and its store in a temporary directory, and a request for
    /// one identity with a verified key.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<crate::store::SqliteStore>,
        issuance: Issuance,
        spiffe_id: sigil_core::SpiffeId,
        key: SubjectKey,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let ca = Arc::new(crate::ca::example_authority());
            let store =
                Arc::new(crate::store::SqliteStore::open(&dir.path().join("sigil.db")).unwrap());
            let key = KeyType::P256.generate().unwrap();
            Self {
                _dir: dir,
                issuance: Issuance::new(ca, store.clone()),
                store,
                spiffe_id: "spiffe://example.org/agent".parse().unwrap(),
                key: SubjectKey::Verified(VerifiedPublicKey::from_own_key(&key).unwrap()),
            }
        }

        fn request(&self) -> LeafRequest<'_> {
            LeafRequest {
                spiffe_id: &self.spiffe_id,
                key: &self.key,
                dns_names: &[],
                ip_addresses: &[],
                ttl: Duration::from_secs(600),
            }
        }
    }

    /// One `svid.issue` event naming the certificate's serial.
    fn issue_event(
        actor: &str,
        attestation: &str,
    ) -> impl Fn(&IssuedCertificate) -> Vec<AuditEvent> {
        let (actor, attestation) = (actor.to_owned(), attestation.to_owned());
        move |issued| {
            vec![AuditEvent::now(
                actor.clone(),
                "svid.issue",
                issued.serial.to_string(),
                serde_json::json!({ "attestation": attestation }),
            )]
        }
    }

    #[tokio::test]
    async fn a_jwt_yields_one_recorded_certificate_and_its_replay_none() {
        let fixture = Fixture::new();
        let (store, issuance, request) = (&fixture.store, &fixture.issuance, fixture.request());
        let audit = issue_event("https://issuer.example.org", "jwt");
        let expires_at = OffsetDateTime::now_utc() + Duration::from_secs(300);
        let redeem = || {
            issuance.issue_for_jwt(
                &request,
                "https://issuer.example.org",
                Some("jti-1"),
                expires_at,
                &audit,
            )
        };

        let issued = redeem().await.unwrap().unwrap();
        let stored = store
            .find_certificate(issued.serial)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.record.attestation, AttestationKind::Jwt);
        assert_eq!(stored.record.der, issued.der.to_vec());

        let replayed = redeem().await.unwrap();
        assert!(
            matches!(replayed, Err(JwtRedemption::Replayed)),
            "{replayed:?}"
        );
        assert_eq!(store.audit_page(0, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_panic_in_the_signer_fails_its_request_alone_and_records_nothing() {
        let fixture = Fixture::new();
        let (store, issuance, request) = (&fixture.store, &fixture.issuance, fixture.request());
        let audit = issue_event("spiffe://example.org/agent", "test");

        faults::panic_next_sign();
        let failed = issuance
            .issue(&request, AttestationKind::JoinToken, None, &audit)
            .await;
        match failed {
            Err(IssuanceError::Signing(error)) => {
                assert_eq!(error.to_string(), "the signer panicked (a bug)");
            }
            other => panic!("expected a signing error, got {other:?}"),
        }
        assert!(store.audit_page(0, 10).await.unwrap().is_empty());

        // The next request is served as if nothing had happened.
        let issued = issuance
            .issue(&request, AttestationKind::JoinToken, None, &audit)
            .await
            .unwrap();
        assert!(
            store
                .find_certificate(issued.serial)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(store.audit_page(0, 10).await.unwrap().len(), 1);
    }
}
