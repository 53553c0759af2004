//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! Counters and histograms are updated where things happen; the gauges
//! that describe state (CRL numbers and ages, CA expiry) are set from that
//! state when the metrics are read. Label values come from bounded sets
//! only: routes as the router names them, error codes, configured attestor
//! names and CA key IDs, never from a client's input.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use time::OffsetDateTime;

use crate::ca::CertificateAuthority;
use crate::crl_board::CrlSet;
use crate::store::CommitObserver;

/// The outcome label of a success.
pub const ISSUED: &str = "issued";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuanceLabels {
    attestor: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabels {
    issuer_key_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CaLabels {
    role: String,
    key_id: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn request_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric Sigil exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    issuances: Family<IssuanceLabels, Counter>,
    renewals: Family<OutcomeLabels, Counter>,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    revocations: Counter,
    rate_limited: Family<LimitLabels, Counter>,
    store_commit: Histogram,
    store_batch: Histogram,
    store_failures: Counter,
    crl_number: Family<IssuerLabels, FloatGauge>,
    crl_age: Family<IssuerLabels, FloatGauge>,
    ca_expiry: Family<CaLabels, FloatGauge>,
    /// One render at a time: each clears the state gauges and sets them
    /// again, so that CAs and CRLs gone since the last one disappear.
    render: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under the `sigil_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sigil");
        let issuances = Family::default();
        registry.register(
            "issuances",
            "Attestations answered by POST /v1/svid, by attestor and outcome (issued, or the error code)",
            issuances.clone(),
        );
        let renewals = Family::default();
        registry.register(
            "renewals",
            "Renewals answered by POST /v1/renew, by outcome (issued, or the error code)",
            renewals.clone(),
        );
        let requests: Family<RequestLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(request_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an API request, by route, method and status",
            Unit::Seconds,
            requests.clone(),
        );
        let revocations = Counter::default();
        registry.register(
            "revocations",
            "Certificates revoked (by serial, by identity, or by a lineage fork)",
            revocations.clone(),
        );
        let rate_limited = Family::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429, by limit (requests, renewals, failed_attestations)",
            rate_limited.clone(),
        );
        let store_commit = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register_with_unit(
            "store_commit_duration",
            "Time of each store commit (one fsync for a whole batch of operations)",
            Unit::Seconds,
            store_commit.clone(),
        );
        let store_batch = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        registry.register(
            "store_batch_operations",
            "Operations carried by each store commit",
            store_batch.clone(),
        );
        let store_failures = Counter::default();
        registry.register(
            "store_commit_failures",
            "Store batches that could not be committed (nothing of them was stored)",
            store_failures.clone(),
        );
        let crl_number = Family::default();
        registry.register(
            "crl_number",
            "The CRL number of each issuer's CRL being served",
            crl_number.clone(),
        );
        let crl_age = Family::default();
        registry.register_with_unit(
            "crl_age",
            "Time since each issuer's CRL being served was signed",
            Unit::Seconds,
            crl_age.clone(),
        );
        let ca_expiry = Family::default();
        registry.register_with_unit(
            "ca_expiry",
            "Time until each CA certificate (root, issuing) expires",
            Unit::Seconds,
            ca_expiry.clone(),
        );
        Self {
            registry,
            issuances,
            renewals,
            requests,
            revocations,
            rate_limited,
            store_commit,
            store_batch,
            store_failures,
            crl_number,
            crl_age,
            ca_expiry,
            render: std::sync::Mutex::new(()),
        }
    }

    /// An attestation was answered.
    pub fn issuance(&self, attestor: &str, outcome: &str) {
        self.issuances
            .get_or_create(&IssuanceLabels {
                attestor: attestor.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// A renewal was answered.
    pub fn renewal(&self, outcome: &str) {
        self.renewals
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// An API request was answered.
    pub fn request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .observe(took.as_secs_f64());
    }

    /// Certificates were revoked.
    pub fn revoked(&self, count: usize) {
        self.revocations.inc_by(count as u64);
    }

    /// A request was refused with 429 by this limit.
    pub fn rate_limited(&self, limit: &str) {
        self.rate_limited
            .get_or_create(&LimitLabels {
                limit: limit.to_owned(),
            })
            .inc();
    }

    /// The metrics as Prometheus text, with the state gauges set from the
    /// CA and the CRLs being served at `now`.
    pub fn render(&self, ca: &CertificateAuthority, crls: &CrlSet, now: OffsetDateTime) -> String {
        // A panicked render left nothing half-done that matters here.
        let _one_at_a_time = self
            .render
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.ca_expiry.clear();
        self.crl_number.clear();
        self.crl_age.clear();
        for (role, certificate) in ca.certificates_by_role() {
            self.ca_expiry
                .get_or_create(&CaLabels {
                    role: role.to_owned(),
                    key_id: certificate.key_id().to_owned(),
                })
                .set((certificate.not_after() - now).as_seconds_f64());
        }
        for crl in crls.iter() {
            let labels = IssuerLabels {
                issuer_key_id: crl.issuer_key_id.clone(),
            };
            // CRL numbers stay below 2^53: exact as f64.
            self.crl_number
                .get_or_create(&labels)
                .set(crl.number as f64);
            self.crl_age
                .get_or_create(&labels)
                .set((now - crl.this_update).as_seconds_f64());
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

impl CommitObserver for Metrics {
    fn committed(&self, took: Duration, operations: usize) {
        self.store_commit.observe(took.as_secs_f64());
        self.store_batch.observe(operations as f64);
    }

    fn commit_failed(&self) {
        self.store_failures.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text_with_their_labels() {
        let metrics = Metrics::new();
        metrics.issuance("join_token", ISSUED);
        metrics.issuance("join_token", "invalid_csr");
        metrics.renewal(ISSUED);
        metrics.revoked(3);
        metrics.rate_limited("renewals");
        metrics.request("/v1/svid", "POST", 200, Duration::from_millis(3));
        metrics.committed(Duration::from_micros(300), 4);
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &metrics.registry);
        for line in [
            "sigil_issuances_total{attestor=\"join_token\",outcome=\"issued\"} 1",
            "sigil_issuances_total{attestor=\"join_token\",outcome=\"invalid_csr\"} 1",
            "sigil_renewals_total{outcome=\"issued\"} 1",
            "sigil_revocations_total 3",
            "sigil_rate_limited_total{limit=\"renewals\"} 1",
            "sigil_http_request_duration_seconds_count{route=\"/v1/svid\",method=\"POST\",status=\"200\"} 1",
            "sigil_store_commit_duration_seconds_count 1",
            "sigil_store_batch_operations_sum 4.0",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn cas_and_crls_gone_since_the_last_render_disappear_from_the_next() {
        let (before, after) = (
            crate::ca::example_authority(),
            crate::ca::example_authority(),
        );
        let board = crate::crl_board::CrlBoard::default();
        let now = OffsetDateTime::now_utc();
        board.post([crate::revocation::SignedCrl {
            issuer_key_id: before.root().key_id().to_owned(),
            number: 7,
            this_update: now,
            next_update: now,
            der: Vec::new(),
        }]);
        let metrics = Metrics::new();
        let first = metrics.render(&before, &board.snapshot(), now);
        assert!(first.contains(before.issuing().key_id()), "{first}");
        assert!(first.contains("sigil_crl_number"), "{first}");
        board.retain(|_| false);
        let second = metrics.render(&after, &board.snapshot(), now);
        assert!(second.contains(after.issuing().key_id()), "{second}");
        for gone in [before.root().key_id(), before.issuing().key_id()] {
            assert!(!second.contains(gone), "{gone} still in:\n{second}");
        }
    }
}
