//! `sigil agent` end to end: the real binary against a real `sigil serve`,
//! writing the files that programs read, renewing them, running the hook,
//! supervising a program, and failing clearly when it cannot go on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::json;

const AGENT_ID: &str = "spiffe://example.org/agents/cli/1";

/// `sigil agent --ca … --fingerprint … --out OUT`, with no token in the
/// environment unless a test sets one.
fn agent(server: &Server, dir: &DataDir, out: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sigil"));
    command
        .args([
            "agent",
            "--ca",
            &server.url,
            "--fingerprint",
            &dir.fingerprint,
        ])
        .arg("--out")
        .arg(out)
        .env_remove("SIGIL_DATA_DIR")
        .env_remove("SIGIL_JOIN_TOKEN")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

/// `sigil agent … --once EXTRA…`, run to completion.
fn once(server: &Server, dir: &DataDir, out: &Path, extra: &[&str]) -> Output {
    agent(server, dir, out)
        .arg("--once")
        .args(extra)
        .output()
        .unwrap()
}

fn leaf(out: &Path) -> Vec<u8> {
    let pem = std::fs::read_to_string(out.join("svid.pem")).unwrap();
    chain_der(&pem).remove(0)
}

fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn not_after_of(der: &[u8]) -> SystemTime {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let seconds = u64::try_from(cert.validity().not_after.timestamp()).unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

/// The serial of the SVID in OUT, if there is a complete one.
fn current_serial(out: &Path) -> Option<String> {
    let pem = std::fs::read_to_string(out.join("svid.pem")).ok()?;
    let der = chain_der(&pem).into_iter().next()?;
    Some(serial_of(&der))
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "sigil agent failed ({}): {}",
        output.status,
        stderr(output)
    );
}

fn assert_fails(output: &Output) -> String {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("error: "), "{text}");
    text
}

/// Polls `done` every 50 ms until it holds; panics with `what` after
/// `limit`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `sigil agent` running in the background, its stderr in a file; killed
/// on drop if it is still running.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn spawn(mut command: Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = command.stdout(Stdio::null()).stderr(file).spawn().unwrap();
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sigil agent did not exit within {limit:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- sigil agent log ---\n{}", self.log());
        }
    }
}

/// A shell script for a supervised program that appends to `file` on
/// `on_signal`, exits with `exit_code` on SIGTERM, and ends by itself if
/// sigil agent disappears (so that no test leaves it behind).
fn program(file: &Path, on_signal: &str, exit_code: u8) -> String {
    let file = file.display();
    format!(
        "trap 'echo {on_signal} >> {file}' {on_signal}; trap 'exit {exit_code}' TERM; \
         while kill -0 $PPID 2>/dev/null; do sleep 0.1; done"
    )
}

