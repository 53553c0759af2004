#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `sigil-verifier` end to end: a real `sigil serve`, a server on loopback
//! that verifies its callers with a LIVE trust source following that CA
//! (`LiveSource::from_fingerprint`), and real clients (rustls, curl, the
//! crate's examples) presenting SVIDs the CA issued — or deliberately bad
//! certificates signed with the CA's real issuing key.
//!
//! Refusals are observed where they are observable: on the client side as
//! the TLS alert the server sent (under TLS 1.3 it arrives on the client's
//! first read, so every attempt makes a request), and on the server side by
//! calling `SpiffeClientVerifier::verify` on the same chain.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, ClientConfig, HandshakeKind, ServerConfig};
use serde_json::{Value, json};
use sigil_verifier::{
    Credentials, LiveSource, PeerIdentity, Policy, SpiffeClientVerifier, SpiffeServerVerifier,
    TrustSource,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The SPIFFE ID of every echo server in these tests.
const ECHO_ID: &str = "spiffe://example.org/tools/echo";
/// How long any single network step may take before the test gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a revocation may take to reach a live trust source.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// The CA and the SVIDs it issues (or that are forged with its issuing key)
// ---------------------------------------------------------------------------

/// A running CA with its data dir.
struct Ca {
    dir: DataDir,
    server: Server,
}

impl Ca {
    fn start() -> Self {
        let dir = DataDir::init();
        let server = dir.start();
        Self { dir, server }
    }

    /// A second, independent CA for `trust_domain` (`sigil init` with its
    /// own root and issuing keys).
    fn start_for(trust_domain: &str) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("data");
        let output = sigil(&[
            "init",
            "--trust-domain",
            trust_domain,
            "--data-dir",
            path.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "init: {}", stderr(&output));
        let dir = DataDir {
            fingerprint: stdout(&output).trim().to_owned(),
            temp,
            path,
        };
        let server = dir.start();
        Self { dir, server }
    }

    /// Issues an SVID through a join token created with `token` (the body of
    /// `POST /admin/v1/join-tokens`). Synchronous: call it outside the
    /// async part of a test.
    fn issue_with(&self, token: Value) -> Svid {
        let token = self.server.token_with(token);
        let (key, csr) = p256_csr();
        let response = self.server.redeem(&token, &csr);
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        let body: Value = response.json().unwrap();
        Svid {
            spiffe_id: body["spiffe_id"].as_str().unwrap().to_owned(),
            serial: body["serial"].as_str().unwrap().to_owned(),
            chain_pem: body["cert_chain_pem"].as_str().unwrap().to_owned(),
            key_pem: key.serialize_pem(),
        }
    }

    fn issue(&self, spiffe_id: &str) -> Svid {
        self.issue_with(json!({"spiffe_id": spiffe_id}))
    }

    /// Signs `params` for a fresh P-256 key with the CA's real issuing CA
    /// (`ca/issuing.pem` + `ca/issuing.key`); the chain is that leaf and the
    /// issuing CA, as the CA itself would hand it out.
    fn forge(&self, params: &CertificateParams) -> Svid {
        let issuing_pem = self.dir.read("ca/issuing.pem");
        let issuer = Issuer::from_ca_cert_pem(
            &issuing_pem,
            KeyPair::from_pem(&self.dir.read("ca/issuing.key")).unwrap(),
        )
        .unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let spiffe_id = params
            .subject_alt_names
            .iter()
            .find_map(|san| match san {
                SanType::URI(uri) => Some(uri.as_str().to_owned()),
                _ => None,
            })
            .unwrap_or_default();
        let serial = params
            .serial_number
            .as_ref()
            .map(|s| hex::encode(s.to_bytes()))
            .unwrap_or_default();
        Svid {
            spiffe_id,
            serial,
            chain_pem: format!("{}{}", cert.pem(), issuing_pem),
            key_pem: key.serialize_pem(),
        }
    }

    /// The issuing CA's own certificate and key, presented as if they were
    /// a workload's SVID.
    fn issuing_ca_as_svid(&self) -> Svid {
        Svid {
            spiffe_id: String::new(),
            serial: String::new(),
            chain_pem: self.dir.read("ca/issuing.pem"),
            key_pem: self.dir.read("ca/issuing.key"),
        }
    }

    /// A trust source that follows this CA, bootstrapped from the root
    /// fingerprint `sigil init` printed.
    async fn live_source(&self) -> TrustSource {
        LiveSource::from_fingerprint(&self.server.url, &self.dir.fingerprint)
            .unwrap()
            .start()
            .await
            .unwrap()
    }

    /// Revokes one certificate through the admin API.
    async fn revoke(&self, serial: &str) {
        let response = self
            .server
            .admin()
            .post_json(
                "/admin/v1/revocations",
                &json!({"serial": serial, "reason": "keyCompromise"}),
            )
            .await
            .unwrap();
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        let body: Value = response.json().unwrap();
        assert_eq!(body["revoked"], json!([serial]));
    }
}

/// A chain (leaf first) and its key, PEM.
#[derive(Clone)]
struct Svid {
    spiffe_id: String,
    serial: String,
    chain_pem: String,
    key_pem: String,
}

impl Svid {
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        chain_der(&self.chain_pem)
            .into_iter()
            .map(CertificateDer::from)
            .collect()
    }

    fn credentials(&self) -> Credentials {
        Credentials::from_pem(self.chain_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        let key = KeyPair::from_pem(&self.key_pem).unwrap();
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
    }

    /// Who this SVID says its holder is, as a server would record it.
    fn identity(&self) -> PeerIdentity {
        PeerIdentity::from_verified_chain(&self.chain()).unwrap()
    }

    /// Writes `NAME.pem` and `NAME.key` (mode 0600) into `dir`.
    fn write_files(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.chain_pem).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .unwrap();
        std::io::Write::write_all(&mut file, self.key_pem.as_bytes()).unwrap();
        (cert, key)
    }
}

