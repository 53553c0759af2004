//! Shared set-up for the end-to-end tests: a real `sigil` binary, a real
//! SQLite file in a temporary data dir, a real TLS listener on 127.0.0.1:0.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use serde_json::{Value, json};
use sigil::client::{CaClient, ClientIdentity, Response};
use tempfile::TempDir;

pub const TRUST_DOMAIN: &str = "example.org";
/// The passphrase of [`DataDir::init_encrypted`].
pub const CA_PASSPHRASE: &str = "a long passphrase for the example CA";

/// Asserts that a key file holds a PKCS#8 key encrypted at rest.
pub fn assert_encrypted_key(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{} is not encrypted",
        path.display()
    );
}

/// The `.key` files of a directory.
pub fn key_files(directory: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "key"))
        .collect()
}

/// Runs the sigil binary to completion.
pub fn sigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env_remove("SIGIL_DATA_DIR")
        .env_remove("SIGIL_CA_PASSPHRASE")
        .env_remove("SIGIL_CA_PASSPHRASE_FILE")
        .output()
        .expect("running sigil")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The secret part of a join token, `sigil_jt_<16 hex id>_<secret>`. The
/// secret is base64url and may itself hold '_', so it is cut by position
/// (cutting at the last '_' could leave a few characters any text holds).
pub fn join_token_secret(token: &str) -> &str {
    let secret = &token[sigil::join_token::PREFIX.len() + 17..];
    assert_eq!(secret.len(), 43, "not a join token: {token}");
    secret
}

/// A data dir initialised with `sigil init`.
pub struct DataDir {
    pub temp: TempDir,
    pub path: PathBuf,
    pub fingerprint: String,
}

impl DataDir {
    pub fn init() -> Self {
        Self::init_with(&[])
    }

    pub fn init_with(extra: &[&str]) -> Self {
        Self::init_in(tempfile::tempdir().unwrap(), extra)
    }

    /// `sigil init` into `TEMP/data`, for a test that put files in `temp`
    /// first.
    pub fn init_in(temp: TempDir, extra: &[&str]) -> Self {
        let path = temp.path().join("data");
        let mut args = vec!["init", "--trust-domain", TRUST_DOMAIN, "--data-dir"];
        args.push(path.to_str().unwrap());
        args.extend_from_slice(extra);
        let output = sigil(&args);
        assert!(output.status.success(), "init failed: {}", stderr(&output));
        let fingerprint = stdout(&output).trim().to_owned();
        Self {
            temp,
            path,
            fingerprint,
        }
    }

    pub fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.file(name)).unwrap()
    }

    pub fn bundle_pem(&self) -> String {
        self.read("bundle.pem")
    }

    /// Rows of a table, read straight from the SQLite file.
    pub fn count(&self, table: &str) -> i64 {
        let conn = rusqlite::Connection::open(self.file("sigil.db")).unwrap();
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
    }

    /// Mints an admin credential with `sigil admin credential --name NAME`
    /// (plus `extra` flags) into `DIR/../NAME`; returns (chain PEM, key PEM,
    /// output dir).
    pub fn admin_credential(&self, name: &str, extra: &[&str]) -> (String, String, PathBuf) {
        let out = self.temp.path().join(name);
        let mut args = vec![
            "admin",
            "credential",
            "--data-dir",
            self.arg(),
            "--name",
            name,
        ];
        args.extend_from_slice(extra);
        args.extend(["--out", out.to_str().unwrap()]);
        let minted = sigil(&args);
        assert!(minted.status.success(), "{}", stderr(&minted));
        let chain = std::fs::read_to_string(out.join("svid.pem")).unwrap();
        let key = std::fs::read_to_string(out.join("svid.key")).unwrap();
        (chain, key, out)
    }

    /// `sigil init` with the CA keys encrypted under [`CA_PASSPHRASE`],
    /// kept in `DIR/../ca.pass` (mode 0600), plus `extra` flags; returns
    /// the passphrase file too.
    pub fn init_encrypted(extra: &[&str]) -> (Self, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let temp = tempfile::tempdir().unwrap();
        let pass = temp.path().join("ca.pass");
        std::fs::write(&pass, format!("{CA_PASSPHRASE}\n")).unwrap();
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut args = vec!["--ca-passphrase-file", pass.to_str().unwrap()];
        args.extend_from_slice(extra);
        let dir = Self::init_in(temp, &args);
        (dir, pass)
    }

    /// Starts `sigil serve` on CA keys encrypted under the passphrase in
    /// the file `pass`.
    pub fn start_encrypted(&self, pass: &Path) -> Server {
        Server::start(self, &["--ca-passphrase-file", pass.to_str().unwrap()])
    }

    pub fn start(&self) -> Server {
        Server::start(self, &[])
    }

    pub fn start_with(&self, extra: &[&str]) -> Server {
        Server::start(self, extra)
    }
}