#[test]
fn once_writes_the_svid_key_bundle_and_crls_that_openssl_accepts() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    let out = dir.temp.path().join("identity");
    let token_file = dir.temp.path().join("token");
    std::fs::write(&token_file, format!("\n  {token}  \n")).unwrap();

    let output = once(
        &server,
        &dir,
        &out,
        &["--token-file", token_file.to_str().unwrap()],
    );
    assert_ok(&output);
    let log = stderr(&output);
    assert!(
        log.lines()
            .any(|line| line.starts_with(&format!("sigil agent: issued {AGENT_ID} serial "))),
        "{log}"
    );
    assert!(!log.contains(&token), "the token leaked: {log}");

    for file in ["svid.pem", "svid.key", "bundle.pem", "crls.pem"] {
        assert!(out.join(file).is_file(), "{file} is missing");
    }
    let mode = std::fs::metadata(out.join("svid.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let chain = std::fs::read_to_string(out.join("svid.pem")).unwrap();
    assert_eq!(chain_der(&chain).len(), 2, "leaf and issuing CA");
    assert!(
        sans_of(&chain_der(&chain)[0]).contains(&format!("URI({AGENT_ID:?})")),
        "{:?}",
        sans_of(&chain_der(&chain)[0])
    );

    let verified = openssl(
        &[
            "verify",
            "-CAfile",
            "bundle.pem",
            "-untrusted",
            "svid.pem",
            "svid.pem",
        ],
        &out,
    );
    assert!(verified.status.success(), "{}", stdout(&verified));
    let with_crls = openssl(
        &[
            "verify",
            "-crl_check_all",
            "-CRLfile",
            "crls.pem",
            "-CAfile",
            "bundle.pem",
            "-untrusted",
            "svid.pem",
            "svid.pem",
        ],
        &out,
    );
    assert!(
        with_crls.status.success(),
        "{}{}",
        stdout(&with_crls),
        stderr(&with_crls)
    );

    let key_public = openssl(&["pkey", "-in", "svid.key", "-pubout"], &out);
    let cert_public = openssl(&["x509", "-in", "svid.pem", "-pubkey", "-noout"], &out);
    assert!(key_public.status.success() && cert_public.status.success());
    assert_eq!(stdout(&key_public), stdout(&cert_public));
    assert!(stdout(&key_public).contains("BEGIN PUBLIC KEY"));
}

#[test]
fn a_bundle_file_the_environments_token_key_type_and_ttl_are_honoured() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    let out = dir.temp.path().join("identity");

    // Trusting a bundle file rather than a fingerprint.
    let output = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["agent", "--ca", &server.url, "--bundle"])
        .arg(dir.file("bundle.pem"))
        .arg("--out")
        .arg(&out)
        .args(["--once", "--key-type", "ed25519", "--ttl", "90s"])
        .env("SIGIL_JOIN_TOKEN", &token)
        .output()
        .unwrap();
    assert_ok(&output);
    assert!(!stderr(&output).contains(&token));

    let text = openssl(&["x509", "-in", "svid.pem", "-noout", "-text"], &out);
    assert!(stdout(&text).contains("ED25519"), "{}", stdout(&text));
    let left = not_after_of(&leaf(&out))
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(
        (Duration::from_secs(80)..=Duration::from_secs(91)).contains(&left),
        "{left:?} left of a 90 s SVID"
    );
    // Renewing with the Ed25519 key on disk works too.
    assert_ok(&once(&server, &dir, &out, &["--key-type", "ed25519"]));
}

/// Programs that read `svid.key` must be able to load it, whatever the key
/// type. Fails with OpenSSL before 3.5 (such as the 3.0 of current LTS
/// distributions): sigil-agent writes Ed25519 keys as ring's PKCS#8 v2
/// (RFC 5958, with the public key), which those versions refuse
/// (openssl/openssl#9134); PKCS#8 v1 would be read everywhere.
#[test]
fn an_ed25519_svid_key_is_readable_by_openssl() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    let out = dir.temp.path().join("identity");
    let output = once(
        &server,
        &dir,
        &out,
        &["--token", &token, "--key-type", "ed25519"],
    );
    assert_ok(&output);

    let key_public = openssl(&["pkey", "-in", "svid.key", "-pubout"], &out);
    let cert_public = openssl(&["x509", "-in", "svid.pem", "-pubkey", "-noout"], &out);
    assert!(
        key_public.status.success(),
        "openssl cannot read svid.key: {}",
        stderr(&key_public)
    );
    assert_eq!(stdout(&key_public), stdout(&cert_public));
}

#[test]
fn a_restart_renews_without_a_token_until_the_svid_has_expired() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--default-ttl", "2s", "--min-ttl", "1s"]);
    let token = server.token(AGENT_ID);
    let out = dir.temp.path().join("identity");

    assert_ok(&once(&server, &dir, &out, &["--token", &token]));
    let first = serial_of(&leaf(&out));

    let restarted = once(&server, &dir, &out, &[]);
    assert_ok(&restarted);
    let second = leaf(&out);
    assert_ne!(serial_of(&second), first, "renewed over mTLS: a new serial");
    let log = stderr(&restarted);
    assert!(
        log.contains(&format!(
            "sigil agent: renewed {AGENT_ID} serial {} (was {first})",
            serial_of(&second)
        )),
        "{log}"
    );

    // The CA backdates notBefore, not notAfter: wait past the 2 s lifetime.
    let expiry = not_after_of(&second) + Duration::from_millis(200);
    wait_for(Duration::from_secs(10), "the SVID to expire", || {
        SystemTime::now() > expiry
    });
    let expired = once(&server, &dir, &out, &[]);
    let message = assert_fails(&expired);
    assert!(message.contains("expired"), "{message}");
    assert!(message.contains("no join token"), "{message}");
    assert!(message.contains("sigil token create"), "{message}");
    assert_eq!(
        serial_of(&leaf(&out)),
        serial_of(&second),
        "files untouched"
    );
}

