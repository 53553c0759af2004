//! Client-certificate verification cost with a 100,000-entry CRL: rustls's
//! `WebPkiClientVerifier` without CRLs, the same with the CRLs (it
//! re-verifies each CRL's signature, hashing the whole CRL, on every
//! handshake), and `SpiffeClientVerifier` with the same CRLs (signature
//! checked once, serials in a hash set).
//!
//! Two groups, each with the three verifiers:
//! - `verify_call`: `verify_client_cert(leaf, [intermediate], now)` alone;
//! - `full_handshake`: a whole TLS 1.3 mutual-TLS handshake between an
//!   in-memory rustls client and server, resumption off on both sides.
//!
//! Throughput is one element per iteration, so `thrpt` reads as
//! verifications (or handshakes) per second, on one core.
//!
//! The PKI (root, intermediate, leaves, CRLs) is generated in memory with
//! rcgen at start-up; the crypto provider is ring.
//!
//! Run with: cargo bench -p sigil-verifier --bench handshake

// A benchmark: a failed set-up step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName,
    UnixTime,
};
use sigil_verifier::{Policy, SpiffeClientVerifier, TrustSource};

const TRUST_DOMAIN: &str = "spiffe://bench.test";
const REVOKED_ENTRIES: usize = 100_000;

/// A certificate and its private key.
struct Leaf {
    der: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Leaf {
    /// The chain a peer presents: the leaf, then the intermediate.
    fn chain(&self, pki: &Pki) -> Vec<CertificateDer<'static>> {
        vec![self.der.clone(), pki.intermediate.clone()]
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }
}

/// Everything the benchmark needs, generated in memory.
struct Pki {
    root: CertificateDer<'static>,
    root_pem: String,
    intermediate: CertificateDer<'static>,
    server: Leaf,
    client: Leaf,
    /// A client whose serial is on the intermediate's CRL.
    revoked_client: Leaf,
    /// The intermediate's CRL (100,000 entries) and the root's (empty).
    crls: Vec<CertificateRevocationListDer<'static>>,
    crls_pem: String,
}

fn random_serial(rng: &SystemRandom) -> [u8; 16] {
    let mut serial = [0u8; 16];
    rng.fill(&mut serial).unwrap();
    // Positive and of full length: the DER INTEGER is these 16 bytes.
    serial[0] = 1 + serial[0] % 0x7f;
    serial
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Sigil bench");
    name.push(DnType::CommonName, common_name);
    name
}

fn uri(text: &str) -> SanType {
    SanType::URI(Ia5String::try_from(text).unwrap())
}

fn ca_params(
    common_name: &str,
    constraints: BasicConstraints,
    serial: [u8; 16],
    now: SystemTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(24 * 3600)).into();
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

