//! What the attacks share: a snapshot of the whole store that shows an
//! attack changed nothing, agents holding SVIDs, CSRs made with openssl,
//! certificates minted with rcgen, the check of Sigil's leaf profile, and a
//! raw HTTP/1.1 client for requests `CaClient` will not send.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};
use serde_json::{Value, json};
use sigil::client::{CaClient, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::common::*;

// ---------------------------------------------------------------------------
// The store, before and after.

/// The signed checkpoints of the audit log: the server signs one when it
/// stops (tests/audit.rs pins them), so they are not compared.
const AUDIT_CHECKPOINTS: &str = "audit_checkpoints";
/// The audit log, compared record by record.
const AUDIT_EVENTS: &str = "audit_events";

/// One row of a table: its (column, value) pairs, values as text (blobs in
/// hex, NULL as `NULL`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Row(Vec<(String, String)>);

impl Row {
    /// The value of `column`.
    pub(crate) fn get(&self, column: &str) -> &str {
        self.0
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, value)| value.as_str())
            .unwrap_or_else(|| panic!("no column {column} in {self:?}"))
    }
}

fn read_rows(conn: &rusqlite::Connection, sql: &str) -> Vec<Row> {
    let mut statement = conn.prepare(sql).unwrap();
    let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
    statement
        .query_map([], |row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    use rusqlite::types::Value as Sql;
                    let value = match row.get::<_, Sql>(i)? {
                        Sql::Null => "NULL".to_owned(),
                        Sql::Integer(n) => n.to_string(),
                        Sql::Real(x) => x.to_string(),
                        Sql::Text(text) => text,
                        Sql::Blob(bytes) => hex::encode(bytes),
                    };
                    Ok((name.clone(), value))
                })
                .collect::<rusqlite::Result<Vec<_>>>()
                .map(Row)
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
}

/// Every row of every table of the store (whatever tables the schema has
/// now or gains later), read straight from the SQLite file, and the audit
/// log in order.
#[derive(Debug)]
pub(crate) struct Snapshot {
    tables: BTreeMap<String, BTreeSet<Row>>,
    audit: Vec<Row>,
}

impl Snapshot {
    /// Reads the store now (the server may be running: SQLite in WAL mode
    /// lets a reader see the last committed state).
    pub(crate) fn take(dir: &DataDir) -> Self {
        let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
        let names: Vec<String> = read_rows(
            &conn,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .iter()
        .map(|row| row.get("name").to_owned())
        .collect();
        let mut tables = BTreeMap::new();
        for name in names {
            if name != AUDIT_EVENTS && name != AUDIT_CHECKPOINTS {
                let rows = read_rows(&conn, &format!("SELECT * FROM {name}"));
                tables.insert(name, rows.into_iter().collect());
            }
        }
        let audit = read_rows(&conn, &format!("SELECT * FROM {AUDIT_EVENTS} ORDER BY seq"));
        Self { tables, audit }
    }

    /// Stops the server with SIGTERM — on which it writes the anonymous
    /// refusals it counted (otherwise written once a minute) to the audit
    /// log and signs the log's head — and returns what changed in the store
    /// since the snapshot. Fails if an existing audit record was altered or
    /// `sigil audit verify` no longer accepts the log.
    pub(crate) fn changes_after_stop(&self, dir: &DataDir, server: Server) -> Changes {
        assert!(
            server.terminate().success(),
            "sigil serve did not stop cleanly"
        );
        let after = Self::take(dir);
        assert!(
            after.audit.len() >= self.audit.len()
                && after.audit[..self.audit.len()] == self.audit[..],
            "existing audit records changed:\nbefore {:#?}\nafter {:#?}",
            self.audit,
            after.audit
        );
        let verified = sigil(&["audit", "verify", "--data-dir", dir.arg()]);
        assert!(
            verified.status.success(),
            "the audit log no longer verifies: {}{}",
            stdout(&verified),
            stderr(&verified)
        );
        let empty = BTreeSet::new();
        let names: BTreeSet<&String> = self.tables.keys().chain(after.tables.keys()).collect();
        let mut changes = Changes {
            audit: after.audit[self.audit.len()..].to_vec(),
            ..Changes::default()
        };
        for name in names {
            let before = self.tables.get(name).unwrap_or(&empty);
            let now = after.tables.get(name).unwrap_or(&empty);
            let added: Vec<Row> = now.difference(before).cloned().collect();
            let removed: Vec<Row> = before.difference(now).cloned().collect();
            if !added.is_empty() {
                changes.added.insert(name.clone(), added);
            }
            if !removed.is_empty() {
                changes.removed.insert(name.clone(), removed);
            }
        }
        changes
    }

    /// Stops the server and asserts that the store is exactly as it was —
    /// every row of every table — except for the audit log's records of
    /// counted anonymous refusals: one `attestation.refuse` per expected
    /// (reason, count), and nothing else.
    pub(crate) fn assert_unchanged_except_refusals(
        &self,
        dir: &DataDir,
        server: Server,
        refusals: &[(&str, u64)],
    ) {
        let changes = self.changes_after_stop(dir, server);
        changes.assert_only_tables_changed(&[]);
        changes.assert_audit_only_refusals(refusals);
    }

    /// [`Snapshot::assert_unchanged_except_refusals`] for a refusal that
    /// the CA does not count (the caller was authenticated, or only the
    /// request's form was wrong).
    pub(crate) fn assert_unchanged(&self, dir: &DataDir, server: Server) {
        self.assert_unchanged_except_refusals(dir, server, &[]);
    }
}

/// What changed between a snapshot and the store after the server stopped.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// New rows, by table.
    pub(crate) added: BTreeMap<String, Vec<Row>>,
    /// Rows gone (or changed: a changed row is removed and added), by table.
    pub(crate) removed: BTreeMap<String, Vec<Row>>,
    /// New audit records, in order.
    pub(crate) audit: Vec<Row>,
}

