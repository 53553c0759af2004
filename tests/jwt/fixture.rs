//! A CA with two JWT attestors, as docs/sigil.toml shows them: "k8s-prod"
//! for Kubernetes service-account tokens (RS256 and ES256) and "github"
//! for GitHub Actions OIDC tokens (EdDSA and ES256), each with its JWKS in
//! a file; tokens shaped like the real ones; and the audit log read back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sigil::client::Response;

use crate::common::*;
use crate::signer::{Signer, jwks};

pub(crate) const K8S_ISSUER: &str = "https://kubernetes.default.svc";
pub(crate) const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// What the k8s-prod template makes of the default claims.
pub(crate) const K8S_ID: &str = "spiffe://example.org/k8s/agents/sa/support-bot";
/// What the github template makes of the default claims.
pub(crate) const GITHUB_ID: &str = "spiffe://example.org/ci/github/example/agent/branch";

pub(crate) fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A jti never used before in this test run.
pub(crate) fn fresh_jti() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{nanos:x}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A projected service-account token's claims (Kubernetes 1.29+), for the
/// pod support-bot-… of service account `service_account` in `namespace`.
pub(crate) fn k8s_claims(namespace: &str, service_account: &str) -> Value {
    let now = now();
    json!({
        "aud": ["sigil"],
        "exp": now + 3600,
        "iat": now,
        "iss": K8S_ISSUER,
        "jti": fresh_jti(),
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-a1", "uid": "5f0c1a2b-8d3e-4f60-9a7b-0c1d2e3f4a5b"},
            "pod": {"name": "support-bot-7d9f8c6b5-x2k4p", "uid": "0b2c4d6e-1f3a-4b5c-8d7e-9f0a1b2c3d4e"},
            "serviceaccount": {"name": service_account, "uid": "e1d2c3b4-a596-4788-9a0b-1c2d3e4f5a6b"}
        },
        "nbf": now,
        "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
    })
}

/// A GitHub Actions OIDC token's claims, for a push to main of
/// `repository` ("owner/name").
pub(crate) fn github_claims(repository: &str) -> Value {
    let now = now();
    let owner = repository.split('/').next().unwrap_or_default();
    json!({
        "jti": fresh_jti(),
        "sub": format!("repo:{repository}:ref:refs/heads/main"),
        "aud": "sigil",
        "ref": "refs/heads/main",
        "sha": "8f3c1e9b2d7a4c6e0f1b3d5a7c9e2f4b6d8a0c1e",
        "repository": repository,
        "repository_owner": owner,
        "repository_owner_id": "1234567",
        "run_id": "9876543210",
        "run_number": "42",
        "run_attempt": "1",
        "repository_visibility": "private",
        "repository_id": "7654321",
        "actor_id": "111222",
        "actor": "octocat",
        "workflow": "deploy",
        "head_ref": "",
        "base_ref": "",
        "event_name": "push",
        "ref_protected": "true",
        "ref_type": "branch",
        "workflow_ref": format!("{repository}/.github/workflows/deploy.yml@refs/heads/main"),
        "workflow_sha": "8f3c1e9b2d7a4c6e0f1b3d5a7c9e2f4b6d8a0c1e",
        "job_workflow_ref": format!("{repository}/.github/workflows/deploy.yml@refs/heads/main"),
        "runner_environment": "github-hosted",
        "iss": GITHUB_ISSUER,
        "nbf": now - 5,
        "exp": now + 300,
        "iat": now - 5,
    })
}

/// `sigil.toml` with the two attestors; `k8s_jwks` is the value of the
/// k8s-prod attestor's `jwks` key.
pub(crate) fn config(k8s_jwks: &str) -> String {
    format!(
        r#"# Written by the jwt integration tests, which count refusals
# rather than limit them.
failed_attestation_burst = 1000

[[attestor.jwt]]
name = "k8s-prod"
issuer = "{K8S_ISSUER}"
jwks = {k8s_jwks}
audiences = ["sigil"]
algorithms = ["RS256", "ES256"]
spiffe_id = "spiffe://example.org/k8s/{{/kubernetes.io/namespace}}/sa/{{/kubernetes.io/serviceaccount/name}}"
require = {{ "/kubernetes.io/namespace" = ["agents", "tools"] }}
max_ttl = "1h"

[[attestor.jwt]]
name = "github"
issuer = "{GITHUB_ISSUER}"
jwks = {{ file = "github-jwks.json" }}
audiences = ["sigil"]
algorithms = ["EdDSA", "ES256"]
spiffe_id = "spiffe://example.org/ci/github/{{/repository:segments}}/{{/ref_type}}"
require = {{ "/repository_owner" = "example" }}
max_ttl = "15m"
"#
    )
}

/// The identity providers' keys.
pub(crate) struct Idps {
    pub(crate) k8s_rsa: Signer,
    pub(crate) k8s_ec: Signer,
    pub(crate) github_ed: Signer,
    pub(crate) github_ec: Signer,
}

impl Idps {
    pub(crate) fn new(dir: &DataDir) -> Self {
        Self {
            k8s_rsa: Signer::rsa("k8s-rsa-1", dir.temp.path()),
            k8s_ec: Signer::es256("k8s-ec-1"),
            github_ed: Signer::ed25519("gh-ed-1"),
            github_ec: Signer::es256("gh-ec-1"),
        }
    }