/// An SVID and its key, as an agent holds them.
pub struct Held {
    pub chain_pem: String,
    pub key_pem: String,
    pub serial: String,
}

impl Held {
    /// From an SVID answer and the key its CSR was made with.
    pub fn from_answer(body: &Value, key: &KeyPair) -> Self {
        Self {
            chain_pem: body["cert_chain_pem"].as_str().unwrap().to_owned(),
            key_pem: key.serialize_pem(),
            serial: body["serial"].as_str().unwrap().to_owned(),
        }
    }
}

/// The key ids of a status answer's CAs in `role` (`root`, `next_root`,
/// `previous_root`, `issuing`, `retired`).
pub fn keys_of<'a>(status: &'a Value, role: &str) -> Vec<&'a str> {
    status["issuers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|issuer| issuer["role"] == role)
        .map(|issuer| issuer["key_id"].as_str().unwrap())
        .collect()
}

/// Polls `GET /admin/v1/status` as `client` until `done` holds of it
/// (failing after `within`, naming `what`); returns that status.
pub fn wait_for_status(
    client: &CaClient,
    within: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let status = status_as(client);
        if done(&status) {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never saw {what}: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET /admin/v1/status` as `client`.
pub fn status_as(client: &CaClient) -> Value {
    block_on(client.get("/admin/v1/status"))
        .unwrap()
        .json()
        .unwrap()
}

/// A running `sigil serve`; killed on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub printed_url: String,
    pub data_dir: PathBuf,
    pub bundle_pem: String,
    pub stdout_rest: mpsc::Receiver<String>,
    pub log_path: PathBuf,
}

impl Server {
    pub fn start(dir: &DataDir, extra: &[&str]) -> Self {
        let mut args = vec!["serve", "--data-dir", dir.arg(), "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Self::spawn(&args, dir.path.clone())
    }

    pub fn spawn(args: &[&str], data_dir: PathBuf) -> Self {
        Self::spawn_logging(args, data_dir, "warn")
    }

    /// Starts `sigil serve` with this `RUST_LOG`; its log goes to
    /// [`Server::log`] (and to the test's output if the test fails).
    pub fn spawn_logging(args: &[&str], data_dir: PathBuf, rust_log: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sigil"));
        command
            .args(args)
            .env_remove("SIGIL_CA_PASSPHRASE")
            .env_remove("SIGIL_CA_PASSPHRASE_FILE");
        Self::spawn_command(command, data_dir, rust_log)
    }

    /// Starts `sigil serve` as `command` (which may wrap it) runs it.
    pub fn spawn_command(mut command: Command, data_dir: PathBuf, rust_log: &str) -> Self {
        let log_path = data_dir.with_extension("serve.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = command
            .env_remove("SIGIL_DATA_DIR")
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawning sigil serve");
        let stdout = child.stdout.take().unwrap();
        let (lines, rest) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let printed_url = loop {
            let line = rest
                .recv_timeout(Duration::from_secs(30))
                .expect("sigil serve did not print its URL");
            if let Some(url) = line.strip_prefix("listening on ") {
                break url.to_owned();
            }
        };
        let bundle_pem = std::fs::read_to_string(data_dir.join("bundle.pem")).unwrap();
        Self {
            child,
            url: printed_url.clone(),
            printed_url,
            data_dir,
            bundle_pem,
            stdout_rest: rest,
            log_path,
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn anonymous(&self) -> CaClient {
        CaClient::new(&self.url, &self.bundle_pem, None).unwrap()
    }

    pub fn client_as(&self, chain_pem: &str, key_pem: &str) -> CaClient {
        CaClient::new(
            &self.url,
            &self.bundle_pem,
            Some(ClientIdentity { chain_pem, key_pem }),
        )
        .unwrap()
    }

    pub fn admin(&self) -> CaClient {
        let chain = std::fs::read_to_string(self.data_dir.join("admin/svid.pem")).unwrap();
        let key = std::fs::read_to_string(self.data_dir.join("admin/svid.key")).unwrap();
        self.client_as(&chain, &key)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.signal("-TERM")
    }

    /// Sends a signal (`-INT`, `-TERM`) and waits for the exit status.
    pub fn signal(mut self, signal: &str) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args([signal, &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    pub fn token(&self, spiffe_id: &str) -> String {
        self.token_with(json!({"spiffe_id": spiffe_id}))
    }

    pub fn token_with(&self, body: Value) -> String {
        let response = block_on(self.admin().post_json("/admin/v1/join-tokens", &body)).unwrap();
        assert_eq!(
            response.status,
            201,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        let created: Value = response.json().unwrap();
        created["token"].as_str().unwrap().to_owned()
    }

    pub fn redeem(&self, token: &str, csr_pem: &str) -> Response {
        self.post_svid(json!({
            "csr": csr_pem,
            "attestation": {"type": "join_token", "token": token},
        }))
    }

    /// Attests `spiffe_id` with a new join token and a new P-256 key.
    pub fn attest(&self, spiffe_id: &str) -> Held {
        let (key, csr) = p256_csr();
        let response = self.redeem(&self.token(spiffe_id), &csr);
        assert_eq!(response.status, 200);
        Held::from_answer(&response.json().unwrap(), &key)
    }

    /// Renews `held` over mTLS with a new key; the renewal must succeed.
    pub fn renew(&self, held: &Held) -> Held {
        let (key, csr) = p256_csr();
        let renewed = block_on(
            self.client_as(&held.chain_pem, &held.key_pem)
                .post_json("/v1/renew", &json!({"csr": csr})),
        )
        .unwrap();
        assert_eq!(
            renewed.status,
            200,
            "{}",
            String::from_utf8_lossy(&renewed.body)
        );
        Held::from_answer(&renewed.json().unwrap(), &key)
    }

    /// `GET /admin/v1/status` as the data dir's admin.
    pub fn status(&self) -> Value {
        status_as(&self.admin())
    }

    pub fn post_svid(&self, body: Value) -> Response {
        block_on(self.anonymous().post_json("/v1/svid", &body)).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- sigil serve log ---\n{}", self.log());
        }
    }
}

/// Runs a future to completion on a fresh runtime (tests are synchronous).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// A fresh P-256 key and a CSR for it that asks for nothing.
pub fn p256_csr() -> (KeyPair, String) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    (key, csr)
}

/// The JSON error code of a response.
pub fn error_code(response: &Response) -> String {
    let body: Value = response.json().unwrap_or_else(|e| panic!("{e}"));
    body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Asserts a JSON error with this status and code.
pub fn assert_error(response: &Response, status: u16, code: &str) {
    assert_eq!(
        (response.status.as_u16(), error_code(response).as_str()),
        (status, code),
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.content_type.as_deref(), Some("application/json"));
}

/// The certificates of a PEM chain, DER.
pub fn chain_der(pem_text: &str) -> Vec<Vec<u8>> {
    pem::parse_many(pem_text)
        .unwrap()
        .into_iter()
        .map(|block| block.into_contents())
        .collect()
}

/// Runs openssl; panics if it cannot be started.
pub fn openssl(args: &[&str], dir: &Path) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (see .ci/run)")
}

/// `openssl verify -crl_check_all` of a PEM chain (leaf first) against the
/// data dir's bundle and these PEM CRLs: whether it passed, and what
/// openssl said.
pub fn openssl_verify_chain(dir: &DataDir, chain_pem: &str, crls_pem: &[u8]) -> (bool, String) {
    let work = dir.temp.path();
    std::fs::write(work.join("crls.pem"), crls_pem).unwrap();
    std::fs::write(work.join("chain.pem"), chain_pem).unwrap();
    let out = openssl(
        &[
            "verify",
            "-crl_check_all",
            "-CRLfile",
            "crls.pem",
            "-CAfile",
            dir.file("bundle.pem").to_str().unwrap(),
            "-untrusted",
            "chain.pem",
            "chain.pem",
        ],
        work,
    );
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

/// `sigil-verifier`'s verdict on a PEM chain (leaf first), as a relying
/// party in this trust domain that allows every workload sees it, with
/// this bundle and these PEM CRLs (CRLs required for every issuer).
pub fn sigil_verifier_verdict(
    bundle_pem: &str,
    crls_pem: &[u8],
    chain_pem: &str,
) -> Result<(), String> {
    use sigil_verifier::{Policy, SpiffeClientVerifier, TrustSource};
    let source = TrustSource::from_pem(bundle_pem.as_bytes())
        .unwrap()
        .with_crls_pem(crls_pem)
        .map_err(|e| e.to_string())?;
    let verifier = SpiffeClientVerifier::builder(
        source,
        Policy::deny_all().allow("spiffe://example.org/*").unwrap(),
    )
    .client_verifier();
    let chain: Vec<rustls_pki_types::CertificateDer<'static>> = chain_der(chain_pem)
        .into_iter()
        .map(rustls_pki_types::CertificateDer::from)
        .collect();
    verifier
        .verify(&chain[0], &chain[1..], rustls_pki_types::UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The subject alternative names of a certificate, DER, as x509-parser
/// debug-prints them (`URI("spiffe://…")`, `DNSName("…")`, …).
pub fn sans_of(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|n| format!("{n:?}"))
                .collect()
        })
        .unwrap_or_default()
}