#[test]
fn a_wrong_fingerprint_fails_closed_and_writes_nothing() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    let out = dir.temp.path().join("identity");
    // Same shape, one digit off.
    let mut wrong = dir.fingerprint.clone();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(wrong.len() - 1.., last);

    let output = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args([
            "agent",
            "--once",
            "--ca",
            &server.url,
            "--fingerprint",
            &wrong,
        ])
        .args(["--token", &token, "--out", out.to_str().unwrap()])
        .env_remove("SIGIL_JOIN_TOKEN")
        .output()
        .unwrap();
    let message = assert_fails(&output);
    assert!(message.contains("fingerprint"), "{message}");
    assert!(!message.contains(&token), "{message}");
    assert!(!out.join("svid.key").exists());
    assert!(!out.join("svid.pem").exists());

    // A malformed one is refused just as clearly.
    let malformed = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["agent", "--once", "--ca", &server.url])
        .args(["--fingerprint", "sha256:abc", "--token", &token])
        .args(["--out", out.to_str().unwrap()])
        .env_remove("SIGIL_JOIN_TOKEN")
        .output()
        .unwrap();
    let message = assert_fails(&malformed);
    assert!(message.contains("fingerprint"), "{message}");
    assert!(!out.exists());

    // The token was not spent: the right fingerprint still gets an SVID.
    assert_ok(&once(&server, &dir, &out, &["--token", &token]));
}

#[test]
fn a_spent_token_is_refused_with_the_cas_reason() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    let first = dir.temp.path().join("first");
    let second = dir.temp.path().join("second");

    assert_ok(&once(&server, &dir, &first, &["--token", &token]));
    let refused = once(&server, &dir, &second, &["--token", &token]);
    let message = assert_fails(&refused);
    assert!(message.contains("invalid_attestation"), "{message}");
    assert!(message.contains("join token"), "{message}");
    assert!(!message.contains(&token), "{message}");
    assert!(!second.join("svid.key").exists());
}

#[test]
fn a_revoked_identity_is_not_renewed_on_restart() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    let out = dir.temp.path().join("identity");
    assert_ok(&once(&server, &dir, &out, &["--token", &token]));

    let revoked = block_on(
        server
            .admin()
            .post_json("/admin/v1/revocations", &json!({"spiffe_id": AGENT_ID})),
    )
    .unwrap();
    assert_eq!(revoked.status, 200);

    let output = once(&server, &dir, &out, &[]);
    let message = assert_fails(&output);
    assert!(
        message.contains("banned") || message.contains("revoked"),
        "{message}"
    );
    assert!(message.contains("can no longer be renewed"), "{message}");
}

#[test]
fn it_renews_runs_the_hook_signals_the_program_and_exits_with_its_status() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--default-ttl", "3s", "--min-ttl", "1s"]);
    let token = server.token(AGENT_ID);
    let out = dir.temp.path().join("identity");
    let hups = dir.temp.path().join("hups");
    let hooks = dir.temp.path().join("hooks");

    let mut command = agent(&server, &dir, &out);
    command
        .env("SIGIL_JOIN_TOKEN", &token)
        .arg("--exec")
        .arg(format!("echo hook >> {}", hooks.display()))
        .args(["--", "sh", "-c", &program(&hups, "HUP", 7)]);
    let mut running = Running::spawn(command, dir.temp.path().join("agent.log"));

    // Two rotations: two new serials in svid.pem, each signalled and hooked.
    let mut serials = HashSet::new();
    wait_for(Duration::from_secs(20), "two rotations", || {
        serials.extend(current_serial(&out));
        serials.len() >= 3 && lines(&hups) >= 2 && lines(&hooks) >= 2
    });
    let mode = std::fs::metadata(out.join("svid.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // SIGTERM goes to the program; sigil agent exits with its status.
    running.signal("-TERM");
    let status = running.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(7), "{}", running.log());

    let log = running.log();
    assert!(!log.contains(&token), "the token leaked: {log}");
    let events: Vec<&str> = log
        .lines()
        .filter_map(|line| line.strip_prefix("sigil agent: "))
        .collect();
    assert_eq!(
        events
            .iter()
            .filter(|line| line.starts_with(&format!("issued {AGENT_ID} serial ")))
            .count(),
        1,
        "{log}"
    );
    assert!(
        events
            .iter()
            .filter(|line| line.starts_with(&format!("renewed {AGENT_ID} serial ")))
            .count()
            >= 2,
        "{log}"
    );
    assert!(
        events
            .iter()
            .any(|line| line.starts_with("got SIGTERM; forwarding it to sh")),
        "{log}"
    );
}

