//! Revocation propagation: how long after an admin revokes an SVID does a
//! server that embeds `sigil-verifier` (with a live trust source following
//! the CA) refuse that SVID on a new connection?
//!
//! Run with: cargo bench -p sigil --bench revocation_propagation
//!
//! Set-up: a real `sigil serve` (fresh data dir, 127.0.0.1:0, normal mode,
//! started through the end-to-end test helpers), and in this process an
//! echo server (axum, answering 200 with the caller's SPIFFE ID) served by
//! `sigil_verifier::axum::serve` over a `LiveSource` pinned to the CA's
//! root fingerprint.
//!
//! Each trial:
//! 1. obtains a fresh client SVID (one multi-use join token, a new P-256
//!    key and CSR per trial);
//! 2. checks that one request through a full mTLS handshake is answered
//!    200 with the client's SPIFFE ID (its duration is the cost of one
//!    attempt, which bounds the resolution of the measurement);
//! 3. revokes the SVID by serial through `POST /admin/v1/revocations`;
//!    **t0** = the instant that call returns (200 read in full);
//! 4. opens new connections back to back (TCP connect, full TLS handshake,
//!    one request, read the answer; no sleep) until one is refused;
//!    **t1** = the instant the refusal is observed by the client. Under
//!    TLS 1.3 the server's `certificate_revoked` alert arrives on the
//!    client's first read, after its side of the handshake has completed,
//!    so every attempt sends a request and reads.
//!
//! The propagation time is t1 − t0. A trial that is not refused within
//! 10 s counts as a failure. One warm-up trial runs first and is not
//! counted. Percentiles use the nearest-rank method; with 50 trials p99 is
//! the largest value.
// A benchmark: any set-up failure should abort loudly, so unwrap/expect are
// the right tool here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{DataDir, Server, p256_csr};
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use sigil_verifier::{
    Credentials, LiveSource, PeerIdentity, Policy, SpiffeClientVerifier, SpiffeServerVerifier,
    TrustSource,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

/// Measured trials.
const TRIALS: usize = 50;
/// A trial not refused within this long after t0 is a failure.
const CAP: Duration = Duration::from_secs(10);
/// One connection attempt may take at most this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// The echo server's own identity.
const ECHO_ID: &str = "spiffe://example.org/tools/echo";
/// The identity every client SVID carries.
const AGENT_ID: &str = "spiffe://example.org/agents/bench";

/// What one connection attempt came to.
enum Outcome {
    /// 200 with this body.
    Accepted(String),
    /// The server refused the caller; how.
    Refused(String),
    /// Anything else (not counted as a refusal; polling goes on).
    Other(String),
}

/// An issued SVID.
struct Svid {
    chain_pem: String,
    key_pem: String,
    serial: String,
}

/// Redeems `token` for a fresh SVID (new P-256 key and CSR).
fn issue(server: &Server, token: &str) -> Svid {
    let (key, csr) = p256_csr();
    let response = server.redeem(token, &csr);
    assert_eq!(
        response.status,
        200,
        "issuing an SVID: {}",
        String::from_utf8_lossy(&response.body)
    );
    let body: Value = response.json().unwrap();
    Svid {
        chain_pem: body["cert_chain_pem"].as_str().unwrap().to_owned(),
        key_pem: key.serialize_pem(),
        serial: body["serial"].as_str().unwrap().to_owned(),
    }
}

/// Classifies a failed read or handshake.
fn classify(error: &std::io::Error, received: &[u8]) -> Outcome {
    if let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return match tls {
            rustls::Error::AlertReceived(alert) => Outcome::Refused(format!("TLS alert {alert:?}")),
            other => Outcome::Other(format!("TLS error: {other}")),
        };
    }
    if error.kind() == std::io::ErrorKind::UnexpectedEof && received.is_empty() {
        // The connection was dropped after the handshake without an answer:
        // `axum::serve`'s post-handshake revocation check does that.
        return Outcome::Refused("closed after the handshake, no answer".to_owned());
    }
    Outcome::Other(format!("I/O error ({:?}): {error}", error.kind()))
}