impl Changes {
    /// The rows `table` gained.
    pub(crate) fn added(&self, table: &str) -> &[Row] {
        self.added.get(table).map_or(&[], Vec::as_slice)
    }

    /// Asserts that no table outside `allowed` gained, lost or changed a
    /// row.
    pub(crate) fn assert_only_tables_changed(&self, allowed: &[&str]) {
        let touched: BTreeSet<&str> = self
            .added
            .keys()
            .chain(self.removed.keys())
            .map(String::as_str)
            .filter(|table| !allowed.contains(table))
            .collect();
        assert!(
            touched.is_empty(),
            "the store changed in {touched:?}:\nadded {:#?}\nremoved {:#?}",
            self.added,
            self.removed
        );
    }

    /// The actions of the new audit records, in order.
    pub(crate) fn audit_actions(&self) -> Vec<&str> {
        self.audit
            .iter()
            .map(|record| record.get("action"))
            .collect()
    }

    /// Asserts that the new audit records are exactly one counted refusal
    /// per expected (reason, count), from this machine.
    pub(crate) fn assert_audit_only_refusals(&self, expected: &[(&str, u64)]) {
        let mut seen = Vec::new();
        for record in &self.audit {
            assert_eq!(
                (record.get("actor"), record.get("action")),
                ("anonymous", "attestation.refuse"),
                "an audit record other than a counted refusal: {record:?}"
            );
            assert_eq!(record.get("subject"), "127.0.0.1", "{record:?}");
            let details: Value = serde_json::from_str(record.get("details")).unwrap();
            seen.push((
                details["reason"].as_str().unwrap().to_owned(),
                details["count"].as_u64().unwrap(),
            ));
        }
        seen.sort();
        let mut expected: Vec<(String, u64)> = expected
            .iter()
            .map(|&(reason, count)| (reason.to_owned(), count))
            .collect();
        expected.sort();
        assert_eq!(seen, expected, "counted refusals in the audit log");
    }
}

// ---------------------------------------------------------------------------
// Agents and requests.

/// A workload identity the tests attest.
pub(crate) const AGENT_ID: &str = "spiffe://example.org/agents/target";

/// An SVID and its key, as an agent (or a thief) holds them.
#[derive(Clone)]
pub(crate) struct Agent {
    pub(crate) spiffe_id: String,
    pub(crate) chain_pem: String,
    pub(crate) key_pem: String,
    pub(crate) serial: String,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Agent({} {})", self.spiffe_id, self.serial)
    }
}

impl Agent {
    /// A client presenting this SVID.
    pub(crate) fn client(&self, server: &Server) -> CaClient {
        server.client_as(&self.chain_pem, &self.key_pem)
    }

    fn from_response(response: &Response, key: &KeyPair) -> Self {
        assert_eq!(response.status, 200, "{}", body_text(response));
        let body: Value = response.json().unwrap();
        Self {
            spiffe_id: body["spiffe_id"].as_str().unwrap().to_owned(),
            chain_pem: body["cert_chain_pem"].as_str().unwrap().to_owned(),
            key_pem: key.serialize_pem(),
            serial: body["serial"].as_str().unwrap().to_owned(),
        }
    }
}

