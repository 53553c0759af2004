//! Router-level tests, without a socket: what the API does when the store
//! fails underneath it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;

use super::{AppState, app};
use crate::audit::{AuditEvent, AuditRecord, Checkpoint};
use crate::ca::{CaFiles, CertificateAuthority, KeyType};
use crate::crl_board::CrlBoard;
use crate::csr::KeyPolicy;
use crate::issuance::{Issuance, TtlPolicy};
use crate::join_token::{self, TokenHash};
use crate::revocation::{CrlSigner, SignedCrl};
use crate::serial::Serial;
use crate::store::{
    AuditFn, CertificateQuery, CertificateRecord, JwtRedemption, NewJoinToken, Redemption,
    RenewalOutcome, RevocationOutcome, RevocationRequest, SqliteStore, Store, StoreError,
    StoreFuture, StoredCertificate, TokenGrant,
};
use sigil_core::SpiffeId;

/// A store whose writes of certificates fail while `broken` is set.
struct FlakyStore {
    inner: SqliteStore,
    broken: AtomicBool,
}

impl FlakyStore {
    fn refuse<T: Send + 'static>(&self) -> Option<StoreFuture<'_, T>> {
        self.broken.load(Ordering::SeqCst).then(|| {
            Box::pin(async { Err(StoreError::Unavailable("disk full".to_owned())) })
                as StoreFuture<'_, T>
        })
    }
}

impl Store for FlakyStore {
    fn record_certificate(
        &self,
        record: CertificateRecord,
        audit: Vec<AuditEvent>,
    ) -> StoreFuture<'_, ()> {
        self.refuse()
            .unwrap_or_else(|| self.inner.record_certificate(record, audit))
    }

    fn find_certificate(&self, serial: Serial) -> StoreFuture<'_, Option<StoredCertificate>> {
        self.inner.find_certificate(serial)
    }

    fn list_certificates(
        &self,
        query: CertificateQuery,
    ) -> StoreFuture<'_, Vec<StoredCertificate>> {
        self.inner.list_certificates(query)
    }

    fn revoke(
        &self,
        request: RevocationRequest,
        signer: Arc<dyn CrlSigner>,
        audit: AuditFn<RevocationOutcome>,
    ) -> StoreFuture<'_, RevocationOutcome> {
        self.refuse()
            .unwrap_or_else(|| self.inner.revoke(request, signer, audit))
    }

    fn renew(
        &self,
        certificate: CertificateRecord,
        now: OffsetDateTime,
        signer: Arc<dyn CrlSigner>,
        audit: AuditFn<RenewalOutcome>,
    ) -> StoreFuture<'_, RenewalOutcome> {
        self.refuse()
            .unwrap_or_else(|| self.inner.renew(certificate, now, signer, audit))
    }

    fn append_audit(&self, events: Vec<AuditEvent>) -> StoreFuture<'_, Vec<AuditRecord>> {
        self.inner.append_audit(events)
    }

    fn audit_page(&self, after: u64, limit: u32) -> StoreFuture<'_, Vec<AuditRecord>> {
        self.inner.audit_page(after, limit)
    }

    fn audit_tail(&self, limit: u32) -> StoreFuture<'_, Vec<AuditRecord>> {
        self.inner.audit_tail(limit)
    }

    fn record_checkpoint(&self, checkpoint: Checkpoint) -> StoreFuture<'_, ()> {
        self.inner.record_checkpoint(checkpoint)
    }

    fn latest_checkpoint(&self) -> StoreFuture<'_, Option<Checkpoint>> {
        self.inner.latest_checkpoint()
    }

    fn checkpoints(&self) -> StoreFuture<'_, Vec<Checkpoint>> {
        self.inner.checkpoints()
    }

    fn lift_ban(&self, spiffe_id: SpiffeId, audit: Vec<AuditEvent>) -> StoreFuture<'_, bool> {
        self.inner.lift_ban(spiffe_id, audit)
    }

    fn is_banned(&self, spiffe_id: SpiffeId) -> StoreFuture<'_, bool> {
        self.inner.is_banned(spiffe_id)
    }

    fn publish_crl(
        &self,
        issuer_key_id: String,
        now: OffsetDateTime,
        signer: Arc<dyn CrlSigner>,
    ) -> StoreFuture<'_, SignedCrl> {
        self.inner.publish_crl(issuer_key_id, now, signer)
    }

    fn current_crls(&self) -> StoreFuture<'_, Vec<SignedCrl>> {
        self.inner.current_crls()
    }

    fn create_join_token(
        &self,
        token: NewJoinToken,
        audit: Vec<AuditEvent>,
    ) -> StoreFuture<'_, ()> {
        self.inner.create_join_token(token, audit)
    }

    fn peek_join_token(
        &self,
        id: String,
        presented: TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Redemption> {
        self.inner.peek_join_token(id, presented, now)
    }

    fn redeem_join_token(
        &self,
        id: String,
        presented: TokenHash,
        now: OffsetDateTime,
        certificate: CertificateRecord,
        audit: Vec<AuditEvent>,
    ) -> StoreFuture<'_, Redemption> {
        self.refuse().unwrap_or_else(|| {
            self.inner
                .redeem_join_token(id, presented, now, certificate, audit)
        })
    }

    fn redeem_jwt(
        &self,
        issuer: String,
        jti: Option<String>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        certificate: CertificateRecord,
        audit: Vec<AuditEvent>,
    ) -> StoreFuture<'_, JwtRedemption> {
        self.refuse().unwrap_or_else(|| {
            self.inner
                .redeem_jwt(issuer, jti, expires_at, now, certificate, audit)
        })
    }

    fn summary(&self, now: OffsetDateTime) -> StoreFuture<'_, crate::store::StoreSummary> {
        self.inner.summary(now)
    }

    fn latest_live_expiry(
        &self,
        issuer_key_ids: Vec<String>,
        excluded: SpiffeId,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Option<OffsetDateTime>> {
        self.inner.latest_live_expiry(issuer_key_ids, excluded, now)
    }

    fn check_ready(&self) -> StoreFuture<'_, ()> {
        self.refuse().unwrap_or_else(|| self.inner.check_ready())
    }
}

