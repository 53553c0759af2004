//! `GET /metrics`: fetched with curl, parsed by the Prometheus project's
//! own OpenMetrics parser (python3-prometheus-client), and moving as
//! expected after an issuance, a refused attestation, a renewal and a
//! revocation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{Value, json};

/// The parser: prints one `name{label="value",...} value` line per sample,
/// labels sorted, after validating the whole text.
const PARSE: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(sample.labels.items()))
        print("%s{%s} %r" % (sample.name, labels, sample.value))
"#;

/// `curl /metrics`, parsed: sample (`name{labels}`) to value.
fn scrape(server: &Server, dir: &DataDir) -> BTreeMap<String, f64> {
    let fetched = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "20", "--cacert"])
        .arg(dir.file("bundle.pem"))
        .arg(format!("{}/metrics", server.url))
        .output()
        .unwrap();
    assert!(fetched.status.success(), "{}", stderr(&fetched));
    let mut parser = Command::new("/usr/bin/python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3-prometheus-client is installed (see .ci/run)");
    std::io::Write::write_all(&mut parser.stdin.take().unwrap(), &fetched.stdout).unwrap();
    let parsed = parser.wait_with_output().unwrap();
    assert!(
        parsed.status.success(),
        "not valid OpenMetrics text: {}\n{}",
        stderr(&parsed),
        String::from_utf8_lossy(&fetched.stdout)
    );
    stdout(&parsed)
        .lines()
        .map(|line| {
            let (sample, value) = line.rsplit_once(' ').unwrap();
            (sample.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, sample: &str) -> f64 {
    samples.get(sample).copied().unwrap_or(0.0)
}

#[test]
fn metrics_parse_as_openmetrics_and_move_with_issuance_renewal_and_revocation() {
    let dir = DataDir::init();
    let server = dir.start();
    let before = scrape(&server, &dir);
    let issued = r#"sigil_issuances_total{attestor="join_token",outcome="issued"}"#;
    let refused = r#"sigil_issuances_total{attestor="join_token",outcome="invalid_attestation"}"#;
    let renewed = r#"sigil_renewals_total{outcome="issued"}"#;
    assert_eq!(value(&before, issued), 0.0);

    // One issuance, one refused attestation, one renewal, one revocation.
    let token = server.token("spiffe://example.org/agents/measured");
    let (key, csr) = p256_csr();
    let svid: Value = server.redeem(&token, &csr).json().unwrap();
    assert_eq!(server.redeem(&token, &p256_csr().1).status, 401);
    let agent = server.client_as(
        svid["cert_chain_pem"].as_str().unwrap(),
        &key.serialize_pem(),
    );
    let renewal = block_on(agent.post_json("/v1/renew", &json!({"csr": p256_csr().1}))).unwrap();
    assert_eq!(renewal.status, 200);
    let revoked = block_on(server.admin().post_json(
        "/admin/v1/revocations",
        &json!({"serial": svid["serial"], "reason": "keyCompromise"}),
    ))
    .unwrap();
    assert_eq!(revoked.status, 200);

    let after = scrape(&server, &dir);
    assert_eq!(value(&after, issued), 1.0);
    assert_eq!(value(&after, refused), 1.0);
    assert_eq!(value(&after, renewed), 1.0);
    assert_eq!(value(&after, "sigil_revocations_total{}"), 1.0);
    let svid_requests =
        r#"sigil_http_request_duration_seconds_count{method="POST",route="/v1/svid",status="200"}"#;
    assert_eq!(value(&after, svid_requests), 1.0, "{after:#?}");
    // The store committed at least the issuance, renewal and revocation.
    assert!(
        value(&after, "sigil_store_commit_duration_seconds_count{}")
            >= value(&before, "sigil_store_commit_duration_seconds_count{}") + 3.0
    );
    assert!(value(&after, "sigil_store_batch_operations_count{}") >= 3.0);

    // The state gauges: both CAs far from expiry, both CRLs fresh, and the
    // issuing CA's CRL number grown by the revocation.
    let gauges = |prefix: &str| -> Vec<(String, f64)> {
        after
            .iter()
            .filter(|(sample, _)| sample.starts_with(prefix))
            .map(|(sample, value)| (sample.clone(), *value))
            .collect()
    };
    let expiry = gauges("sigil_ca_expiry_seconds{");
    assert_eq!(expiry.len(), 2, "{expiry:?}");
    assert!(
        expiry
            .iter()
            .all(|(_, seconds)| *seconds > 300.0 * 86_400.0),
        "{expiry:?}"
    );
    let ages = gauges("sigil_crl_age_seconds{");
    assert_eq!(ages.len(), 2, "{ages:?}");
    assert!(
        ages.iter().all(|(_, age)| (0.0..3_600.0).contains(age)),
        "{ages:?}"
    );
    let numbers_before: f64 = before
        .iter()
        .filter(|(sample, _)| sample.starts_with("sigil_crl_number{"))
        .map(|(_, number)| *number)
        .fold(0.0, f64::max);
    let numbers_after = gauges("sigil_crl_number{")
        .into_iter()
        .map(|(_, number)| number)
        .fold(0.0, f64::max);
    assert!(
        numbers_after > numbers_before,
        "{numbers_before} → {numbers_after}"
    );
}

#[test]
fn rate_limit_refusals_are_counted_by_limit() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--rate-limit", "0.01", "--rate-burst", "1"]);
    let limited = (0..3)
        .map(|_| server.post_svid(json!({})))
        .filter(|response| response.status == 429)
        .count();
    assert!(limited >= 2, "{limited}");
    let samples = scrape(&server, &dir);
    assert_eq!(
        value(&samples, r#"sigil_rate_limited_total{limit="requests"}"#),
        limited as f64
    );
    // Refused before any handler: counted as issuances with no attestor.
    assert_eq!(
        value(
            &samples,
            r#"sigil_issuances_total{attestor="none",outcome="rate_limited"}"#
        ),
        limited as f64
    );
}

#[test]
fn made_up_methods_and_paths_cannot_grow_the_label_sets() {
    let dir = DataDir::init();
    let server = dir.start();
    let client = server.anonymous();
    for n in 0..20 {
        let method = http::Method::from_bytes(format!("X{n}").as_bytes()).unwrap();
        let path = format!("/made-up/{n}");
        for path in ["/v1/bundle", path.as_str()] {
            let answer = block_on(client.request(method.clone(), path, None, Vec::new())).unwrap();
            assert!(answer.status.is_client_error(), "{}", answer.status);
        }
    }
    let samples = scrape(&server, &dir);
    let labelled = |needle: &str| samples.keys().filter(|s| s.contains(needle)).count();
    assert_eq!(labelled("method=\"X"), 0, "{samples:#?}");
    assert_eq!(labelled("/made-up/"), 0, "{samples:#?}");
    assert!(labelled("method=\"other\"") > 0, "{samples:#?}");
}
