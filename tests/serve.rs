//! `sigil init` and `sigil serve` as an operator meets them: the printed
//! URL, curl against the bundle, restarts, the SPIFFE bundle, dev mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use base64::Engine;
use common::*;
use serde_json::{Value, json};

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--fail-with-body"])
        .args(args)
        .output()
        .expect("curl is installed (see .ci/run)")
}

#[test]
fn the_printed_url_works_with_curl_against_the_bundle() {
    let dir = DataDir::init();
    let server = dir.start();
    assert!(
        server.printed_url.starts_with("https://127.0.0.1:"),
        "{}",
        server.printed_url
    );
    assert_eq!(dir.read("server.url").trim(), server.printed_url);
    let bundle = dir.file("bundle.pem");
    let bundle = bundle.to_str().unwrap();
    for url in [
        format!("{}/healthz", server.printed_url),
        format!("{}/readyz", server.printed_url),
        format!("https://localhost:{}/v1/bundle", server.port()),
    ] {
        let out = curl(&["--cacert", bundle, &url]);
        assert!(out.status.success(), "{url}: {}", stderr(&out));
    }
    let out = curl(&[
        "--cacert",
        bundle,
        &format!("{}/v1/bundle", server.printed_url),
    ]);
    assert_eq!(stdout(&out), dir.bundle_pem());
    // Without the bundle, curl does not trust the server.
    let untrusted = curl(&[&format!("{}/healthz", server.printed_url)]);
    assert!(!untrusted.status.success());
}

