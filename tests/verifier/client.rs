//! A rustls client speaking just enough HTTP/1.1, the assertions on what it
//! gets, and the waits the tests share.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError, ClientConfig, HandshakeKind};
use sigil_verifier::{PeerIdentity, Policy, SpiffeServerVerifier, TrustSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::ca::Svid;
use crate::echo::ECHO_ID;

/// How long any single network step may take before the test gives up.
pub(crate) const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a revocation may take to reach a live trust source.
pub(crate) const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(5);

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A client configuration presenting `svid`, verifying the server by its
/// SPIFFE ID ([`ECHO_ID`]) against `source`; resumption as `resumption`
/// says (`sigil_verifier::client_config` turns it off).
pub(crate) fn client_config(
    source: &TrustSource,
    svid: &Svid,
    resumption: bool,
) -> Arc<ClientConfig> {
    let verifier =
        SpiffeServerVerifier::builder(source.clone(), Policy::deny_all().allow(ECHO_ID).unwrap())
            .server_verifier();
    let mut config = sigil_verifier::client_config(verifier, Some(svid.credentials())).unwrap();
    if resumption {
        config.resumption = Resumption::default();
    }
    Arc::new(config)
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"))
}

pub(crate) async fn connect(config: &Arc<ClientConfig>, addr: SocketAddr) -> std::io::Result<Tls> {
    let tcp = tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out("TCP connect"))??;
    let name = ServerName::try_from("echo.test").unwrap();
    tokio::time::timeout(
        STEP_TIMEOUT,
        tokio_rustls::TlsConnector::from(Arc::clone(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| timed_out("TLS handshake"))?
}

/// `GET /` on an open connection (kept alive); the status and body.
pub(crate) async fn get(tls: &mut Tls) -> std::io::Result<(u16, String)> {
    tokio::time::timeout(STEP_TIMEOUT, get_inner(tls))
        .await
        .map_err(|_| timed_out("request"))?
}

async fn get_inner(tls: &mut Tls) -> std::io::Result<(u16, String)> {
    tls.write_all(b"GET / HTTP/1.1\r\nhost: echo.test\r\n\r\n")
        .await?;
    tls.flush().await?;
    let mut received = Vec::new();
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).into_owned();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("not an HTTP response: {head}"));
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or_else(|| panic!("no content-length: {head}"));
            let body_start = end + 4;
            if received.len() >= body_start + length {
                let body = &received[body_start..body_start + length];
                return Ok((status, String::from_utf8_lossy(body).into_owned()));
            }
        }
        let mut chunk = [0u8; 4096];
        let read = tls.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection without a (complete) response",
            ));
        }
        received.extend_from_slice(&chunk[..read]);
    }
}

/// One connection and one request: how the handshake went (if it
/// finished) and what the request got.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) handshake: Option<HandshakeKind>,
    pub(crate) result: std::io::Result<(u16, String)>,
}

pub(crate) async fn attempt(config: &Arc<ClientConfig>, addr: SocketAddr) -> Attempt {
    match connect(config, addr).await {
        Ok(mut tls) => {
            let handshake = tls.get_ref().1.handshake_kind();
            let result = get(&mut tls).await;
            Attempt { handshake, result }
        }
        Err(error) => Attempt {
            handshake: None,
            result: Err(error),
        },
    }
}

/// The rustls error inside an io error, if any.
fn rustls_error(error: &std::io::Error) -> Option<&rustls::Error> {
    error.get_ref()?.downcast_ref::<rustls::Error>()
}

pub(crate) fn assert_accepted(attempt: &Attempt, spiffe_id: &str) {
    match &attempt.result {
        Ok((status, body)) => {
            assert_eq!(*status, 200, "body: {body}");
            assert_eq!(body, spiffe_id);
        }
        Err(error) => panic!(
            "{spiffe_id} was refused: {error} ({:?})",
            rustls_error(error)
        ),
    }
}

/// Asserts that the server refused the client with this TLS alert.
pub(crate) fn assert_refused_with(attempt: &Attempt, alert: AlertDescription) {
    match &attempt.result {
        Ok(answer) => panic!("accepted ({answer:?}), expected the alert {alert:?}"),
        Err(error) => match rustls_error(error) {
            Some(rustls::Error::AlertReceived(received)) => assert_eq!(
                *received, alert,
                "the server refused with alert {received:?}, expected {alert:?}"
            ),
            other => panic!("expected the alert {alert:?}, got {error} / {other:?}"),
        },
    }
}

/// The alert the server refused the client with (panics if accepted or if
/// the failure was not an alert).
pub(crate) fn refusal_alert(attempt: &Attempt) -> AlertDescription {
    match &attempt.result {
        Ok(answer) => panic!("accepted ({answer:?}), expected a refusal"),
        Err(error) => match rustls_error(error) {
            Some(rustls::Error::AlertReceived(received)) => *received,
            other => panic!("expected a TLS alert, got {error} / {other:?}"),
        },
    }
}

pub(crate) fn svid_rule_error(verdict: Result<PeerIdentity, rustls::Error>, says: &str) {
    match verdict {
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(error))) => {
            let message = error.to_string();
            assert!(message.contains(says), "{message:?} does not say {says:?}");
        }
        other => panic!("expected InvalidCertificate(Other(..{says}..)), got {other:?}"),
    }
}

/// Polls `done` every few milliseconds until it holds; panics after
/// `timeout`.
async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub(crate) async fn wait_until_revoked(source: &TrustSource, svid: &Svid) {
    let identity = svid.identity();
    wait_until(
        "the live source to hold the CRL revoking the SVID",
        PROPAGATION_TIMEOUT,
        || source.is_revoked(&identity),
    )
    .await;
}

/// Runs the async part of a test on a multi-threaded runtime (the live
/// source refreshes in the background while the test runs).
pub(crate) fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

pub(crate) fn policy(patterns: &[&str]) -> Policy {
    patterns.iter().fold(Policy::deny_all(), |policy, pattern| {
        policy.allow(pattern).unwrap()
    })
}