/// The body of `POST /v1/svid` for a CSR and a join token.
pub(crate) fn svid_request(csr_pem: &str, token: &str) -> Value {
    json!({
        "csr": csr_pem,
        "attestation": {"type": "join_token", "token": token},
    })
}

/// A fresh SVID for `spiffe_id`, through a join token.
pub(crate) fn attest(server: &Server, spiffe_id: &str) -> Agent {
    attest_for(server, spiffe_id, None)
}

/// A fresh SVID for `spiffe_id` with this lifetime.
pub(crate) fn attest_for(server: &Server, spiffe_id: &str, ttl_seconds: Option<u64>) -> Agent {
    let token = server.token(spiffe_id);
    let (key, csr) = p256_csr();
    let mut body = svid_request(&csr, &token);
    if let Some(ttl) = ttl_seconds {
        body["ttl_seconds"] = json!(ttl);
    }
    Agent::from_response(&server.post_svid(body), &key)
}

/// `POST /v1/renew` with `body`, presenting `agent`'s SVID.
pub(crate) fn renew_with(server: &Server, agent: &Agent, body: &Value) -> Response {
    block_on(agent.client(server).post_json("/v1/renew", body)).unwrap()
}

/// Renews `agent` with a fresh key; the refusal as the error.
#[allow(clippy::result_large_err)] // a test helper; the refusal is the point
pub(crate) fn renew(server: &Server, agent: &Agent) -> Result<Agent, Response> {
    let (key, csr) = p256_csr();
    let response = renew_with(server, agent, &json!({"csr": csr}));
    if response.status != 200 {
        return Err(response);
    }
    Ok(Agent::from_response(&response, &key))
}

/// `POST path` with a JSON body, as the data dir's admin.
pub(crate) fn admin_post(server: &Server, path: &str, body: &Value) -> Response {
    block_on(server.admin().post_json(path, body)).unwrap()
}