#[test]
fn when_the_program_exits_sigil_agent_exits_with_its_status() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    let out = dir.temp.path().join("identity");

    // The program starts once the files are there.
    let script = format!("test -s {}/svid.key || exit 99; exit 3", out.display());
    let output = agent(&server, &dir, &out)
        .args(["--token", &token, "--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));

    // A program killed by a signal: 128 + its number, as shells report it.
    let output = agent(&server, &dir, &out)
        .args(["--", "sh", "-c", "kill -KILL $$"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(128 + 9), "{}", stderr(&output));
    assert_eq!(output.status.signal(), None);
}

#[test]
fn a_revocation_while_running_stops_the_program_and_fails() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--default-ttl", "3s", "--min-ttl", "1s"]);
    let token = server.token(AGENT_ID);
    let out = dir.temp.path().join("identity");
    let terms = dir.temp.path().join("terms");

    let mut command = agent(&server, &dir, &out);
    // The program records SIGTERM (on top of exiting 0 for it).
    let script = format!(
        "trap 'echo TERM >> {}; exit 0' TERM; while kill -0 $PPID 2>/dev/null; do sleep 0.1; done",
        terms.display()
    );
    command.args(["--token", &token, "--", "sh", "-c", &script]);
    let mut running = Running::spawn(command, dir.temp.path().join("agent.log"));
    wait_for(Duration::from_secs(10), "the program to start", || {
        running.log().contains("sigil agent: started sh")
    });

    let revoked = block_on(
        server
            .admin()
            .post_json("/admin/v1/revocations", &json!({"spiffe_id": AGENT_ID})),
    )
    .unwrap();
    assert_eq!(revoked.status, 200);

    let status = running.wait(Duration::from_secs(20));
    let log = running.log();
    assert_eq!(status.code(), Some(1), "{log}");
    assert_eq!(lines(&terms), 1, "the program got SIGTERM first: {log}");
    assert!(
        log.contains("sigil agent: renewal refused for good (banned)"),
        "{log}"
    );
    assert!(log.contains("error: "), "{log}");
    assert!(log.contains("can no longer be renewed"), "{log}");
}

#[test]
fn help_and_usage_errors_never_show_the_token() {
    let secret = "sigil_jt_do-not-print-me";
    for args in [
        &["agent", "--help"][..],
        &["agent", "--ca", "https://127.0.0.1:1"],
        &[
            "agent",
            "--ca",
            "https://127.0.0.1:1",
            "--out",
            "x",
            "--once",
            "--",
            "sh",
        ],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_sigil"))
            .args(args)
            .env("SIGIL_JOIN_TOKEN", secret)
            .output()
            .unwrap();
        let all = format!("{}{}", stdout(&output), stderr(&output));
        assert!(!all.contains(secret), "{args:?}: {all}");
        if args.contains(&"--help") {
            assert!(output.status.success());
            for flag in [
                "--ca",
                "--fingerprint",
                "--bundle",
                "--token",
                "--token-file",
                "--out",
                "--once",
                "--ttl",
                "--key-type",
                "--exec",
                "--signal",
                "SIGIL_JOIN_TOKEN",
            ] {
                assert!(all.contains(flag), "--help lacks {flag}: {all}");
            }
        } else {
            assert_eq!(output.status.code(), Some(2), "{all}");
        }
    }
}

/// `sigil agent … ARGS` with a CA that need not exist and no attestation in
/// the environment, run to completion.
fn agent_without_ca(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["agent", "--ca", "https://127.0.0.1:1"])
        .args(["--fingerprint", "sha256:00", "--out", "unused", "--once"])
        .args(args)
        .env_remove("SIGIL_DATA_DIR")
        .env_remove("SIGIL_JOIN_TOKEN")
        .env_remove("SIGIL_JWT_FILE")
        .env_remove("SIGIL_ATTESTOR")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn jwt_file_and_attestor_go_together_and_exclude_join_tokens() {
    let secret = "sigil_jt_do-not-print-me";
    let jwt = "/var/run/secrets/tokens/sigil";
    /// Arguments, environment, and the flags the usage error names.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case<'_>; 8] = [
        (&["--jwt-file", jwt], &[], &["--attestor"]),
        (&["--attestor", "k8s"], &[], &["--jwt-file"]),
        (&[], &[("SIGIL_JWT_FILE", jwt)], &["--attestor"]),
        (&[], &[("SIGIL_ATTESTOR", "k8s")], &["--jwt-file"]),
        (&["--jwt-file", jwt, "--attestor", ""], &[], &["--attestor"]),
        (
            &["--jwt-file", jwt, "--attestor", "k8s", "--token", secret],
            &[],
            &["--jwt-file", "--token"],
        ),
        (
            &["--jwt-file", jwt, "--attestor", "k8s", "--token-file", "t"],
            &[],
            &["--jwt-file", "--token-file"],
        ),
        // A join token in the environment is as ambiguous as one given.
        (
            &["--jwt-file", jwt, "--attestor", "k8s"],
            &[("SIGIL_JOIN_TOKEN", secret)],
            &["--jwt-file", "--token"],
        ),
    ];
    for (args, env, named) in cases {
        let output = agent_without_ca(args, env);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {text}");
        for flag in named {
            assert!(text.contains(flag), "{args:?} {env:?}: {text}");
        }
        assert!(
            !format!("{}{text}", stdout(&output)).contains(secret),
            "{text}"
        );
    }
}