    /// Writes the GitHub JWKS file into the data dir, and the Kubernetes
    /// one too if `k8s_file`.
    pub(crate) fn write_jwks(&self, dir: &DataDir, k8s_file: bool) {
        let write = |name: &str, keys: Value| {
            std::fs::write(dir.file(name), serde_json::to_vec_pretty(&keys).unwrap()).unwrap();
        };
        if k8s_file {
            write("k8s-jwks.json", jwks(&[&self.k8s_rsa, &self.k8s_ec]));
        }
        write(
            "github-jwks.json",
            jwks(&[&self.github_ed, &self.github_ec]),
        );
    }
}

/// A running CA with both attestors.
pub(crate) struct Ca {
    pub(crate) dir: DataDir,
    pub(crate) server: Server,
    pub(crate) idps: Idps,
}

impl Ca {
    /// Both JWKS in files.
    pub(crate) fn start() -> Self {
        let dir = DataDir::init();
        let idps = Idps::new(&dir);
        idps.write_jwks(&dir, true);
        std::fs::write(
            dir.file("sigil.toml"),
            config(r#"{ file = "k8s-jwks.json" }"#),
        )
        .unwrap();
        let server = start_logging(&dir);
        Self { dir, server, idps }
    }

    /// `POST /v1/svid` with a JWT attestation and a fresh CSR.
    pub(crate) fn attest(&self, attestor: &str, token: &str) -> Response {
        attest(&self.server, attestor, token)
    }

    /// Stops the server with SIGTERM, which writes the counted refusals
    /// to the audit log; returns the data dir to read it from.
    pub(crate) fn stop(self) -> (DataDir, String) {
        let log_path = self.server.log_path.clone();
        assert!(self.server.terminate().success());
        (self.dir, std::fs::read_to_string(log_path).unwrap())
    }
}

/// `sigil serve` on the data dir's `sigil.toml`, logging at trace: the
/// tests check that no token shows in the log even then.
pub(crate) fn start_logging(dir: &DataDir) -> Server {
    Server::spawn_logging(
        &["serve", "--data-dir", dir.arg(), "--listen", "127.0.0.1:0"],
        dir.path.clone(),
        "trace",
    )
}

/// `POST /v1/svid` with a JWT attestation and a fresh CSR.
pub(crate) fn attest(server: &Server, attestor: &str, token: &str) -> Response {
    let (_, csr) = p256_csr();
    server.post_svid(json!({
        "csr": csr,
        "attestation": {"type": "jwt", "attestor": attestor, "token": token},
    }))
}

/// The SPIFFE ID of the SVID in a 200 answer.
pub(crate) fn issued_id(response: &Response) -> String {
    let body = String::from_utf8_lossy(&response.body);
    assert_eq!(response.status, 200, "{body}");
    let body: Value = response.json().unwrap();
    let leaf = &chain_der(body["cert_chain_pem"].as_str().unwrap())[0];
    let sans = sans_of(leaf);
    assert_eq!(sans.len(), 1, "{sans:?}");
    let id = sans[0]
        .strip_prefix("URI(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .unwrap_or_else(|| panic!("not a URI SAN: {sans:?}"));
    assert_eq!(body["spiffe_id"].as_str(), Some(id), "{body}");
    id.to_owned()
}

/// Asserts a 401 `invalid_attestation` whose message contains `says`;
/// returns the message.
pub(crate) fn assert_refused(response: &Response, says: &str) -> String {
    assert_error(response, 401, "invalid_attestation");
    let body: Value = response.json().unwrap();
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains(says), "{says:?} missing from {message:?}");
    message
}

/// Every audit record, read from the store of a stopped server.
pub(crate) fn audit_records(dir: &DataDir) -> Vec<Value> {
    let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
    let mut statement = conn
        .prepare("SELECT seq, actor, action, subject, details FROM audit_events ORDER BY seq")
        .unwrap();
    statement
        .query_map([], |row| {
            let details: String = row.get(4)?;
            Ok(json!({
                "seq": row.get::<_, i64>(0)?,
                "actor": row.get::<_, String>(1)?,
                "action": row.get::<_, String>(2)?,
                "subject": row.get::<_, String>(3)?,
                "details": serde_json::from_str::<Value>(&details).unwrap(),
            }))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The refusals the audit log counted, by reason ("jwt ATTESTOR: REASON").
pub(crate) fn refusal_counts(records: &[Value]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for record in records
        .iter()
        .filter(|record| record["action"] == "attestation.refuse")
    {
        assert_eq!(record["actor"], "anonymous", "{record}");
        assert_eq!(record["subject"], "127.0.0.1", "{record}");
        *counts
            .entry(record["details"]["reason"].as_str().unwrap().to_owned())
            .or_default() += record["details"]["count"].as_u64().unwrap();
    }
    counts
}

/// The `svid.issue` records of JWT attestations.
pub(crate) fn jwt_issues(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|record| {
            record["action"] == "svid.issue" && record["details"]["attestation"] == "jwt"
        })
        .collect()
}

/// Asserts that no part of a token (its signature least of all) shows in
/// `text`.
pub(crate) fn assert_nowhere(text: &str, token: &str, what: &str) {
    for part in token.split('.').filter(|part| part.len() > 16) {
        assert!(!text.contains(part), "a token part shows in the {what}");
    }
}
