//! `sigil.toml` as an operator meets it: the server honours the file, flags
//! win over it, and every configuration error stops `sigil serve` before it
//! listens, naming the file, the key and its line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{Value, json};

/// Writes `DATA_DIR/sigil.toml`.
fn write_config(dir: &DataDir, text: &str) {
    std::fs::write(dir.file("sigil.toml"), text).unwrap();
}

/// Runs `sigil serve` to its (failed) end; returns its stderr.
fn serve_fails(args: &[&str]) -> String {
    let mut all = vec!["serve"];
    all.extend_from_slice(args);
    let out = sigil(&all);
    assert!(!out.status.success(), "serve started: {}", stdout(&out));
    assert!(
        !stdout(&out).contains("listening on"),
        "serve listened before it failed"
    );
    stderr(&out)
}

/// Seconds from now until the end of an SVID's validity.
fn seconds_left(server: &Server) -> i64 {
    let id = format!(
        "spiffe://{TRUST_DOMAIN}/agents/{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let token = server.token(&id);
    let (_, csr) = p256_csr();
    let response = server.redeem(&token, &csr);
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let body: Value = response.json().unwrap();
    let leaf = &chain_der(body["cert_chain_pem"].as_str().unwrap())[0];
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    cert.validity().not_after.timestamp() - i64::try_from(now).unwrap()
}

fn assert_about(seconds: i64, expected: i64) {
    assert!(
        (expected - 15..=expected + 1).contains(&seconds),
        "an SVID living {seconds}s, expected about {expected}s"
    );
}

#[test]
fn the_server_honours_the_file_in_the_data_dir() {
    let dir = DataDir::init();
    write_config(
        &dir,
        "# Loopback, but not the default address.\n\
         listen = \"127.0.0.2:0\"\n\
         default_ttl = \"2m\"\n\
         min_ttl = \"30s\"\n\
         max_ttl = \"10m\"\n",
    );
    // No --listen: the file's address is used.
    let server = Server::spawn(&["serve", "--data-dir", dir.arg()], dir.path.clone());
    assert!(
        server.printed_url.starts_with("https://127.0.0.2:"),
        "{}",
        server.printed_url
    );
    assert_about(seconds_left(&server), 120);
    // The file's max_ttl bounds what a request may ask for.
    let token = server.token("spiffe://example.org/agents/long");
    let (_, csr) = p256_csr();
    let response = server.post_svid(json!({
        "csr": csr,
        "attestation": {"type": "join_token", "token": token},
        "ttl_seconds": 3600,
    }));
    assert_eq!(response.status, 400);
    let body = String::from_utf8_lossy(&response.body);
    assert!(body.contains("between 30 and 600"), "{body}");
}

#[test]
fn flags_win_over_the_file_named_by_config() {
    let dir = DataDir::init();
    // The default file is not read when --config names another.
    write_config(&dir, "not toml at all [\n");
    let elsewhere = dir.temp.path().join("elsewhere.toml");
    std::fs::write(&elsewhere, "default_ttl = \"2m\"\ncrl_ttl = \"10m\"\n").unwrap();
    let server = dir.start_with(&[
        "--config",
        elsewhere.to_str().unwrap(),
        "--default-ttl",
        "3m",
    ]);
    assert_about(seconds_left(&server), 180);
}

#[test]
fn unknown_keys_stop_serve_naming_the_key_and_its_line() {
    let dir = DataDir::init();
    let path = dir.file("sigil.toml");
    write_config(
        &dir,
        "default_ttl = \"1h\"\n\nlisten_address = \"0.0.0.0:8443\"\n",
    );
    let error = serve_fails(&["--data-dir", dir.arg(), "--listen", "127.0.0.1:0"]);
    for part in [
        path.to_str().unwrap(),
        "line 3",
        "key `listen_address`",
        "unknown field `listen_address`",
    ] {
        assert!(error.contains(part), "{part} missing from: {error}");
    }

    // Inside an attestor table too.
    write_config(
        &dir,
        "[[attestor.jwt]]\n\
         name = \"k8s\"\n\
         issuer = \"https://kubernetes.default.svc\"\n\
         jwks = { file = \"jwks.json\" }\n\
         audience = [\"sigil\"]\n",
    );
    let error = serve_fails(&["--data-dir", dir.arg(), "--listen", "127.0.0.1:0"]);
    for part in [
        "line 5",
        "key `attestor.jwt[0].audience`",
        "unknown field `audience`",
    ] {
        assert!(error.contains(part), "{part} missing from: {error}");
    }
}

#[test]
fn bad_values_stop_serve_naming_the_key() {
    let dir = DataDir::init();
    let serve = || serve_fails(&["--data-dir", dir.arg(), "--listen", "127.0.0.1:0"]);

    write_config(&dir, "default_ttl = \"1h\"\nmax_ttl = \"forever\"\n");
    let error = serve();
    for part in [
        "line 2",
        "key `max_ttl`",
        "'forever' does not start with a number",
    ] {
        assert!(error.contains(part), "{part} missing from: {error}");
    }

    // In range for its type, but not for the server.
    write_config(&dir, "crl_ttl = \"10m\"\ncrl_resign = \"10m\"\n");
    let error = serve();
    assert!(error.contains("crl_resign in"), "{error}");

    write_config(&dir, "max_ttl = \"60d\"\n");
    let error = serve();
    assert!(error.contains("maximum from max_ttl in"), "{error}");

    // Issuing CAs so long-lived that every new root would be due for
    // rotation at once.
    write_config(&dir, "");
    let error = serve_fails(&[
        "--data-dir",
        dir.arg(),
        "--listen",
        "127.0.0.1:0",
        "--issuing-ttl",
        "3650d",
    ]);
    for part in ["--issuing-ttl", "half a root's 3650d life"] {
        assert!(error.contains(part), "{part} missing from: {error}");
    }
}

#[test]
fn a_missing_config_file_stops_serve() {
    let dir = DataDir::init();
    let missing = dir.temp.path().join("missing.toml");
    let error = serve_fails(&[
        "--data-dir",
        dir.arg(),
        "--listen",
        "127.0.0.1:0",
        "--config",
        missing.to_str().unwrap(),
    ]);
    assert!(
        error.contains(missing.to_str().unwrap()) && error.contains("does not exist"),
        "{error}"
    );
}

#[test]
fn admin_ids_outside_the_cas_namespace_stop_serve() {
    let dir = DataDir::init();
    for (ids, expected) in [
        (r#"["spiffe://example.org/agents/*"]"#, "/sigil/"),
        (r#"["spiffe://example.org/sigil/*"]"#, "/sigil/"),
        (
            r#"["spiffe://example.org/sigil/server"]"#,
            "server's own identity",
        ),
        (r#"["spiffe://other.org/sigil/admin/x"]"#, "trust domain"),
    ] {
        write_config(&dir, &format!("admin_ids = {ids}\n"));
        let error = serve_fails(&["--data-dir", dir.arg(), "--listen", "127.0.0.1:0"]);
        assert!(error.contains("admin_ids in"), "{ids}: {error}");
        assert!(error.contains(expected), "{ids}: {error}");
    }
}

#[test]
fn configured_admin_ids_admit_credentials_under_them_and_only_them() {
    let dir = DataDir::init();
    write_config(
        &dir,
        "admin_ids = [\n\
         \x20 \"spiffe://example.org/sigil/admin/ops\",\n\
         \x20 \"spiffe://example.org/sigil/admin/team/*\",\n\
         ]\n",
    );
    let server = dir.start();
    let create_token = |chain: &str, key: &str| {
        block_on(server.client_as(chain, key).post_json(
            "/admin/v1/join-tokens",
            &json!({"spiffe_id": "spiffe://example.org/agents/x"}),
        ))
        .unwrap()
    };
    for name in ["ops", "team/alice"] {
        let (chain, key, _) = dir.admin_credential(name, &[]);
        let response = create_token(&chain, &key);
        assert_eq!(
            response.status,
            201,
            "{name}: {}",
            String::from_utf8_lossy(&response.body)
        );
    }
    // The credential `sigil init` made, /sigil/admin/admin, is no longer an
    // admin; nor is a sibling of the exact ID.
    let init = |file| std::fs::read_to_string(Path::new(&dir.file("admin")).join(file)).unwrap();
    assert_error(
        &create_token(&init("svid.pem"), &init("svid.key")),
        403,
        "forbidden",
    );
    let (chain, key, _) = dir.admin_credential("ops2", &[]);
    assert_error(&create_token(&chain, &key), 403, "forbidden");
    // The server said so at start-up.
    assert!(
        server
            .log()
            .contains("leaves out the data dir's admin credential"),
        "{}",
        server.log()
    );
}

/// An `[[attestor.jwt]]` table, complete but for the `jwks`, `algorithms`
/// and `spiffe_id` given; its JWKS file, jwks.json, holds one P-256 key.
fn jwt_attestor(dir: &DataDir, jwks: &str, algorithms: &str, spiffe_id: &str) -> String {
    let zeros = "A".repeat(43);
    std::fs::write(
        dir.file("jwks.json"),
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k", "x": zeros, "y": zeros}]})
            .to_string(),
    )
    .unwrap();
    format!(
        "[[attestor.jwt]]\n\
         name = \"k8s-prod\"\n\
         issuer = \"https://kubernetes.default.svc\"\n\
         jwks = {jwks}\n\
         audiences = [\"sigil\"]\n\
         algorithms = {algorithms}\n\
         spiffe_id = \"{spiffe_id}\"\n"
    )
}

#[test]
fn attestor_errors_stop_serve_naming_the_attestor_and_the_key() {
    let dir = DataDir::init();
    let path = dir.file("sigil.toml");
    let serve = || serve_fails(&["--data-dir", dir.arg(), "--listen", "127.0.0.1:0"]);
    let file = r#"{ file = "jwks.json" }"#;
    let es256 = r#"["ES256"]"#;
    let template = "spiffe://example.org/k8s/{/sub}";
    // The same table, well formed, starts (and is stopped at once).
    write_config(&dir, &jwt_attestor(&dir, file, es256, template));
    let server = dir.start();
    assert!(server.terminate().success());

    let missing = dir.file("k8s-jwks.json");
    let cases: Vec<(String, Vec<String>)> = vec![
        // Unknown keys, in the JWKS table and in a second attestor.
        (
            jwt_attestor(
                &dir,
                r#"{ file = "jwks.json", refresh_rate = "5m" }"#,
                es256,
                template,
            ),
            vec![
                "line 4".to_owned(),
                "key `attestor.jwt[0].jwks.refresh_rate`".to_owned(),
                "unknown field `refresh_rate`".to_owned(),
            ],
        ),
        (
            format!(
                "{}\n{}require_jwt = true\n",
                jwt_attestor(&dir, file, es256, template),
                jwt_attestor(&dir, file, es256, template).replace("k8s-prod", "k8s-dev")
            ),
            vec![
                "line 16".to_owned(),
                "key `attestor.jwt[1].require_jwt`".to_owned(),
                "unknown field `require_jwt`".to_owned(),
            ],
        ),
        // Templates that could reach the CA's /sigil/, or leave its trust
        // domain, or are not templates.
        (
            jwt_attestor(&dir, file, es256, "spiffe://example.org/{/sub}"),
            vec![
                "`spiffe_id`".to_owned(),
                "'spiffe://example.org/{/sub}'".to_owned(),
                "the first path segment must be literal".to_owned(),
            ],
        ),
        (
            jwt_attestor(&dir, file, es256, "spiffe://example.org/sigil/{/sub}"),
            vec![
                "`spiffe_id`".to_owned(),
                "makes IDs under the CA's reserved /sigil/".to_owned(),
            ],
        ),
        (
            jwt_attestor(&dir, file, es256, "spiffe://other.org/k8s/{/sub}"),
            vec![
                "`spiffe_id`".to_owned(),
                "must start with spiffe://example.org/".to_owned(),
            ],
        ),
        (
            jwt_attestor(&dir, file, es256, "spiffe://example.org/k8s/{sub}"),
            vec!["`spiffe_id`".to_owned(), "is not a JSON Pointer".to_owned()],
        ),
        (
            jwt_attestor(&dir, file, es256, "spiffe://example.org/k8s/bot-{/sub}"),
            vec![
                "`spiffe_id`".to_owned(),
                "must fill whole path segments".to_owned(),
            ],
        ),
        (
            jwt_attestor(&dir, file, es256, "spiffe://example.org/k8s/bot"),
            vec!["`spiffe_id`".to_owned(), "names no claim".to_owned()],
        ),
        // A JWKS file that is missing.
        (
            jwt_attestor(&dir, r#"{ file = "k8s-jwks.json" }"#, es256, template),
            vec![
                "`jwks`".to_owned(),
                format!("JWKS file {}", missing.display()),
                "No such file".to_owned(),
            ],
        ),
        // Symmetric or no signatures.
        (
            jwt_attestor(&dir, file, r#"["ES256", "HS256"]"#, template),
            vec![
                "`algorithms`".to_owned(),
                "HS256 (HMAC) is never accepted".to_owned(),
            ],
        ),
        (
            jwt_attestor(&dir, file, r#"["none"]"#, template),
            vec![
                "`algorithms`".to_owned(),
                "alg none is never accepted".to_owned(),
            ],
        ),
        // A JWKS URL over plain HTTP, or both a file and a URL.
        (
            jwt_attestor(
                &dir,
                r#"{ url = "http://idp.example.org/jwks" }"#,
                es256,
                template,
            ),
            vec![
                "`jwks`".to_owned(),
                r#"JWKS url "http://idp.example.org/jwks" must be https"#.to_owned(),
            ],
        ),
        (
            jwt_attestor(
                &dir,
                r#"{ url = "https://idp.example.org/jwks", refresh = "1s" }"#,
                es256,
                template,
            ),
            vec![
                "`jwks`".to_owned(),
                "`refresh` must be at least 30s".to_owned(),
            ],
        ),
        (
            jwt_attestor(
                &dir,
                r#"{ file = "jwks.json", url = "https://idp.example.org/jwks" }"#,
                es256,
                template,
            ),
            vec![
                "`jwks`".to_owned(),
                "give the JWKS as `file` or as `url`, exactly one".to_owned(),
            ],
        ),
    ];
    for (text, parts) in cases {
        write_config(&dir, &text);
        let error = serve();
        assert!(error.contains(path.to_str().unwrap()), "{text}\n{error}");
        for part in parts {
            assert!(
                error.contains(&part),
                "{part} missing from: {error}\n{text}"
            );
        }
        // Errors found when the attestor is built name it.
        if !error.contains("unknown field") {
            assert!(error.contains(r#"attestor "k8s-prod""#), "{error}");
        }
    }
}