/// Any request on a fresh connection.
pub(crate) fn send(
    client: &CaClient,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Response {
    block_on(client.request(method, path, content_type, body)).unwrap()
}

/// `POST /v1/svid` with these exact bytes as a JSON body.
pub(crate) fn post_svid_bytes(server: &Server, body: Vec<u8>) -> Response {
    send(
        &server.anonymous(),
        Method::POST,
        "/v1/svid",
        Some("application/json"),
        body,
    )
}

/// Bans `spiffe_id` (revoking its live certificates), as the admin.
pub(crate) fn ban(server: &Server, spiffe_id: &str) {
    let response = admin_post(
        server,
        "/admin/v1/revocations",
        &json!({"spiffe_id": spiffe_id}),
    );
    assert_eq!(response.status, 200, "{}", body_text(&response));
}

/// `/admin/v1/bans/{id}` with the ID percent-encoded as a path segment.
pub(crate) fn ban_path(spiffe_id: &str) -> String {
    let encoded: String = spiffe_id
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    format!("/admin/v1/bans/{encoded}")
}

/// The body of a response, as text (for failure messages).
pub(crate) fn body_text(response: &Response) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

/// The `message` of a JSON error.
pub(crate) fn error_message(response: &Response) -> String {
    let body: Value = response.json().unwrap();
    body["error"]["message"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------
// CSRs and certificates.

/// `openssl genpkey` arguments for a P-256 key.
pub(crate) const P256: &[&str] = &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];

/// Runs openssl in `work`; fails the test if it fails.
pub(crate) fn run_openssl(work: &Path, args: &[&str]) -> String {
    let output = openssl(args, work);
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// A key made by `openssl genpkey GENPKEY` and a CSR for it made by
/// `openssl req -new -subj /CN=attacker REQ` (for example `-addext ...`),
/// both in `work` as `NAME.key` and `NAME.csr`; returns the CSR PEM.
pub(crate) fn openssl_csr(work: &Path, name: &str, genpkey: &[&str], req: &[&str]) -> String {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    run_openssl(work, &[&["genpkey"], genpkey, &["-out", &key]].concat());
    run_openssl(
        work,
        &[
            &[
                "req",
                "-new",
                "-key",
                &key,
                "-subj",
                "/CN=attacker",
                "-out",
                &csr,
            ],
            req,
        ]
        .concat(),
    );
    std::fs::read_to_string(work.join(csr)).unwrap()
}

/// The DER inside a PEM CSR.
pub(crate) fn der_of(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).unwrap().into_contents()
}

/// DER as one PEM block with this tag.
pub(crate) fn pem_block(tag: &str, der: Vec<u8>) -> String {
    pem::encode(&pem::Pem::new(tag, der))
}

/// The SubjectPublicKeyInfo of a PEM CSR, DER.
fn csr_spki(csr_pem: &str) -> Vec<u8> {
    let der = der_of(csr_pem);
    let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
    csr.certification_request_info.subject_pki.raw.to_vec()
}

/// Asserts that `response` is an SVID of Sigil's own leaf profile for
/// `spiffe_id` (DESIGN.md), carrying the CSR's public key and nothing else
/// the CSR asked for: empty subject; basicConstraints CA:false, critical,
/// no path length; keyUsage digitalSignature alone, critical; EKU
/// serverAuth + clientAuth alone; exactly one SAN, the URI `spiffe_id`; no
/// extension outside the profile (so no name constraints). openssl reads
/// it the same way and verifies it to the bundle for client auth.
pub(crate) fn assert_sigil_leaf(
    dir: &DataDir,
    response: &Response,
    spiffe_id: &str,
    csr_pem: &str,
) {
    assert_eq!(response.status, 200, "{}", body_text(response));
    let body: Value = response.json().unwrap();
    assert_eq!(body["spiffe_id"], spiffe_id);
    let chain_pem = body["cert_chain_pem"].as_str().unwrap();
    let chain = chain_der(chain_pem);
    assert_eq!(chain.len(), 2, "leaf then issuing CA");
    let (_, leaf) = X509Certificate::from_der(&chain[0]).unwrap();
    assert!(
        leaf.subject().iter().next().is_none(),
        "the subject is empty, not {}",
        leaf.subject()
    );
    assert_eq!(
        leaf.public_key().raw,
        csr_spki(csr_pem).as_slice(),
        "the CSR's key"
    );
    let mut seen = Vec::new();
    for extension in leaf.extensions() {
        let name = match extension.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => {
                assert!(extension.critical, "basicConstraints is critical");
                assert!(!bc.ca, "CA:false");
                assert_eq!(bc.path_len_constraint, None, "no path length");
                "bc"
            }
            ParsedExtension::KeyUsage(ku) => {
                assert!(extension.critical, "keyUsage is critical");
                assert_eq!(ku.flags, 1, "digitalSignature alone, not {ku}");
                "ku"
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                assert!(eku.server_auth && eku.client_auth, "{eku:?}");
                assert!(
                    !eku.any
                        && !eku.code_signing
                        && !eku.email_protection
                        && !eku.time_stamping
                        && !eku.ocsp_signing
                        && eku.other.is_empty(),
                    "serverAuth + clientAuth alone: {eku:?}"
                );
                "eku"
            }
            ParsedExtension::SubjectAlternativeName(_) => "san",
            ParsedExtension::SubjectKeyIdentifier(_) => "ski",
            ParsedExtension::AuthorityKeyIdentifier(_) => "aki",
            ParsedExtension::CRLDistributionPoints(_) => "crldp",
            other => panic!(
                "an extension outside the leaf profile: {} {other:?}",
                extension.oid
            ),
        };
        seen.push(name);
    }
    seen.sort_unstable();
    assert_eq!(seen, ["aki", "bc", "crldp", "eku", "ku", "san", "ski"]);
    assert_eq!(
        sans_of(&chain[0]),
        [format!("URI({spiffe_id:?})")],
        "exactly one SAN, the SPIFFE ID"
    );

    let work = dir.temp.path();
    std::fs::write(work.join("issued.pem"), chain_pem).unwrap();
    let text = run_openssl(work, &["x509", "-in", "issued.pem", "-noout", "-text"]);
    assert!(text.contains("CA:FALSE"), "{text}");
    for absent in [
        "CA:TRUE",
        "pathlen",
        "Name Constraints",
        "Code Signing",
        "Certificate Sign",
        "CRL Sign",
        "DNS:",
        "IP Address:",
        "evil",
        "attacker",
    ] {
        assert!(!text.contains(absent), "{absent} in the leaf:\n{text}");
    }
    let bundle = dir.file("bundle.pem");
    let verify = openssl(
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            bundle.to_str().unwrap(),
            "-untrusted",
            "issued.pem",
            "-purpose",
            "sslclient",
            "issued.pem",
        ],
        work,
    );
    assert!(
        verify.status.success(),
        "openssl verify: {}{}",
        stdout(&verify),
        stderr(&verify)
    );
}