/// One new connection: TCP connect, full TLS handshake, one HTTP/1.1
/// request, read the whole answer.
async fn attempt(connector: &TlsConnector, addr: SocketAddr) -> Outcome {
    let exchange = async {
        let tcp = match TcpStream::connect(addr).await {
            Ok(tcp) => tcp,
            Err(error) => return Outcome::Other(format!("TCP connect: {error}")),
        };
        let _ = tcp.set_nodelay(true);
        let server_name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
        let mut tls = match connector.connect(server_name, tcp).await {
            Ok(tls) => tls,
            Err(error) => return classify(&error, &[]),
        };
        if let Err(error) = tls
            .write_all(b"GET / HTTP/1.1\r\nhost: echo\r\nconnection: close\r\n\r\n")
            .await
        {
            return classify(&error, &[]);
        }
        let mut received = Vec::new();
        if let Err(error) = tls.read_to_end(&mut received).await {
            // A server that closes without close_notify after a complete
            // answer is still an answer.
            if received.is_empty() || error.kind() != std::io::ErrorKind::UnexpectedEof {
                return classify(&error, &received);
            }
        }
        let text = String::from_utf8_lossy(&received);
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            return Outcome::Other(format!("incomplete answer: {text:?}"));
        };
        if head.starts_with("HTTP/1.1 200 ") {
            Outcome::Accepted(body.to_owned())
        } else if received.is_empty() {
            Outcome::Refused("closed after the handshake, no answer".to_owned())
        } else {
            Outcome::Other(format!(
                "answer {:?}",
                head.lines().next().unwrap_or_default()
            ))
        }
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, exchange).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Other(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
    }
}

/// What one trial measured.
struct Trial {
    /// t1 − t0, or `None` if the cap was hit.
    propagation: Option<Duration>,
    /// The successful attempt before the revocation.
    accepted_attempt: Duration,
    /// The admin revoke call, request to answer.
    revoke_call: Duration,
    /// Attempts after t0 that were still accepted.
    accepted_after_t0: usize,
    /// Attempts after t0 that ended otherwise (neither accepted nor refused).
    other_after_t0: usize,
    /// How the refusal showed.
    refusal: String,
    /// When the live source's material changed, relative to t0 (ms, may be
    /// negative: the CRL may land before the admin call returns).
    crl_landed_ms: Option<f64>,
}

/// Everything a trial needs.
struct Bench {
    server: Server,
    admin: sigil::client::CaClient,
    runtime: tokio::runtime::Runtime,
    echo_addr: SocketAddr,
    server_verifier: Arc<SpiffeServerVerifier>,
    agent_token: String,
    /// Instants at which the echo server's trust source changed.
    ticks: Arc<Mutex<Vec<Instant>>>,
}

impl Bench {
    fn connector(&self, svid: &Svid) -> TlsConnector {
        let credentials =
            Credentials::from_pem(svid.chain_pem.as_bytes(), svid.key_pem.as_bytes()).unwrap();
        let config =
            sigil_verifier::client_config(self.server_verifier.clone(), Some(credentials)).unwrap();
        TlsConnector::from(Arc::new(config))
    }

    fn trial(&self) -> Trial {
        // Issued outside the runtime: the helpers run their own.
        let svid = issue(&self.server, &self.agent_token);
        let connector = self.connector(&svid);
        self.runtime.block_on(async {
            let started = Instant::now();
            let first = attempt(&connector, self.echo_addr).await;
            let accepted_attempt = started.elapsed();
            match first {
                Outcome::Accepted(body) => assert_eq!(body, AGENT_ID, "the echo answer"),
                Outcome::Refused(how) | Outcome::Other(how) => {
                    panic!("a fresh SVID was not accepted: {how}")
                }
            }

            let requested = Instant::now();
            let answer = self
                .admin
                .post_json("/admin/v1/revocations", &json!({"serial": svid.serial}))
                .await
                .unwrap();
            let t0 = Instant::now();
            assert_eq!(
                answer.status,
                200,
                "revoking: {}",
                String::from_utf8_lossy(&answer.body)
            );
            let revoked: Value = answer.json().unwrap();
            assert_eq!(revoked["revoked"], json!([svid.serial]));

            let mut accepted_after_t0 = 0;
            let mut other_after_t0 = 0;
            let mut last_other = String::new();
            let (propagation, refusal) = loop {
                if t0.elapsed() >= CAP {
                    break (
                        None,
                        format!("not refused within {CAP:?}; last: {last_other}"),
                    );
                }
                match attempt(&connector, self.echo_addr).await {
                    Outcome::Refused(how) => break (Some(t0.elapsed()), how),
                    Outcome::Accepted(_) => accepted_after_t0 += 1,
                    Outcome::Other(what) => {
                        other_after_t0 += 1;
                        last_other = what;
                    }
                }
            };
            let crl_landed_ms = self
                .ticks
                .lock()
                .unwrap()
                .iter()
                .find(|tick| **tick >= requested)
                .map(|tick| signed_ms(*tick, t0));
            Trial {
                propagation,
                accepted_attempt,
                revoke_call: t0 - requested,
                accepted_after_t0,
                other_after_t0,
                refusal,
                crl_landed_ms,
            }
        })
    }
}

