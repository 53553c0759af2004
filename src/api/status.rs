//! `GET /admin/v1/status`: the CA at a glance, for `sigil status` and for
//! scripts. It answers 200 even when the store is failing, and then says
//! so (`health: degraded`), since that is when an operator asks; within
//! [`READY_TIMEOUT`] whatever the store does. The certificate counts scan
//! the store, so they are computed at most once per [`COUNTS_MAX_AGE`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use sigil_core::wire::{CertificateCounts, CrlStatus, IssuerStatus, StatusResponse};
use time::OffsetDateTime;

use super::{Admin, AppState};
use crate::ca::{CaCertificate, CertificateAuthority};
use crate::rfc3339;
use crate::store::{StoreError, StoreSummary};

/// How long the store gets to show it can write.
const READY_TIMEOUT: Duration = Duration::from_secs(2);
/// How old the certificate counts may be.
const COUNTS_MAX_AGE: Duration = Duration::from_secs(10);

/// The counts last computed, and when.
#[derive(Debug, Default)]
pub(super) struct CountsCache(Mutex<Option<(Instant, StoreSummary)>>);

impl CountsCache {
    fn fresh(&self) -> Option<StoreSummary> {
        let cached = *self.0.lock().ok()?;
        cached
            .filter(|(at, _)| at.elapsed() < COUNTS_MAX_AGE)
            .map(|(_, summary)| summary)
    }

    fn keep(&self, summary: StoreSummary) {
        if let Ok(mut cached) = self.0.lock() {
            *cached = Some((Instant::now(), summary));
        }
    }
}

fn issuer(
    ca: &CertificateAuthority,
    role: &str,
    certificate: &CaCertificate,
    now: OffsetDateTime,
) -> IssuerStatus {
    let is_root = role.ends_with("root");
    let activates_at = ca
        .next_root()
        .filter(|(next, _)| next.key_id() == certificate.key_id())
        .map(|(_, at)| rfc3339::format(at));
    IssuerStatus {
        role: role.to_owned(),
        key_id: certificate.key_id().to_owned(),
        not_before: rfc3339::format(certificate.not_before()),
        not_after: rfc3339::format(certificate.not_after()),
        expires_in_seconds: (certificate.not_after() - now).whole_seconds(),
        fingerprint: is_root.then(|| certificate.fingerprint()),
        activates_at,
    }
}

/// `GET /admin/v1/status`.
pub(super) async fn status(State(state): State<AppState>, _admin: Admin) -> Json<StatusResponse> {
    let now = OffsetDateTime::now_utc();
    let ca = state.issuance.ca();
    let store = state.issuance.store();
    let ready = tokio::time::timeout(READY_TIMEOUT, store.check_ready())
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "it did not show it can write within {} s",
                READY_TIMEOUT.as_secs()
            )))
        });
    let summary = match state.status_counts.fresh() {
        Some(summary) => Ok(summary),
        None => {
            let summary = store.summary(now).await;
            if let Ok(summary) = summary {
                state.status_counts.keep(summary);
            }
            summary
        }
    };
    let problem = match (&ready, &summary) {
        (Err(error), _) | (Ok(()), Err(error)) => Some(format!("the store: {error}")),
        (Ok(()), Ok(_)) => None,
    };
    let summary = summary.ok();
    let crls = state
        .crls
        .snapshot()
        .iter()
        .map(|crl| CrlStatus {
            issuer_key_id: crl.issuer_key_id.clone(),
            number: crl.number,
            this_update: rfc3339::format(crl.this_update),
            next_update: rfc3339::format(crl.next_update),
            age_seconds: (now - crl.this_update).whole_seconds(),
        })
        .collect();
    Json(StatusResponse {
        health: if problem.is_some() { "degraded" } else { "ok" }.to_owned(),
        problem,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        trust_domain: ca.trust_domain().to_string(),
        issuers: ca
            .certificates_by_role()
            .into_iter()
            .map(|(role, certificate)| issuer(&ca, role, certificate, now))
            .collect(),
        spiffe_sequence: ca.bundle_sequence(),
        certificates: summary.map(|summary| CertificateCounts {
            live: summary.live,
            revoked: summary.revoked,
            issued: summary.issued,
        }),
        crls,
        last_audit_seq: summary.map(|summary| summary.last_audit_seq),
    })
}
