//! The crypto floor, in-process, with no HTTP and no store, through the
//! server's own code: per issuance, `CertificateAuthority::issue` with a
//! CSR, which verifies it (the proof of possession) and signs a leaf with
//! the Sigil profile, as the server does for each request. The renewal
//! floor adds what a renewal over a new mTLS connection cannot avoid: one
//! full TLS 1.3 handshake with client certificates, both ends (client and
//! server share the machine in the benchmark too), on rustls's stock
//! verifiers.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use rcgen::KeyPair;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use sigil::ca::{
    CaFiles, CertificateAuthority, DEFAULT_ISSUING_LIFETIME, KeyType, LeafRequest, Passphrase,
    SubjectKey,
};
use sigil::csr::{KeyPolicy, VerifiedPublicKey};
use sigil::datadir::DataDir;
use sigil_core::SpiffeId;
use time::OffsetDateTime;

use crate::KeyKind;

const TTL: Duration = Duration::from_secs(3600);

fn authority(data_dir: Option<&Path>) -> anyhow::Result<CertificateAuthority> {
    let files = match data_dir {
        // An encrypted CA's passphrase comes from SIGIL_CA_PASSPHRASE.
        Some(dir) => CaFiles::read(
            &DataDir::new(dir),
            Passphrase::from_file_or_env(None)?.as_ref(),
        )?,
        None => CaFiles::generate(
            &"bench.example".parse()?,
            KeyType::P256,
            DEFAULT_ISSUING_LIFETIME,
            OffsetDateTime::now_utc(),
        )?,
    };
    CertificateAuthority::load(&files, "https://127.0.0.1:8443")
}

/// One certificate's worth of CA crypto: the CSR verified and the leaf
/// signed in one call, as the server runs it.
fn issue_one(
    ca: &CertificateAuthority,
    spiffe_id: &SpiffeId,
    csr_pem: &str,
) -> anyhow::Result<usize> {
    let request = LeafRequest {
        spiffe_id,
        key: &SubjectKey::Csr {
            pem: csr_pem.to_owned(),
            policy: KeyPolicy::default(),
        },
        dns_names: &[],
        ip_addresses: &[],
        ttl: TTL,
    };
    Ok(ca.issue(&request, OffsetDateTime::now_utc())?.der.len())
}

/// Both ends of an mTLS connection, with SVIDs of the CA.
struct Handshakes {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    name: ServerName<'static>,
}

impl Handshakes {
    fn new(ca: &CertificateAuthority) -> anyhow::Result<Self> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.root().der().clone())?;
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let svid = |id: &str, dns: &[String]| -> anyhow::Result<_> {
            let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let public_key = VerifiedPublicKey::from_own_key(&key)?;
            let spiffe_id: SpiffeId = id.parse()?;
            let issued = ca.issue(
                &LeafRequest {
                    spiffe_id: &spiffe_id,
                    key: &SubjectKey::Verified(public_key),
                    dns_names: dns,
                    ip_addresses: &[],
                    ttl: TTL,
                },
                OffsetDateTime::now_utc(),
            )?;
            let chain = vec![issued.der, ca.issuing().der().clone()];
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
            Ok((chain, key))
        };
        let td = ca.trust_domain();
        let (server_chain, server_key) = svid(
            &format!("spiffe://{td}/sigil/server"),
            &["localhost".to_owned()],
        )?;
        let (client_chain, client_key) = svid(&format!("spiffe://{td}/bench/agent"), &[])?;
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()?;
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(server_chain, server_key)?;
        // A renewal is a new connection, not a resumed one.
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(client_chain, client_key)?;
        client.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            client: Arc::new(client),
            server: Arc::new(server),
            name: ServerName::try_from("localhost")?,
        })
    }

    /// One full handshake, in memory.
    fn run(&self) -> anyhow::Result<()> {
        let mut client = ClientConnection::new(Arc::clone(&self.client), self.name.clone())?;
        let mut server = ServerConnection::new(Arc::clone(&self.server))?;
        let mut wire = Vec::new();
        for _ in 0..16 {
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
            wire.clear();
            while client.wants_write() {
                client.write_tls(&mut wire)?;
            }
            let mut input = Cursor::new(&wire[..]);
            while (input.position() as usize) < wire.len() {
                server.read_tls(&mut input)?;
                server.process_new_packets()?;
            }
            wire.clear();
            while server.wants_write() {
                server.write_tls(&mut wire)?;
            }
            let mut input = Cursor::new(&wire[..]);
            while (input.position() as usize) < wire.len() {
                client.read_tls(&mut input)?;
                client.process_new_packets()?;
            }
        }
        Err(anyhow!("the handshake did not finish"))
    }
}

pub(crate) fn run(
    threads: Option<usize>,
    count: usize,
    kind: KeyKind,
    data_dir: Option<&Path>,
    with_handshake: bool,
) -> anyhow::Result<()> {
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
        .max(1);
    let ca = authority(data_dir)?;
    let spiffe_id: SpiffeId = format!("spiffe://{}/bench/agent", ca.trust_domain()).parse()?;
    let handshakes = match with_handshake {
        true => Some(Handshakes::new(&ca).context("setting up the handshake floor")?),
        false => None,
    };
    let one = |csr: &str| -> anyhow::Result<()> {
        issue_one(&ca, &spiffe_id, csr)?;
        if let Some(handshakes) = &handshakes {
            handshakes.run()?;
        }
        Ok(())
    };
    // Distinct CSRs, reused round-robin: verifying one is the same work
    // whichever it is.
    let csrs: Vec<String> = crate::generate_csrs(count.clamp(1, 2000), kind)?
        .into_iter()
        .map(|(_, csr)| csr)
        .collect();
    // Warm-up, and a check that the path works at all.
    for csr in csrs.iter().take(50) {
        one(csr)?;
    }
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let results: Vec<anyhow::Result<usize>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<usize> {
                    let mut done = 0;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return Ok(done);
                        }
                        let csr = csrs.get(i % csrs.len()).ok_or_else(|| anyhow!("no CSR"))?;
                        one(csr)?;
                        done += 1;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("thread panicked"))))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut done = 0;
    for result in results {
        done += result?;
    }
    let rate = done as f64 / elapsed;
    let what = match with_handshake {
        true => "CSR verify + leaf sign + mTLS handshake",
        false => "CSR verify + leaf sign",
    };
    eprintln!("floor: {done} × {what} in {elapsed:.3}s on {threads} threads -> {rate:.1} ops/s");
    println!(
        "RESULT kind=floor ok={done} errors=0 threads={threads} secs={elapsed:.3} rate={rate:.1}"
    );
    Ok(())
}