/// `at − origin` in milliseconds, negative if `at` came first.
fn signed_ms(at: Instant, origin: Instant) -> f64 {
    match at.checked_duration_since(origin) {
        Some(after) => ms(after),
        None => -ms(origin - at),
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// min, p50, p99, max, mean of `values` (which must not be empty).
fn summary(values: &[f64]) -> [f64; 5] {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
    [
        sorted[0],
        percentile(&sorted, 50.0),
        percentile(&sorted, 99.0),
        sorted[sorted.len() - 1],
        mean,
    ]
}

fn row(name: &str, values: &[f64]) {
    if values.is_empty() {
        println!(
            "| {name:<44} | {:>8} | {:>8} | {:>8} | {:>8} | {:>8} |",
            "-", "-", "-", "-", "-"
        );
        return;
    }
    let [min, p50, p99, max, mean] = summary(values);
    println!("| {name:<44} | {min:>8.2} | {p50:>8.2} | {p99:>8.2} | {max:>8.2} | {mean:>8.2} |");
}

fn main() {
    let started = Instant::now();
    let dir = DataDir::init();
    let fingerprint = dir
        .fingerprint
        .split_whitespace()
        .find(|word| word.starts_with("sha256:"))
        .expect("sigil init printed the root fingerprint")
        .to_owned();
    let server = dir.start();
    let admin = server.admin();

    let echo = issue(&server, &server.token(ECHO_ID));
    let agent_token = server.token_with(json!({
        "spiffe_id": AGENT_ID,
        "uses": TRIALS + 2,
        "ttl_seconds": 3600,
    }));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ticks = Arc::new(Mutex::new(Vec::new()));
    let (echo_addr, source) = runtime.block_on(async {
        let source = LiveSource::from_fingerprint(&server.url, &fingerprint)
            .unwrap()
            .start()
            .await
            .expect("the live trust source starts");
        let policy = Policy::deny_all().allow("spiffe://example.org/*").unwrap();
        let verifier = SpiffeClientVerifier::builder(source.clone(), policy).client_verifier();
        let credentials =
            Credentials::from_pem(echo.chain_pem.as_bytes(), echo.key_pem.as_bytes()).unwrap();
        let config = sigil_verifier::server_config(Arc::clone(&verifier), credentials).unwrap();
        let app = axum::Router::new()
            .fallback(|peer: PeerIdentity| async move { peer.spiffe_id().to_string() });
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(sigil_verifier::axum::serve(
            listener,
            Arc::new(config),
            verifier,
            app,
        ));
        let mut updates = source.subscribe();
        let recorded = Arc::clone(&ticks);
        tokio::spawn(async move {
            while updates.changed().await.is_ok() {
                recorded.lock().unwrap().push(Instant::now());
            }
        });
        (addr, source)
    });

    // The client checks the echo server by SPIFFE ID against the bundle.
    let client_source = TrustSource::from_pem(server.bundle_pem.as_bytes()).unwrap();
    let server_verifier =
        SpiffeServerVerifier::builder(client_source, Policy::deny_all().allow(ECHO_ID).unwrap())
            .allow_missing_crls()
            .server_verifier();

    let bench = Bench {
        server,
        admin,
        runtime,
        echo_addr,
        server_verifier,
        agent_token,
        ticks,
    };

    println!("revocation propagation: admin revoke -> the echo server refuses a new handshake");
    println!(
        "CA {} (sigil serve, pid {}), echo server https://{} (sigil-verifier, live trust source)",
        bench.server.url,
        bench.server.child.id(),
        bench.echo_addr
    );
    let warm_up = bench.trial();
    println!(
        "warm-up trial (not counted): {}",
        warm_up
            .propagation
            .map_or_else(|| "failed".to_owned(), |d| format!("{:.2} ms", ms(d)))
    );

    let mut trials = Vec::with_capacity(TRIALS);
    for index in 0..TRIALS {
        let trial = bench.trial();
        if trial.propagation.is_none() {
            println!("trial {index}: FAILED: {}", trial.refusal);
        }
        trials.push(trial);
    }

    // Control: a fresh, unrevoked SVID is still accepted afterwards.
    let control = issue(&bench.server, &bench.agent_token);
    let control_connector = bench.connector(&control);
    let control_outcome = bench
        .runtime
        .block_on(attempt(&control_connector, bench.echo_addr));
    let control_text = match control_outcome {
        Outcome::Accepted(body) if body == AGENT_ID => "accepted (as expected)".to_owned(),
        Outcome::Accepted(body) => format!("accepted with an unexpected body {body:?}"),
        Outcome::Refused(how) => format!("REFUSED: {how}"),
        Outcome::Other(what) => format!("FAILED: {what}"),
    };

    let propagation: Vec<f64> = trials
        .iter()
        .filter_map(|t| t.propagation.map(ms))
        .collect();
    let failures = trials.len() - propagation.len();
    let attempt_cost: Vec<f64> = trials.iter().map(|t| ms(t.accepted_attempt)).collect();
    let revoke_call: Vec<f64> = trials.iter().map(|t| ms(t.revoke_call)).collect();
    let crl_landed: Vec<f64> = trials.iter().filter_map(|t| t.crl_landed_ms).collect();
    let accepted_after: Vec<f64> = trials.iter().map(|t| t.accepted_after_t0 as f64).collect();
    let other_after: usize = trials.iter().map(|t| t.other_after_t0).sum();
    let mut refusals: BTreeMap<&str, usize> = BTreeMap::new();
    for trial in trials.iter().filter(|t| t.propagation.is_some()) {
        *refusals.entry(trial.refusal.as_str()).or_default() += 1;
    }

    println!();
    println!(
        "{TRIALS} trials ({} refused in time, {failures} failed at the {CAP:?} cap); times in ms",
        propagation.len()
    );
    println!(
        "| {:<44} | {:>8} | {:>8} | {:>8} | {:>8} | {:>8} |",
        "measure", "min", "p50", "p99", "max", "mean"
    );
    println!(
        "|{:-<46}|{:->10}|{:->10}|{:->10}|{:->10}|{:->10}|",
        "", "", "", "", "", ""
    );
    row("propagation t1 - t0", &propagation);
    row("one accepted attempt (connect+TLS+request)", &attempt_cost);
    row("admin revoke call (request -> answer)", &revoke_call);
    row("CRL landed in the live source, rel. to t0", &crl_landed);
    row("attempts still accepted after t0 (count)", &accepted_after);
    println!();
    for (how, count) in &refusals {
        println!("refusal seen as: {how} ({count} trials)");
    }
    println!("attempts after t0 that were neither accepted nor refused: {other_after}");
    println!("control (fresh unrevoked SVID after all trials): {control_text}");
    if let Some([_, p50, p99, _, _]) = (!propagation.is_empty()).then(|| summary(&propagation)) {
        let target = if p50 < 1000.0 { "MET" } else { "NOT MET" };
        println!(
            "target p50 < 1000 ms: {target} (p50 {p50:.2} ms, p99 {p99:.2} ms; 100 ms would be better: {})",
            if p50 < 100.0 { "yes" } else { "no" }
        );
    } else {
        println!("target p50 < 1000 ms: NOT MET (no trial was refused within the cap)");
    }
    println!(
        "resolution: one attempt costs about {:.2} ms (p50), so t1 - t0 is known to within about that",
        summary(&attempt_cost)[1]
    );
    println!("total run time: {:.1} s", started.elapsed().as_secs_f64());
    drop(source);
}
