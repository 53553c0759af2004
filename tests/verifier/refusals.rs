//! 4–8: certificates that must never get in.

use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose};
use rustls::{AlertDescription, CertificateError};

use crate::ca::{Ca, leaf_params};
use crate::client::{
    assert_accepted, assert_refused_with, attempt, client_config, policy, refusal_alert, run,
    svid_rule_error,
};
use crate::common::TRUST_DOMAIN;
use crate::echo::{ECHO_ID, Echo, Resumable};

#[test]
fn an_expired_caller_is_refused_with_certificate_expired() {
    let ca = Ca::start();
    let echo_svid = ca.issue(ECHO_ID);
    // Control: a leaf signed the same way, but current, gets in — so the
    // refusal below is about the dates alone.
    let current = ca.forge(&leaf_params(&["spiffe://example.org/agents/fresh"]));
    let mut params = leaf_params(&["spiffe://example.org/agents/stale"]);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(2);
    params.not_after = now - time::Duration::hours(1);
    let expired = ca.forge(&params);
    run(async {
        let source = ca.live_source().await;
        let echo = Echo::start(
            &source,
            policy(&["spiffe://example.org/agents/*"]),
            &echo_svid,
            Resumable::No,
        )
        .await;
        assert_accepted(
            &attempt(&client_config(&source, &current, false), echo.addr).await,
            &current.spiffe_id,
        );
        assert!(matches!(
            echo.verdict(&expired),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            ))
        ));
        let refused = attempt(&client_config(&source, &expired, false), echo.addr).await;
        assert_refused_with(&refused, AlertDescription::CertificateExpired);
    });
}

#[test]
fn a_caller_from_another_ca_of_the_same_trust_domain_is_refused_with_unknown_ca() {
    let ca = Ca::start();
    let other_ca = Ca::start_for(TRUST_DOMAIN);
    assert_ne!(ca.dir.fingerprint, other_ca.dir.fingerprint);
    let echo_svid = ca.issue(ECHO_ID);
    // Same trust domain, same SPIFFE ID the policy allows, wrong CA.
    let stranger = other_ca.issue("spiffe://example.org/agents/support/7");
    run(async {
        let source = ca.live_source().await;
        let echo = Echo::start(
            &source,
            policy(&["spiffe://example.org/agents/*"]),
            &echo_svid,
            Resumable::No,
        )
        .await;
        assert!(matches!(
            echo.verdict(&stranger),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ));
        let refused = attempt(&client_config(&source, &stranger, false), echo.addr).await;
        assert_refused_with(&refused, AlertDescription::UnknownCA);
    });
}

#[test]
fn a_caller_from_another_trust_domain_is_refused() {
    let ca = Ca::start();
    let foreign_ca = Ca::start_for("other.org");
    let echo_svid = ca.issue(ECHO_ID);
    // An SVID the other trust domain's own CA issued.
    let foreigner = foreign_ca.issue("spiffe://other.org/agents/support/7");
    // An SVID naming the other trust domain, signed by this CA's issuing
    // key: the chain verifies, only the trust-domain rule can refuse it.
    let smuggled = ca.forge(&leaf_params(&["spiffe://other.org/agents/support/7"]));
    run(async {
        let source = ca.live_source().await;
        // The policy allows the foreign IDs, so that any refusal comes from
        // the trust checks, not from the policy.
        let echo = Echo::start(
            &source,
            policy(&[
                "spiffe://example.org/agents/*",
                "spiffe://other.org/agents/*",
            ]),
            &echo_svid,
            Resumable::No,
        )
        .await;

        assert!(matches!(
            echo.verdict(&foreigner),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ));
        let refused = attempt(&client_config(&source, &foreigner, false), echo.addr).await;
        assert_refused_with(&refused, AlertDescription::UnknownCA);

        svid_rule_error(echo.verdict(&smuggled), "not in trust domain example.org");
        let refused = attempt(&client_config(&source, &smuggled, false), echo.addr).await;
        let alert = refusal_alert(&refused);
        assert_ne!(
            alert,
            AlertDescription::AccessDenied,
            "refused by the policy, not by the trust-domain check"
        );
    });
}

#[test]
fn a_certificate_with_two_uri_sans_is_refused() {
    let ca = Ca::start();
    let echo_svid = ca.issue(ECHO_ID);
    // Control: the same forging path with one URI SAN gets in.
    let single = ca.forge(&leaf_params(&["spiffe://example.org/agents/support/7"]));
    let double = ca.forge(&leaf_params(&[
        "spiffe://example.org/agents/support/7",
        "spiffe://example.org/agents/support/8",
    ]));
    run(async {
        let source = ca.live_source().await;
        let echo = Echo::start(
            &source,
            policy(&["spiffe://example.org/agents/*"]),
            &echo_svid,
            Resumable::No,
        )
        .await;
        assert_accepted(
            &attempt(&client_config(&source, &single, false), echo.addr).await,
            &single.spiffe_id,
        );
        svid_rule_error(echo.verdict(&double), "exactly one URI SAN");
        let refused = attempt(&client_config(&source, &double, false), echo.addr).await;
        // SpiffeClientVerifier documents `certificate_unknown` for a broken
        // X509-SVID rule (the reason stays in the server's error).
        assert_refused_with(&refused, AlertDescription::CertificateUnknown);
    });
}

#[test]
fn a_ca_certificate_presented_as_a_leaf_is_refused() {
    let ca = Ca::start();
    let echo_svid = ca.issue(ECHO_ID);
    // The real issuing CA certificate and key, presented as a client SVID.
    let issuing = ca.issuing_ca_as_svid();
    // A CA certificate that carries a SPIFFE ID the policy allows, signed by
    // the real issuing CA.
    let mut params = leaf_params(&["spiffe://example.org/agents/support/7"]);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let spiffe_ca = ca.forge(&params);
    run(async {
        let source = ca.live_source().await;
        let echo = Echo::start(
            &source,
            policy(&["spiffe://example.org/*"]),
            &echo_svid,
            Resumable::No,
        )
        .await;
        let mut alerts = Vec::new();
        for (what, svid) in [("issuing CA", &issuing), ("CA:true SVID", &spiffe_ca)] {
            let verdict = echo.verdict(svid);
            assert!(
                matches!(verdict, Err(rustls::Error::InvalidCertificate(_))),
                "{what}: {verdict:?}"
            );
            let refused = attempt(&client_config(&source, svid, false), echo.addr).await;
            alerts.push((what, refusal_alert(&refused), verdict.unwrap_err()));
        }
        // A CA is no X509-SVID leaf: `certificate_unknown`, as
        // SpiffeClientVerifier documents for a broken X509-SVID rule.
        let wrong: Vec<_> = alerts
            .iter()
            .filter(|(_, alert, _)| *alert != AlertDescription::CertificateUnknown)
            .collect();
        assert!(
            wrong.is_empty(),
            "refused with another alert than CertificateUnknown (what, alert, server-side error): \
             {wrong:#?}"
        );
    });
}