/// An X509-SVID: one SPIFFE ID URI SAN (and optionally a DNS name), empty
/// subject, not a CA, digitalSignature, serverAuth and clientAuth, valid
/// for an hour either side of now.
fn leaf(
    spiffe_id: &str,
    dns_name: Option<&str>,
    serial: [u8; 16],
    issuer: &Issuer<'_, KeyPair>,
    now: SystemTime,
) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![uri(spiffe_id)];
    if let Some(dns_name) = dns_name {
        params
            .subject_alt_names
            .push(SanType::DnsName(Ia5String::try_from(dns_name).unwrap()));
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = (now - Duration::from_secs(3600)).into();
    params.not_after = (now + Duration::from_secs(3600)).into();
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, issuer).unwrap();
    Leaf {
        der: cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

fn crl(
    issuer: &Issuer<'_, KeyPair>,
    number: u64,
    revoked: &[[u8; 16]],
    now: SystemTime,
) -> rcgen::CertificateRevocationList {
    let revocation_time = (now - Duration::from_secs(60)).into();
    CertificateRevocationListParams {
        this_update: (now - Duration::from_secs(60)).into(),
        next_update: (now + Duration::from_secs(3600)).into(),
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time,
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .unwrap()
}

fn generate_pki() -> Pki {
    let rng = SystemRandom::new();
    let now = SystemTime::now();

    let root_key = KeyPair::generate().unwrap();
    let mut root_params = ca_params(
        "Sigil bench root CA",
        BasicConstraints::Unconstrained,
        random_serial(&rng),
        now,
    );
    root_params.subject_alt_names = vec![uri(TRUST_DOMAIN)];
    let root_cert = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);

    let intermediate_key = KeyPair::generate().unwrap();
    let mut intermediate_params = ca_params(
        "Sigil bench issuing CA",
        BasicConstraints::Constrained(0),
        random_serial(&rng),
        now,
    );
    intermediate_params.use_authority_key_identifier_extension = true;
    let intermediate_cert = intermediate_params
        .signed_by(&intermediate_key, &root_issuer)
        .unwrap();
    let intermediate_issuer = Issuer::new(intermediate_params, intermediate_key);

    let mut revoked: Vec<[u8; 16]> = Vec::with_capacity(REVOKED_ENTRIES);
    let mut seen = HashSet::with_capacity(REVOKED_ENTRIES);
    while revoked.len() < REVOKED_ENTRIES {
        let serial = random_serial(&rng);
        if seen.insert(serial) {
            revoked.push(serial);
        }
    }
    let client_serial = loop {
        let serial = random_serial(&rng);
        if !seen.contains(&serial) {
            break serial;
        }
    };
    let server_serial = random_serial(&rng);
    let revoked_serial = revoked[REVOKED_ENTRIES / 2];

    let server = leaf(
        &format!("{TRUST_DOMAIN}/server"),
        Some("localhost"),
        server_serial,
        &intermediate_issuer,
        now,
    );
    let client = leaf(
        &format!("{TRUST_DOMAIN}/client"),
        None,
        client_serial,
        &intermediate_issuer,
        now,
    );
    let revoked_client = leaf(
        &format!("{TRUST_DOMAIN}/revoked-client"),
        None,
        revoked_serial,
        &intermediate_issuer,
        now,
    );

    let intermediate_crl = crl(&intermediate_issuer, 2, &revoked, now);
    let root_crl = crl(&root_issuer, 1, &[], now);
    let crls_pem = format!(
        "{}{}",
        intermediate_crl.pem().unwrap(),
        root_crl.pem().unwrap()
    );
    println!(
        "PKI: intermediate CRL {} entries, {} bytes DER; root CRL {} bytes",
        revoked.len(),
        intermediate_crl.der().len(),
        root_crl.der().len()
    );

    Pki {
        root: root_cert.der().clone(),
        root_pem: root_cert.pem(),
        intermediate: intermediate_cert.der().clone(),
        server,
        client,
        revoked_client,
        crls: vec![intermediate_crl.der().clone(), root_crl.der().clone()],
        crls_pem,
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(pki: &Pki) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.root.clone()).unwrap();
    Arc::new(roots)
}

/// The three verifiers under test, by benchmark name.
fn verifiers(pki: &Pki) -> Vec<(&'static str, Arc<dyn ClientCertVerifier>)> {
    // (a) webpki, no revocation checking.
    let webpki_no_crl = WebPkiClientVerifier::builder_with_provider(roots(pki), provider())
        .build()
        .unwrap();
    // (b) webpki with the intermediate's and the root's CRLs; by default it
    // wants a CRL for every certificate below the root, as sigil does.
    let webpki_crl = WebPkiClientVerifier::builder_with_provider(roots(pki), provider())
        .with_crls(pki.crls.iter().cloned())
        .build()
        .unwrap();
    // (c) sigil-verifier with the same CRLs.
    let source = TrustSource::from_pem(pki.root_pem.as_bytes())
        .unwrap()
        .with_crls_pem(pki.crls_pem.as_bytes())
        .unwrap();
    assert_eq!(source.revoked_count(), REVOKED_ENTRIES);
    let policy = Policy::deny_all()
        .allow(&format!("{TRUST_DOMAIN}/*"))
        .unwrap();
    let sigil: Arc<dyn ClientCertVerifier> =
        SpiffeClientVerifier::builder(source, policy).client_verifier();
    vec![
        ("webpki_no_crl", webpki_no_crl),
        ("webpki_crl_100k", webpki_crl),
        ("sigil_crl_100k", sigil),
    ]
}

/// A TLS 1.3 server requiring client certificates checked by `verifier`,
/// with no session cache and no tickets.
fn server_config(pki: &Pki, verifier: Arc<dyn ClientCertVerifier>) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki.server.chain(pki), pki.server.key())
        .unwrap();
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Arc::new(config)
}

/// A TLS 1.3 client presenting `leaf`, checking the server with webpki
/// against the root (the server certificate names "localhost"), never
/// resuming.
fn client_config(pki: &Pki, leaf: &Leaf) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots(pki))
        .with_client_auth_cert(leaf.chain(pki), leaf.key())
        .unwrap();
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