/// 16 random bytes, first byte in 0x01..=0x7f, as the CA draws serials.
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}

/// The parameters of a well-formed X509-SVID for these URI SANs, valid
/// from a minute ago for an hour; tests then break one thing.
fn leaf_params(uris: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = uris
        .iter()
        .map(|uri| SanType::URI(Ia5String::try_from(*uri).unwrap()))
        .collect();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::hours(1);
    params
}

// ---------------------------------------------------------------------------
// Servers: in-process (sigil_verifier::axum::serve) and the example binary
// ---------------------------------------------------------------------------

/// How an in-process echo server configures TLS.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resumable {
    /// `sigil_verifier::server_config`: no tickets, no session cache.
    No,
    /// rustls's defaults: a session cache and TLS 1.3 tickets.
    Yes,
}

/// An in-process mTLS echo server: `sigil_verifier::axum::serve` with a
/// `SpiffeClientVerifier` over a live source; answers with the caller's
/// SPIFFE ID.
struct Echo {
    addr: SocketAddr,
    verifier: Arc<SpiffeClientVerifier>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Echo {
    async fn start(source: &TrustSource, policy: Policy, own: &Svid, resumable: Resumable) -> Self {
        let verifier = SpiffeClientVerifier::builder(source.clone(), policy).client_verifier();
        let config = match resumable {
            Resumable::No => {
                sigil_verifier::server_config(verifier.clone(), own.credentials()).unwrap()
            }
            Resumable::Yes => {
                let config = ServerConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(verifier.clone())
                .with_single_cert(own.chain(), own.private_key())
                .unwrap();
                assert!(config.send_tls13_tickets > 0, "tickets are on by default");
                config
            }
        };
        let app = axum::Router::new()
            .fallback(|peer: PeerIdentity| async move { peer.spiffe_id().to_string() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(sigil_verifier::axum::serve(
            listener,
            Arc::new(config),
            source.clone(),
            app,
        ));
        Self {
            addr,
            verifier,
            task,
        }
    }

    /// What the server-side verifier says about this chain right now.
    fn verdict(&self, svid: &Svid) -> Result<PeerIdentity, rustls::Error> {
        let chain = svid.chain();
        self.verifier
            .verify(&chain[0], &chain[1..], UnixTime::now())
    }
}

/// The path of a binary built from crates/sigil-verifier/examples.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p sigil-verifier \
         --examples`) so that the sigil-verifier examples are built",
        path.display()
    );
    path
}

/// The `echo_server` example running as a process; killed on drop.
struct EchoProcess {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl EchoProcess {
    /// Starts the example with `--ca`, `--fingerprint`, `--cert`, `--key`
    /// from `ca` and `own`, the given `--allow` patterns, listening on
    /// `listen_ip`:0, and waits for its `listening on` line.
    fn start(ca: &Ca, own: &Svid, allow: &[&str], listen_ip: &str, work: &Path) -> Self {
        let (cert, key) = own.write_files(work, "echo");
        let log = work.join("echo_server.log");
        let mut command = Command::new(example_binary("echo_server"));
        command
            .arg("--ca")
            .arg(&ca.server.url)
            .arg("--fingerprint")
            .arg(&ca.dir.fingerprint)
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .arg("--listen")
            .arg(format!("{listen_ip}:0"));
        for pattern in allow {
            command.arg("--allow").arg(pattern);
        }
        let mut child = command
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawning echo_server");
        let out = child.stdout.take().unwrap();
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut process = Self {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        process.addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match received.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening on https://") {
                        break url.trim().parse().unwrap();
                    }
                }
                Err(_) => panic!(
                    "echo_server printed no `listening on` line:\n{}",
                    process.log()
                ),
            }
        };
        process
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for EchoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- echo_server log ---\n{}", self.log());
        }
    }
}

// ---------------------------------------------------------------------------
// A rustls client speaking just enough HTTP/1.1
// ---------------------------------------------------------------------------

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A client configuration presenting `svid`, verifying the server by its
/// SPIFFE ID ([`ECHO_ID`]) against `source`; resumption as `resumption`
/// says (`sigil_verifier::client_config` turns it off).
fn client_config(source: &TrustSource, svid: &Svid, resumption: bool) -> Arc<ClientConfig> {
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

async fn connect(config: &Arc<ClientConfig>, addr: SocketAddr) -> std::io::Result<Tls> {
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
async fn get(tls: &mut Tls) -> std::io::Result<(u16, String)> {
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
struct Attempt {
    handshake: Option<HandshakeKind>,
    result: std::io::Result<(u16, String)>,
}

async fn attempt(config: &Arc<ClientConfig>, addr: SocketAddr) -> Attempt {
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

fn assert_accepted(attempt: &Attempt, spiffe_id: &str) {
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
fn assert_refused_with(attempt: &Attempt, alert: AlertDescription) {
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
fn refusal_alert(attempt: &Attempt) -> AlertDescription {
    match &attempt.result {
        Ok(answer) => panic!("accepted ({answer:?}), expected a refusal"),
        Err(error) => match rustls_error(error) {
            Some(rustls::Error::AlertReceived(received)) => *received,
            other => panic!("expected a TLS alert, got {error} / {other:?}"),
        },
    }
}

fn svid_rule_error(verdict: Result<PeerIdentity, rustls::Error>, says: &str) {
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

async fn wait_until_revoked(source: &TrustSource, svid: &Svid) {
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
fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn policy(patterns: &[&str]) -> Policy {
    patterns.iter().fold(Policy::deny_all(), |policy, pattern| {
        policy.allow(pattern).unwrap()
    })
}

// ---------------------------------------------------------------------------
// 1–2: policy
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// 3: revocation — new handshakes, resumed sessions, open connections
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// 4–8: certificates that must never get in
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// 9–10: the echo_server example, curl and the client example
// ---------------------------------------------------------------------------

/// The loopback address the echo server binary listens on, and that its
/// SVID binds as IP SAN. Not 127.0.0.1: the CA refuses to bind any of its
/// own names (localhost, 127.0.0.1, its listen address) to a workload, so
/// that no workload can pass for the CA.
const ECHO_IP: &str = "127.0.0.2";

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

fn curl(bundle: &Path, cert: &Path, key: &Path, url: &str, extra: &[&str]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "5"])
        .arg("--cacert")
        .arg(bundle)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .args(["--write-out", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl is installed")
}

/// (status, body) from curl's output with `--write-out "\n%{http_code}"`.
fn curl_answer(output: &Output) -> (String, String) {
    let text = stdout(output);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_owned(), body.to_owned())
}

fn example_client(ca: &Ca, cert: &Path, key: &Path, url: &str) -> Output {
    Command::new(example_binary("client"))
        .arg("--url")
        .arg(url)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg("--ca")
        .arg(&ca.server.url)
        .arg("--fingerprint")
        .arg(&ca.dir.fingerprint)
        .arg("--server-id")
        .arg(ECHO_ID)
        .output()
        .expect("running the client example")
}

#[test]
fn curl_and_the_client_example_are_served_until_revoked_by_the_echo_server_example() {
    let ca = Ca::start();
    let work = tempfile::tempdir().unwrap();
    let echo_svid = ca.issue_with(json!({"spiffe_id": ECHO_ID, "ip_addresses": [ECHO_IP]}));
    assert!(
        sans_of(&echo_svid.chain()[0]).contains(&"IPAddress([127, 0, 0, 2])".to_owned()),
        "{:?}",
        sans_of(&echo_svid.chain()[0])
    );
    let echo = EchoProcess::start(
        &ca,
        &echo_svid,
        &["spiffe://example.org/agents/*"],
        ECHO_IP,
        work.path(),
    );
    let url = format!("https://{}/", echo.addr);
    let agent = ca.issue("spiffe://example.org/agents/curl");
    let (cert, key) = agent.write_files(work.path(), "agent");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let bundle = ca.dir.file("bundle.pem");

    // curl verifies the echo server by IP against the CA's bundle, and the
    // echo server lets the agent in.
    let served = curl(&bundle, &cert, &key, &url, &[]);
    assert!(served.status.success(), "curl: {}", stderr(&served));
    assert_eq!(
        curl_answer(&served),
        ("200".to_owned(), format!("{}\n", agent.spiffe_id))
    );
    // So does the client example, which checks the server by SPIFFE ID.
    let client = example_client(&ca, &cert, &key, &url);
    assert!(client.status.success(), "client: {}", stderr(&client));
    assert_eq!(stdout(&client), format!("{}\n", agent.spiffe_id));

    // Revoke the agent; the echo server's live source picks it up within
    // moments, and from then on every new handshake fails.
    run(ca.revoke(&agent.serial));
    let deadline = Instant::now() + PROPAGATION_TIMEOUT;
    let refused = loop {
        let output = curl(&bundle, &cert, &key, &url, &[]);
        if !output.status.success() {
            break output;
        }
        assert!(
            Instant::now() < deadline,
            "curl was still served {:?} after revocation",
            curl_answer(&output)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Under TLS 1.3 curl's handshake completes before the server has
    // judged its certificate; the server then sends its alert and closes,
    // and curl reports whichever it meets first (a receive failure with
    // the alert, or a send failure on the reset connection).
    assert_ne!(curl_answer(&refused).0, "200", "{}", stderr(&refused));
    // Under TLS 1.2 the server judges the client certificate inside the
    // handshake, so curl always reads the alert.
    let refused = curl(&bundle, &cert, &key, &url, &["--tls-max", "1.2"]);
    let message = stderr(&refused);
    assert!(
        !refused.status.success() && message.contains("alert certificate revoked"),
        "curl over TLS 1.2 was not refused with certificate_revoked (exit {:?}): {message}",
        refused.status.code()
    );

    // The client example fails too, and names the alert whether hyper sees
    // it on the request or the connection task sees it first.
    let client = example_client(&ca, &cert, &key, &url);
    let message = stderr(&client);
    assert!(
        !client.status.success(),
        "the revoked client example was served: {}",
        stdout(&client)
    );
    assert!(
        !stdout(&client).contains(&agent.spiffe_id),
        "{}",
        stdout(&client)
    );
    assert!(
        message.contains("CertificateRevoked"),
        "{message}"
    );
}
