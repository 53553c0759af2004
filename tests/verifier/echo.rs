//! Servers: in-process (`sigil_verifier::axum::serve`) and the example
//! binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ServerConfig;
use rustls::pki_types::UnixTime;
use sigil_verifier::{PeerIdentity, Policy, SpiffeClientVerifier, TrustSource};

use crate::ca::{Ca, Svid};

/// The SPIFFE ID of every echo server in these tests.
pub(crate) const ECHO_ID: &str = "spiffe://example.org/tools/echo";

/// The loopback address the echo server binary listens on, and that its
/// SVID binds as IP SAN. Not 127.0.0.1: the CA refuses to bind any of its
/// own names (localhost, 127.0.0.1, its listen address) to a workload, so
/// that no workload can pass for the CA.
pub(crate) const ECHO_IP: &str = "127.0.0.2";

/// How an in-process echo server configures TLS.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resumable {
    /// `sigil_verifier::server_config`: no tickets, no session cache.
    No,
    /// rustls's defaults: a session cache and TLS 1.3 tickets.
    Yes,
}

/// An in-process mTLS echo server: `sigil_verifier::axum::serve` with a
/// `SpiffeClientVerifier` over a live source; answers with the caller's
/// SPIFFE ID.
pub(crate) struct Echo {
    pub(crate) addr: SocketAddr,
    verifier: Arc<SpiffeClientVerifier>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Echo {
    pub(crate) async fn start(
        source: &TrustSource,
        policy: Policy,
        own: &Svid,
        resumable: Resumable,
    ) -> Self {
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
            verifier.clone(),
            app,
        ));
        Self {
            addr,
            verifier,
            task,
        }
    }

    /// What the server-side verifier says about this chain right now.
    pub(crate) fn verdict(&self, svid: &Svid) -> Result<PeerIdentity, rustls::Error> {
        let chain = svid.chain();
        self.verifier
            .verify(&chain[0], &chain[1..], UnixTime::now())
    }
}

/// The path of a binary built from crates/sigil-verifier/examples.
pub(crate) fn example_binary(name: &str) -> PathBuf {
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
pub(crate) struct EchoProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
    log: PathBuf,
}

impl EchoProcess {
    /// Starts the example with `--ca`, `--fingerprint`, `--cert`, `--key`
    /// from `ca` and `own`, the given `--allow` patterns, listening on
    /// `listen_ip`:0, and waits for its `listening on` line.
    pub(crate) fn start(ca: &Ca, own: &Svid, allow: &[&str], listen_ip: &str, work: &Path) -> Self {
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
