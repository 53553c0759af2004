//! 1–2: policy, and its segment boundary through the echo_server example.

use rustls::{AlertDescription, CertificateError, HandshakeKind};
use serde_json::json;

use crate::ca::Ca;
use crate::client::{assert_accepted, assert_refused_with, attempt, client_config, policy, run};
use crate::echo::{ECHO_ID, ECHO_IP, Echo, EchoProcess, Resumable};

#[test]
fn an_allowed_caller_is_accepted_and_gets_its_spiffe_id_back() {
    let ca = Ca::start();
    let echo_svid = ca.issue(ECHO_ID);
    let caller = ca.issue("spiffe://example.org/agents/support/7");
    run(async {
        let source = ca.live_source().await;
        let echo = Echo::start(
            &source,
            policy(&["spiffe://example.org/agents/support/*"]),
            &echo_svid,
            Resumable::No,
        )
        .await;
        let config = client_config(&source, &caller, false);
        let first = attempt(&config, echo.addr).await;
        assert_accepted(&first, "spiffe://example.org/agents/support/7");
        assert_eq!(first.handshake, Some(HandshakeKind::Full));
        let identity = echo.verdict(&caller).unwrap();
        assert_eq!(
            identity.spiffe_id().to_string(),
            "spiffe://example.org/agents/support/7"
        );
        assert_eq!(identity.serial_hex(), caller.serial);
    });
}

#[test]
fn a_caller_outside_the_policy_is_refused_with_access_denied() {
    let ca = Ca::start();
    let echo_svid = ca.issue(ECHO_ID);
    let outsider = ca.issue("spiffe://example.org/agents/billing/1");
    run(async {
        let source = ca.live_source().await;
        let echo = Echo::start(
            &source,
            policy(&["spiffe://example.org/agents/support/*"]),
            &echo_svid,
            Resumable::No,
        )
        .await;
        assert!(matches!(
            echo.verdict(&outsider),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure
            ))
        ));
        let refused = attempt(&client_config(&source, &outsider, false), echo.addr).await;
        assert_refused_with(&refused, AlertDescription::AccessDenied);
    });
}

#[test]
fn the_policy_segment_boundary_holds_end_to_end() {
    let ca = Ca::start();
    let work = tempfile::tempdir().unwrap();
    let echo_svid = ca.issue_with(json!({"spiffe_id": ECHO_ID, "ip_addresses": [ECHO_IP]}));
    let echo = EchoProcess::start(
        &ca,
        &echo_svid,
        &["spiffe://example.org/agents/support/*"],
        ECHO_IP,
        work.path(),
    );
    let inside = [
        ca.issue("spiffe://example.org/agents/support/7"),
        ca.issue("spiffe://example.org/agents/support/eu/7"),
    ];
    let outside = [
        ca.issue("spiffe://example.org/agents/support"),
        ca.issue("spiffe://example.org/agents/support-evil"),
        ca.issue("spiffe://example.org/agents/support-evil/7"),
    ];
    run(async {
        let source = ca.live_source().await;
        for svid in &inside {
            let accepted = attempt(&client_config(&source, svid, false), echo.addr).await;
            // The example answers with the SPIFFE ID and a newline.
            assert_accepted(&accepted, &format!("{}\n", svid.spiffe_id));
        }
        for svid in &outside {
            let refused = attempt(&client_config(&source, svid, false), echo.addr).await;
            assert_refused_with(&refused, AlertDescription::AccessDenied);
        }
    });
}