/// Moves everything `from` has to send into `to`, and lets `to` process it.
/// Returns how many bytes moved.
fn transfer(
    from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
    to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
    buffer: &mut Vec<u8>,
) -> Result<usize, rustls::Error> {
    buffer.clear();
    while from.wants_write() {
        from.write_tls(buffer).unwrap();
    }
    let mut pending = &buffer[..];
    while !pending.is_empty() {
        to.read_tls(&mut pending).unwrap();
        to.process_new_packets()?;
    }
    Ok(buffer.len())
}

/// One full handshake, in memory. Returns the server side, done
/// handshaking, or the first error either side raised.
fn handshake(
    client_config: &Arc<ClientConfig>,
    server_config: &Arc<ServerConfig>,
) -> Result<ServerConnection, rustls::Error> {
    let server_name = ServerName::try_from("localhost").unwrap();
    let mut client = ClientConnection::new(Arc::clone(client_config), server_name)?;
    let mut server = ServerConnection::new(Arc::clone(server_config))?;
    let mut buffer = Vec::with_capacity(4096);
    while client.is_handshaking() || server.is_handshaking() {
        let sent = transfer(&mut client, &mut server, &mut buffer)?
            + transfer(&mut server, &mut client, &mut buffer)?;
        if sent == 0 {
            return Err(rustls::Error::General("the handshake stalled".to_owned()));
        }
    }
    Ok(server)
}

/// Before timing anything: every verifier accepts the good client, the
/// CRL-checking ones refuse the revoked client, and a full handshake with
/// each succeeds with the client's certificate seen by the server.
fn check_outcomes(pki: &Pki, verifiers: &[(&'static str, Arc<dyn ClientCertVerifier>)]) {
    let now = UnixTime::now();
    let intermediates = [pki.intermediate.clone()];
    let good = client_config(pki, &pki.client);
    let revoked = client_config(pki, &pki.revoked_client);
    for (name, verifier) in verifiers {
        verifier
            .verify_client_cert(&pki.client.der, &intermediates, now)
            .unwrap_or_else(|e| panic!("{name} refuses the good client: {e}"));
        let server = handshake(&good, &server_config(pki, Arc::clone(verifier)))
            .unwrap_or_else(|e| panic!("{name}: the handshake fails: {e}"));
        let presented = server
            .peer_certificates()
            .unwrap_or_else(|| panic!("{name}: the server saw no client certificate"));
        assert_eq!(presented.first(), Some(&pki.client.der), "{name}");

        let on_call = verifier.verify_client_cert(&pki.revoked_client.der, &intermediates, now);
        let on_handshake = handshake(&revoked, &server_config(pki, Arc::clone(verifier)));
        if *name == "webpki_no_crl" {
            assert!(on_call.is_ok(), "{name} checks no CRL");
            assert!(on_handshake.is_ok(), "{name} checks no CRL");
        } else {
            let revoked_error =
                rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked);
            assert_eq!(on_call.err(), Some(revoked_error.clone()), "{name}");
            assert_eq!(on_handshake.err(), Some(revoked_error), "{name}");
        }
    }
    println!("checked: every verifier accepts the client; b and c refuse the revoked one");
}

/// webpki with the 100k CRL takes milliseconds an iteration: fewer samples.
fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, name: &str) {
    if name == "webpki_crl_100k" {
        group.sample_size(10);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
    } else {
        group.sample_size(50);
        group.warm_up_time(Duration::from_secs(2));
        group.measurement_time(Duration::from_secs(8));
    }
}

fn benchmarks(c: &mut Criterion) {
    let pki = generate_pki();
    let verifiers = verifiers(&pki);
    check_outcomes(&pki, &verifiers);

    let now = UnixTime::now();
    let intermediates = [pki.intermediate.clone()];
    let mut group = c.benchmark_group("verify_call");
    group.throughput(Throughput::Elements(1));
    for (name, verifier) in &verifiers {
        configure(&mut group, name);
        group.bench_function(*name, |b| {
            b.iter(|| {
                verifier
                    .verify_client_cert(black_box(&pki.client.der), black_box(&intermediates), now)
                    .unwrap()
            })
        });
    }
    group.finish();

    let client = client_config(&pki, &pki.client);
    let mut group = c.benchmark_group("full_handshake");
    group.throughput(Throughput::Elements(1));
    for (name, verifier) in &verifiers {
        let server = server_config(&pki, Arc::clone(verifier));
        configure(&mut group, name);
        group.bench_function(*name, |b| {
            b.iter(|| {
                let connection = handshake(&client, &server).unwrap();
                assert!(connection.peer_certificates().is_some());
                connection
            })
        });
    }
    group.finish();
}

criterion_group!(benches, benchmarks);
criterion_main!(benches);