#[test]
fn help_explains_jwt_attestation() {
    let output = sigil(&["agent", "--help"]);
    let help = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    for text in [
        "--jwt-file <PATH>",
        "--attestor <NAME>",
        "SIGIL_JWT_FILE",
        "SIGIL_ATTESTOR",
        "re-read at each attestation",
        "renews over mTLS instead of re-attesting",
        "Kubernetes reuses a pod's token until it rotates",
    ] {
        assert!(help.contains(text), "--help lacks {text:?}: {help}");
    }
    // The short help names both flags too.
    let short = stdout(&sigil(&["agent", "-h"]));
    assert!(
        short.contains("--jwt-file") && short.contains("--attestor"),
        "{short}"
    );
}

/// The agent reads the JWT file only when it must attest, and says which
/// file failed; this needs no JWT support on the CA, as nothing is sent.
#[test]
fn an_empty_or_missing_jwt_file_fails_clearly_and_writes_nothing() {
    let dir = DataDir::init();
    let server = dir.start();
    let out = dir.temp.path().join("identity");
    let empty = dir.temp.path().join("empty-token");
    std::fs::write(&empty, " \n").unwrap();
    let missing = dir.temp.path().join("no-such-token");
    let empty_text = empty.to_str().unwrap();
    let missing_text = missing.to_str().unwrap();

    let by_flags = once(
        &server,
        &dir,
        &out,
        &["--jwt-file", empty_text, "--attestor", "k8s"],
    );
    let message = assert_fails(&by_flags);
    assert!(message.contains(empty_text), "{message}");
    assert!(message.contains("empty"), "{message}");

    // The same from the environment.
    let by_env = agent(&server, &dir, &out)
        .arg("--once")
        .env("SIGIL_JWT_FILE", &missing)
        .env("SIGIL_ATTESTOR", "k8s")
        .output()
        .unwrap();
    let message = assert_fails(&by_env);
    assert!(message.contains(missing_text), "{message}");
    assert!(message.contains("--jwt-file"), "{message}");

    assert!(!out.join("svid.key").exists());
    assert!(!out.join("svid.pem").exists());
}
