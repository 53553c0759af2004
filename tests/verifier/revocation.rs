//! 3: revocation — new handshakes, resumed sessions, open connections.

use rustls::{AlertDescription, CertificateError, HandshakeKind};
use tokio::io::AsyncReadExt;

use crate::ca::Ca;
use crate::client::{
    STEP_TIMEOUT, assert_accepted, assert_refused_with, attempt, client_config, connect, get,
    policy, run, wait_until_revoked,
};
use crate::echo::{ECHO_ID, Echo, Resumable};

#[test]
fn a_revoked_caller_is_refused_on_its_next_handshake_with_certificate_revoked() {
    let ca = Ca::start();
    let echo_svid = ca.issue(ECHO_ID);
    let caller = ca.issue("spiffe://example.org/agents/support/7");
    let other = ca.issue("spiffe://example.org/agents/support/8");
    run(async {
        let source = ca.live_source().await;
        let echo = Echo::start(
            &source,
            policy(&["spiffe://example.org/agents/*"]),
            &echo_svid,
            Resumable::No,
        )
        .await;
        // The client would resume if the server let it: the server's
        // configuration (sigil_verifier::server_config) is what forbids it.
        let config = client_config(&source, &caller, true);
        let before = attempt(&config, echo.addr).await;
        assert_accepted(&before, &caller.spiffe_id);
        assert_eq!(before.handshake, Some(HandshakeKind::Full));
        let again = attempt(&config, echo.addr).await;
        assert_accepted(&again, &caller.spiffe_id);
        assert_eq!(
            again.handshake,
            Some(HandshakeKind::Full),
            "server_config must not let a session resume"
        );

        ca.revoke(&caller.serial).await;
        wait_until_revoked(&source, &caller).await;

        assert!(matches!(
            echo.verdict(&caller),
            Err(rustls::Error::InvalidCertificate(CertificateError::Revoked))
        ));
        let after = attempt(&config, echo.addr).await;
        assert_eq!(after.handshake, Some(HandshakeKind::Full));
        assert_refused_with(&after, AlertDescription::CertificateRevoked);
        // Another caller of the same CA is still let in.
        assert_accepted(
            &attempt(&client_config(&source, &other, false), echo.addr).await,
            &other.spiffe_id,
        );
    });
}

#[test]
fn a_revoked_caller_cannot_come_back_on_a_resumed_tls_session() {
    let ca = Ca::start();
    let echo_svid = ca.issue(ECHO_ID);
    let caller = ca.issue("spiffe://example.org/agents/support/7");
    run(async {
        let source = ca.live_source().await;
        // A server that allows resumption (rustls's default session cache
        // and TLS 1.3 tickets), served by sigil_verifier::axum::serve.
        let echo = Echo::start(
            &source,
            policy(&["spiffe://example.org/agents/*"]),
            &echo_svid,
            Resumable::Yes,
        )
        .await;
        let config = client_config(&source, &caller, true);
        let first = attempt(&config, echo.addr).await;
        assert_accepted(&first, &caller.spiffe_id);
        assert_eq!(first.handshake, Some(HandshakeKind::Full));
        // Resumption really works on this server: the next connection of
        // the (still valid) caller resumes and is served.
        let resumed = attempt(&config, echo.addr).await;
        assert_eq!(resumed.handshake, Some(HandshakeKind::Resumed));
        assert_accepted(&resumed, &caller.spiffe_id);

        ca.revoke(&caller.serial).await;
        wait_until_revoked(&source, &caller).await;

        // The client offers its ticket and the server resumes at the TLS
        // level (skipping client verification)...
        let after = attempt(&config, echo.addr).await;
        assert_eq!(
            after.handshake,
            Some(HandshakeKind::Resumed),
            "the client should have resumed its session: {after:?}"
        );
        // ...but axum::serve re-checks the identity and drops the
        // connection: the request gets no answer.
        assert!(
            after.result.is_err(),
            "a revoked caller was served on a resumed session: {:?}",
            after.result
        );
    });
}

#[test]
fn an_open_keep_alive_connection_of_a_revoked_caller_is_closed() {
    let ca = Ca::start();
    let echo_svid = ca.issue(ECHO_ID);
    let caller = ca.issue("spiffe://example.org/agents/support/7");
    let bystander = ca.issue("spiffe://example.org/agents/support/8");
    run(async {
        let source = ca.live_source().await;
        let echo = Echo::start(
            &source,
            policy(&["spiffe://example.org/agents/*"]),
            &echo_svid,
            Resumable::No,
        )
        .await;
        let mut open = connect(&client_config(&source, &caller, false), echo.addr)
            .await
            .unwrap();
        assert_eq!(
            get(&mut open).await.unwrap(),
            (200, caller.spiffe_id.clone())
        );
        assert_eq!(
            get(&mut open).await.unwrap(),
            (200, caller.spiffe_id.clone())
        );
        let mut other = connect(&client_config(&source, &bystander, false), echo.addr)
            .await
            .unwrap();
        assert_eq!(get(&mut other).await.unwrap().0, 200);

        ca.revoke(&caller.serial).await;
        wait_until_revoked(&source, &caller).await;

        // The server closes the revoked peer's connection on its own (no
        // request needed): the next read ends.
        let mut buffer = [0u8; 64];
        let closed = tokio::time::timeout(STEP_TIMEOUT, open.read(&mut buffer))
            .await
            .expect("the revoked peer's open connection was not closed");
        assert!(
            matches!(closed, Ok(0) | Err(_)),
            "unexpected data on a connection that should be closed: {closed:?}"
        );
        // A further request on it fails.
        let second = get(&mut open).await;
        assert!(second.is_err(), "served after revocation: {second:?}");
        // Another peer's open connection is untouched.
        assert_eq!(
            get(&mut other).await.unwrap(),
            (200, bystander.spiffe_id.clone())
        );
    });
}