#[test]
fn restarting_keeps_the_ca_and_every_record() {
    let dir = DataDir::init();
    let server = dir.start();
    let used = server.token("spiffe://example.org/agents/before");
    let waiting = server.token("spiffe://example.org/agents/after");
    let (_, csr) = p256_csr();
    let first: Value = server.redeem(&used, &csr).json().unwrap();
    let bundle_before = block_on(server.anonymous().get("/v1/bundle")).unwrap().body;
    let status = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let records = dir.count("certificates");

    let server = dir.start();
    let bundle_after = block_on(server.anonymous().get("/v1/bundle")).unwrap().body;
    assert_eq!(
        bundle_after, bundle_before,
        "the same trust bundle is served"
    );
    assert_error(&server.redeem(&used, &csr), 401, "invalid_attestation");
    let second: Value = server.redeem(&waiting, &csr).json().unwrap();
    let issuing = |body: &Value| chain_der(body["cert_chain_pem"].as_str().unwrap())[1].clone();
    assert_eq!(issuing(&first), issuing(&second), "same issuing CA");
    // The restart minted a server certificate and the new SVID; nothing was lost.
    assert_eq!(dir.count("certificates"), records + 2);
    let conn = rusqlite::Connection::open(dir.file("sigil.db")).unwrap();
    let kept: i64 = conn
        .query_row(
            "SELECT count(*) FROM certificates WHERE serial = ?1",
            [first["serial"].as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 1);
}

#[test]
fn init_writes_private_keys_0600_and_prints_the_fingerprint_of_the_bundle() {
    let dir = DataDir::init();
    for key in [
        "ca/root.key",
        "ca/issuing.key",
        "admin/svid.key",
        "sigil.db",
    ] {
        let mode = std::fs::metadata(dir.file(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    let root_der = &chain_der(&dir.bundle_pem())[0];
    let digest = ring::digest::digest(&ring::digest::SHA256, root_der);
    assert_eq!(dir.fingerprint, format!("sha256:{}", hex::encode(digest)));
    let printed = sigil(&["fingerprint", "--data-dir", dir.arg()]);
    assert_eq!(stdout(&printed).trim(), dir.fingerprint);
}

#[test]
fn init_accepts_an_empty_directory_and_refuses_one_with_content() {
    let temp = tempfile::tempdir().unwrap();
    let empty = temp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let ok = sigil(&[
        "init",
        "--trust-domain",
        "example.org",
        "--data-dir",
        empty.to_str().unwrap(),
    ]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let again = sigil(&[
        "init",
        "--trust-domain",
        "example.org",
        "--data-dir",
        empty.to_str().unwrap(),
    ]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    let bad = sigil(&[
        "init",
        "--trust-domain",
        "Example.ORG",
        "--data-dir",
        temp.path().join("x").to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(!temp.path().join("x").exists());
}

#[test]
fn the_spiffe_bundle_is_a_jwks_of_the_roots() {
    for (key_type, kty) in [("p256", "EC"), ("ed25519", "OKP")] {
        let dir = DataDir::init_with(&["--key-type", key_type]);
        let server = dir.start();
        let response = block_on(server.anonymous().get("/v1/bundle.spiffe")).unwrap();
        assert_eq!(response.status, 200);
        let bundle: Value = response.json().unwrap();
        assert_eq!(bundle["spiffe_sequence"], 1);
        assert!(bundle["spiffe_refresh_hint"].as_u64().unwrap() > 0);
        let key = &bundle["keys"][0];
        assert_eq!(key["use"], "x509-svid");
        assert_eq!(key["kty"], kty);
        let x5c = base64::engine::general_purpose::STANDARD
            .decode(key["x5c"][0].as_str().unwrap())
            .unwrap();
        assert_eq!(x5c, chain_der(&dir.bundle_pem())[0]);

        // An SVID from this CA verifies with openssl against the bundle.
        let token = server.token("spiffe://example.org/agents/k");
        let (_, csr) = p256_csr();
        let body: Value = server.redeem(&token, &csr).json().unwrap();
        std::fs::write(
            dir.temp.path().join("chain.pem"),
            body["cert_chain_pem"].as_str().unwrap(),
        )
        .unwrap();
        let verify = openssl(
            &[
                "verify",
                "-CAfile",
                dir.file("bundle.pem").to_str().unwrap(),
                "-untrusted",
                "chain.pem",
                "chain.pem",
            ],
            dir.temp.path(),
        );
        assert!(verify.status.success(), "{key_type}: {}", stderr(&verify));
    }
}

#[test]
fn dev_mode_runs_on_certs_dev_and_a_plain_serve_refuses_those_keys() {
    let temp = tempfile::tempdir().unwrap();
    let dev_dir = temp.path().join("dev");
    let server = Server::spawn(
        &[
            "serve",
            "--dev",
            "--data-dir",
            dev_dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        dev_dir.clone(),
    );
    let banner: Vec<String> = std::iter::from_fn(|| {
        server
            .stdout_rest
            .recv_timeout(std::time::Duration::from_secs(5))
            .ok()
    })
    .take_while(|line| !line.contains("openssl x509"))
    .collect();
    let banner = banner.join("\n");
    assert!(banner.contains("DEVELOPMENT MODE"), "{banner}");
    assert!(banner.contains("sigil token create"), "{banner}");
    for key in ["ca/root.key", "ca/issuing.key", "admin/svid.key"] {
        let mode = std::fs::metadata(dev_dir.join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    assert_eq!(
        std::fs::read_to_string(dev_dir.join("bundle.pem")).unwrap(),
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/certs-dev/bundle.pem"))
            .unwrap()
    );
    let token = server.token("spiffe://dev.sigil.test/agents/demo");
    let (_, csr) = p256_csr();
    let body: Value = server.redeem(&token, &csr).json().unwrap();
    assert_eq!(body["spiffe_id"], "spiffe://dev.sigil.test/agents/demo");
    drop(server);

    let refused = sigil(&[
        "serve",
        "--data-dir",
        dev_dir.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--dev"), "{}", stderr(&refused));
}

#[test]
fn serve_explains_a_missing_ca_and_bad_ttl_bounds() {
    let temp = tempfile::tempdir().unwrap();
    let missing = temp.path().join("none");
    let out = sigil(&[
        "serve",
        "--data-dir",
        missing.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("sigil init"), "{}", stderr(&out));

    let dir = DataDir::init();
    let out = sigil(&[
        "serve",
        "--data-dir",
        dir.arg(),
        "--listen",
        "127.0.0.1:0",
        "--min-ttl",
        "2h",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("default TTL"), "{}", stderr(&out));
}

#[test]
fn keys_and_tokens_never_reach_the_log_even_at_trace_level() {
    let dir = DataDir::init();
    let server = Server::spawn_logging(
        &["serve", "--data-dir", dir.arg(), "--listen", "127.0.0.1:0"],
        dir.path.clone(),
        "trace",
    );
    let token = server.token("spiffe://example.org/agents/quiet");
    let (key, csr) = p256_csr();
    assert_eq!(server.redeem(&token, &csr).status, 200);
    let log = server.log();
    assert!(log.contains("svid.issue"), "the log is on");
    let secret = join_token_secret(&token);
    assert!(
        !log.contains(secret),
        "the join token's secret is in the log"
    );
    let key_material = |pem_text: &str| -> String {
        pem_text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect()
    };
    for (name, pem_text) in [
        ("root key", dir.read("ca/root.key")),
        ("issuing key", dir.read("ca/issuing.key")),
        ("admin key", dir.read("admin/svid.key")),
        ("agent key", key.serialize_pem()),
    ] {
        let body = key_material(&pem_text);
        for chunk in body.as_bytes().chunks(24) {
            let chunk = std::str::from_utf8(chunk).unwrap();
            assert!(!log.contains(chunk), "{name} material is in the log");
        }
    }
}

#[test]
fn listening_on_every_ipv6_interface_the_admin_commands_reach_the_server_over_loopback() {
    let dir = DataDir::init();
    let server = Server::spawn(
        &["serve", "--data-dir", dir.arg(), "--listen", "[::]:0"],
        dir.path.clone(),
    );
    assert!(
        server.printed_url.starts_with("https://[::]:"),
        "{}",
        server.printed_url
    );
    assert!(dir.read("server.url").starts_with("https://[::1]:"));
    let created = sigil(&[
        "token",
        "create",
        "--data-dir",
        dir.arg(),
        "--spiffe-id",
        "spiffe://example.org/agents/v6",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
}

#[test]
fn over_http2_early_refusals_of_large_bodies_are_still_json() {
    let dir = DataDir::init();
    let server = dir.start();
    let big = dir.temp.path().join("big");
    std::fs::write(&big, vec![b'a'; 300 * 1024]).unwrap();
    let bundle = dir.file("bundle.pem");
    for (path, content_type, code) in [
        ("/nope", "application/json", "payload_too_large"),
        ("/v1/svid", "text/plain", "payload_too_large"),
        (
            "/admin/v1/join-tokens",
            "application/json",
            "payload_too_large",
        ),
    ] {
        let out = Command::new("curl")
            .args(["-sS", "--http2", "--cacert", bundle.to_str().unwrap()])
            .args(["-H", &format!("content-type: {content_type}")])
            .args(["--data-binary", &format!("@{}", big.display())])
            .arg(format!("{}{path}", server.url))
            .output()
            .unwrap();
        assert!(out.status.success(), "{path}: {}", stderr(&out));
        let body: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(body["error"]["code"], code, "{path}");
    }
}

#[test]
fn a_client_that_stops_sending_headers_is_disconnected() {
    let dir = DataDir::init();
    let server = dir.start();
    assert_closes_after(&server, "http/1.1", b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
}

#[test]
fn sigint_shuts_the_server_down_gracefully_too() {
    let dir = DataDir::init();
    let server = dir.start();
    let status = server.signal("-INT");
    assert!(status.success(), "{status}");
}

#[test]
fn one_address_cannot_take_every_connection() {
    use std::io::Read;
    let dir = DataDir::init();
    let server = dir.start_with(&["--max-connections", "8", "--max-connections-per-ip", "4"]);
    let port = server.port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Four silent connections from 127.0.0.2 take that address's share.
    let held: Vec<tokio::net::TcpStream> = runtime.block_on(async {
        let mut held = Vec::new();
        for _ in 0..4 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            held.push(socket.connect(([127, 0, 0, 1], port).into()).await.unwrap());
        }
        held
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    // A fifth from the same address is closed at once.
    let fifth = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        socket.connect(([127, 0, 0, 1], port).into()).await.unwrap()
    });
    let mut fifth = fifth.into_std().unwrap();
    fifth.set_nonblocking(false).unwrap();
    fifth
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        fifth.read(&mut buf).unwrap_or(usize::MAX),
        0,
        "the fifth connection was not closed"
    );
    // Another address is still served.
    let health = block_on(server.anonymous().get("/healthz")).unwrap();
    assert_eq!(health.status, 200);
    drop(held);
}

#[test]
fn a_connection_that_never_starts_a_request_is_closed() {
    let dir = DataDir::init();
    let server = dir.start();
    // Half an HTTP/2 preface, then silence.
    assert_closes_after(&server, "h2", b"PRI * HTTP/2.0\r\n");
}

/// Opens a TLS connection with this ALPN, sends `sent`, keeps it open, and
/// asserts that the server closes it (openssl sees EOF and exits) within
/// 30 s, without answering 200.
fn assert_closes_after(server: &Server, alpn: &str, sent: &[u8]) {
    use std::io::{Read, Write};
    let mut session = Command::new("openssl")
        .args(["s_client", "-quiet", "-alpn", alpn, "-connect"])
        .arg(format!("127.0.0.1:{}", server.port()))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = session.stdin.take().unwrap();
    stdin.write_all(sent).unwrap();
    stdin.flush().unwrap();
    let mut stdout = session.stdout.take().unwrap();
    let (done, closed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut answer = Vec::new();
        let _ = stdout.read_to_end(&mut answer);
        let _ = done.send(answer);
    });
    let answer = closed.recv_timeout(std::time::Duration::from_secs(30));
    let _ = session.kill();
    let _ = session.wait();
    drop(stdin);
    let answer = answer.expect("the server kept the connection open for 30s");
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
}

#[test]
fn the_public_url_names_the_server_and_every_crl_distribution_point() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--public-url", "https://CA.Example.org:9443"]);
    let token = server.token("spiffe://example.org/agents/p");
    let (_, csr) = p256_csr();
    let body: Value = server.redeem(&token, &csr).json().unwrap();
    std::fs::write(
        dir.temp.path().join("leaf.pem"),
        body["cert_chain_pem"].as_str().unwrap(),
    )
    .unwrap();
    let text = stdout(&openssl(
        &[
            "x509",
            "-in",
            "leaf.pem",
            "-noout",
            "-ext",
            "crlDistributionPoints",
        ],
        dir.temp.path(),
    ));
    assert!(
        text.contains("URI:https://ca.example.org:9443/v1/crl/"),
        "{text}"
    );

    let fetched = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{} </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName",
            server.port()
        ))
        .output()
        .unwrap();
    let sans = stdout(&fetched);
    assert!(
        sans.contains("DNS:ca.example.org") && sans.contains("DNS:localhost"),
        "{sans}"
    );
    assert!(
        sans.contains("URI:spiffe://example.org/sigil/server"),
        "{sans}"
    );
    drop(server);

    for bad in [
        "https://u@ca.example.org",
        "https://ca.example.org/x",
        "http://ca.example.org",
        "https://ca.example.org#f",
    ] {
        let out = sigil(&[
            "serve",
            "--data-dir",
            dir.arg(),
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            bad,
        ]);
        assert!(!out.status.success(), "{bad} was accepted");
        assert!(
            stderr(&out).contains("--public-url"),
            "{bad}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn svids_are_issued_over_http2_and_over_one_kept_alive_http1_connection() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token_with(json!({
        "spiffe_id": "spiffe://example.org/agents/h2",
        "uses": 4,
    }));
    let bundle = dir.file("bundle.pem");
    for version in ["--http2", "--http1.1"] {
        // Two requests in one curl run: the second rides the first one's
        // connection (keep-alive, or a second HTTP/2 stream).
        let bodies: Vec<PathBuf> = (0..2)
            .map(|i| {
                let body = dir.temp.path().join(format!("svid{version}{i}.json"));
                let request = json!({
                    "csr": p256_csr().1,
                    "attestation": {"type": "join_token", "token": token},
                });
                std::fs::write(&body, request.to_string()).unwrap();
                body
            })
            .collect();
        let mut curl = Command::new("curl");
        curl.args(["-sS", version, "--cacert", bundle.to_str().unwrap()]);
        for (i, body) in bodies.iter().enumerate() {
            if i > 0 {
                curl.arg("--next")
                    .args([version, "--cacert", bundle.to_str().unwrap()]);
            }
            curl.args(["-H", "content-type: application/json"])
                .args(["--data-binary", &format!("@{}", body.display())])
                .args(["-w", "\n%{http_code} %{http_version} %{num_connects}\n"])
                .arg(format!("{}/v1/svid", server.url));
        }
        let out = curl.output().unwrap();
        assert!(out.status.success(), "{version}: {}", stderr(&out));
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let expected_version = if version == "--http2" { "2" } else { "1.1" };
        // Each answer: the JSON body, then "code version connects".
        let answers: Vec<(&str, &str)> = lines.chunks(2).map(|pair| (pair[0], pair[1])).collect();
        assert_eq!(answers.len(), 2, "{version}: {text}");
        for (i, (body, status)) in answers.iter().enumerate() {
            let connects = if i == 0 { "1" } else { "0" };
            assert_eq!(
                *status,
                format!("200 {expected_version} {connects}"),
                "{version} request {i}: {body}"
            );
            let svid: Value = serde_json::from_str(body).unwrap();
            assert!(
                svid["cert_chain_pem"]
                    .as_str()
                    .unwrap()
                    .starts_with("-----BEGIN CERTIFICATE-----"),
                "{body}"
            );
        }
    }
}

#[test]
fn serve_raises_its_open_file_limit_to_the_hard_limit() {
    let dir = DataDir::init();
    let limits = |pid: u32| -> (String, String) {
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let line = text
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .unwrap()
            .to_owned();
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "Max open files  SOFT  HARD  files"
        (fields[3].to_owned(), fields[4].to_owned())
    };
    // Started with a soft limit of 256, as a shell with a low limit would.
    let mut command = Command::new("sh");
    command
        .args(["-c", "ulimit -Sn 256 && exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_sigil"))
        .args(["serve", "--data-dir", dir.arg(), "--listen", "127.0.0.1:0"]);
    let server = Server::spawn_command(command, dir.path.clone(), "info");
    let (soft, hard) = limits(server.child.id());
    assert_eq!(soft, hard, "{}", server.log());
    assert_ne!(soft, "256");
}

#[test]
fn serve_refuses_key_files_that_group_or_others_can_read() {
    let dir = DataDir::init();
    for key in ["ca/issuing.key", "ca/root.key", "audit/audit.key"] {
        let path = dir.file(key);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        // Bounded: a server that wrongly starts is stopped, and fails below.
        let out = Command::new("timeout")
            .arg("20")
            .arg(env!("CARGO_BIN_EXE_sigil"))
            .args(["serve", "--data-dir", dir.arg(), "--listen", "127.0.0.1:0"])
            .env_remove("SIGIL_DATA_DIR")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key}: served anyway");
        let message = stderr(&out);
        assert!(
            message.contains(&path.display().to_string())
                && message.contains("readable by group or others")
                && message.contains("chmod 600"),
            "{key}: {message}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // Owner-only again: it serves.
    let server = dir.start();
    assert!(server.url.starts_with("https://"));
}

#[test]
fn systemd_hears_ready_reloading_and_stopping_through_notify_socket() {
    let dir = DataDir::init();
    let socket_path = dir.temp.path().join("notify");
    let systemd = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    systemd
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let next = || {
        let mut buffer = [0u8; 256];
        let read = systemd.recv(&mut buffer).unwrap();
        String::from_utf8(buffer[..read].to_vec()).unwrap()
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_sigil"));
    command
        .args(["serve", "--data-dir", dir.arg(), "--listen", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &socket_path);
    let server = Server::spawn_command(command, dir.path.clone(), "warn");
    // Ready once it listens (the helper waited for the line).
    assert_eq!(next(), "READY=1");
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    assert!(server.signal("-TERM").success());
    assert_eq!(next(), "STOPPING=1");
}