/// A certificate for `spiffe_id` (a leaf for client auth, or with `ca` a
/// CA:true certificate) signed with the CA certificate and key given in
/// PEM, valid for the hour around now; returns (chain PEM: it, then its
/// issuer; key PEM). With a data dir's issuing CA it is what a thief of
/// that key could make; with another data dir's, a foreign CA's SVID.
pub(crate) fn mint(
    issuer_pem: &str,
    issuer_key_pem: &str,
    spiffe_id: &str,
    ca: bool,
) -> (String, String) {
    // A serial of Sigil's shape (16 bytes, positive, minimal; random here,
    // which the CA's parsing accepts alike), so that only the store can tell
    // the certificate was never issued.
    let mut serial = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial).unwrap();
    serial[0] = (serial[0] & 0x7f).max(1);
    mint_with_serial(issuer_pem, issuer_key_pem, spiffe_id, ca, &serial)
}

/// [`mint`] with this serial (big-endian bytes).
pub(crate) fn mint_with_serial(
    issuer_pem: &str,
    issuer_key_pem: &str,
    spiffe_id: &str,
    ca: bool,
    serial: &[u8],
) -> (String, String) {
    let issuer_key = KeyPair::from_pem(issuer_key_pem).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(issuer_pem, issuer_key).unwrap();
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(spiffe_id.try_into().unwrap())];
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
    } else {
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    }
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(rcgen::SerialNumber::from(serial.to_vec()));
    let cert = params.signed_by(&key, &issuer).unwrap();
    (format!("{}{issuer_pem}", cert.pem()), key.serialize_pem())
}

/// The serial of the first certificate of a PEM chain, lowercase hex.
pub(crate) fn serial_of(chain_pem: &str) -> String {
    let der = chain_der(chain_pem);
    let (_, cert) = X509Certificate::from_der(&der[0]).unwrap();
    hex::encode(cert.raw_serial())
}

// ---------------------------------------------------------------------------
// Raw HTTP/1.1.

/// Sends `request` byte for byte over TLS (trusting the bundle, no client
/// certificate) and reads until the server closes the connection; returns
/// the first HTTP/1.1 answer and whatever bytes followed it (a second
/// answer, to a request smuggled behind the first). With `half_close`, the
/// TCP write half is shut right after the request: a body the headers
/// promise never comes.
pub(crate) fn raw_http(server: &Server, request: &[u8], half_close: bool) -> (Response, Vec<u8>) {
    let connector = tls_connector(server);
    let port = server.port();
    let answer = block_on(async move {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut tls = connector.connect(server_name(), tcp).await.unwrap();
        tls.write_all(request).await.unwrap();
        tls.flush().await.unwrap();
        if half_close {
            tls.get_mut().0.shutdown().await.unwrap();
        }
        let mut bytes = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), async {
            let mut buffer = [0u8; 16 * 1024];
            // A close without close_notify reads as an error: the end too.
            while let Ok(n @ 1..) = tls.read(&mut buffer).await {
                bytes.extend_from_slice(&buffer[..n]);
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "the server kept the connection open 20 s after: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes
    });
    parse_http(&answer).unwrap_or_else(|| {
        panic!(
            "not one complete HTTP answer: {:?}",
            String::from_utf8_lossy(&answer)
        )
    })
}

/// A TLS client that trusts the server's bundle and shows no certificate.
pub(crate) fn tls_connector(server: &Server) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for der in chain_der(&server.bundle_pem) {
        roots.add(der.into()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// The name the server's certificate carries for a local listener.
pub(crate) fn server_name() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("localhost").unwrap()
}

/// The first HTTP/1.1 answer (with a Content-Length) in `bytes`, and the
/// bytes after it.
fn parse_http(bytes: &[u8]) -> Option<(Response, Vec<u8>)> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.append(
            http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
            http::HeaderValue::from_str(value.trim()).ok()?,
        );
    }
    let length: usize = headers.get("content-length")?.to_str().ok()?.parse().ok()?;
    let body = bytes.get(end + 4..end + 4 + length)?;
    let rest = bytes[end + 4 + length..].to_vec();
    let response = Response {
        status: http::StatusCode::from_u16(status).ok()?,
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        headers,
        body: hyper::body::Bytes::copy_from_slice(body),
    };
    Some((response, rest))
}