fn csr_pem() -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap()
}

async fn call(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn no_certificate_leaves_the_ca_when_the_store_cannot_commit_it_and_the_token_keeps_its_use()
{
    let dir = tempfile::tempdir().unwrap();
    let td = "example.org".parse().unwrap();
    let files = CaFiles::generate(
        &td,
        KeyType::P256,
        crate::ca::DEFAULT_ISSUING_LIFETIME,
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let ca = Arc::new(CertificateAuthority::load(&files, "https://localhost:8443").unwrap());
    let store = Arc::new(FlakyStore {
        inner: SqliteStore::open(&dir.path().join("sigil.db")).unwrap(),
        broken: AtomicBool::new(false),
    });
    let state = AppState::new(
        Issuance::new(ca, Arc::clone(&store) as Arc<dyn Store>),
        TtlPolicy::default(),
        KeyPolicy::default(),
        Arc::new(CrlBoard::default()),
        Arc::default(),
    )
    .unwrap();
    let minted = join_token::mint().unwrap();
    store
        .create_join_token(
            NewJoinToken {
                id: minted.id.clone(),
                hash: minted.hash,
                grant: TokenGrant {
                    spiffe_id: "spiffe://example.org/agent".parse().unwrap(),
                    dns_names: vec![],
                    ip_addresses: vec![],
                },
                uses: 1,
                expires_at: OffsetDateTime::now_utc() + Duration::from_secs(600),
                created_at: OffsetDateTime::now_utc(),
                created_by: "spiffe://example.org/sigil/admin/a".parse().unwrap(),
            },
            vec![],
        )
        .await
        .unwrap();
    let request = || {
        let body = json!({
            "csr": csr_pem(),
            "attestation": {"type": "join_token", "token": minted.token.expose()},
        });
        Request::post("/v1/svid")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };

    store.broken.store(true, Ordering::SeqCst);
    let (status, body) = call(&state, request()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(body.get("cert_chain_pem").is_none());
    let (status, _) = call(&state, Request::get("/readyz").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    store.broken.store(false, Ordering::SeqCst);
    let (status, body) = call(&state, request()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let serial: Serial = body["serial"].as_str().unwrap().parse().unwrap();
    assert!(store.find_certificate(serial).await.unwrap().is_some());
}
