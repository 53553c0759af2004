//! CA keys encrypted at rest with a passphrase, in the standard PKCS#8
//! format: OpenSSL reads what `sigil init` writes, and Sigil reads what
//! OpenSSL writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const PASSPHRASE: &str = CA_PASSPHRASE;
const KEYS: [&str; 2] = ["ca/root.key", "ca/issuing.key"];

/// Writes a passphrase file (mode 0600) next to the data dir.
fn passphrase_file(dir: &DataDir, name: &str, text: &str) -> PathBuf {
    let path = dir.temp.path().join(name);
    std::fs::write(&path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// An initialised data dir whose CA keys are encrypted; the passphrase
/// file is `DIR/../ca.pass`.
fn encrypted_dir() -> (DataDir, PathBuf) {
    DataDir::init_encrypted(&[])
}

/// `sigil ARGS` with `SIGIL_CA_PASSPHRASE` set (or removed), bounded so
/// that a server that wrongly starts is stopped.
fn sigil_with_env(args: &[&str], passphrase: Option<&str>) -> Output {
    let mut command = Command::new("timeout");
    command
        .arg("20")
        .arg(env!("CARGO_BIN_EXE_sigil"))
        .args(args)
        .env_remove("SIGIL_DATA_DIR")
        .env_remove("SIGIL_CA_PASSPHRASE_FILE");
    match passphrase {
        Some(text) => command.env("SIGIL_CA_PASSPHRASE", text),
        None => command.env_remove("SIGIL_CA_PASSPHRASE"),
    };
    command.output().unwrap()
}

fn serve_args(dir: &DataDir) -> Vec<&str> {
    vec!["serve", "--data-dir", dir.arg(), "--listen", "127.0.0.1:0"]
}

fn openssl_pkey(key: &Path, passin: &str, dir: &Path) -> Output {
    openssl(
        &[
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-passin",
            passin,
            "-noout",
        ],
        dir,
    )
}

#[test]
fn init_with_a_passphrase_writes_standard_encrypted_keys_that_openssl_reads() {
    let (dir, pass) = encrypted_dir();
    for key in KEYS {
        let text = dir.read(key);
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
            "{key}: {text}"
        );
        let mode = std::fs::metadata(dir.file(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
        // OpenSSL names the scheme: PBES2 with scrypt and AES-256-CBC.
        let parsed = openssl(
            &["asn1parse", "-in", dir.file(key).to_str().unwrap()],
            dir.temp.path(),
        );
        let structure = stdout(&parsed);
        for name in [":PBES2", ":scrypt", ":aes-256-cbc"] {
            assert!(structure.contains(name), "{key}: {name} in {structure}");
        }
        let right = openssl_pkey(
            &dir.file(key),
            &format!("file:{}", pass.display()),
            dir.temp.path(),
        );
        assert!(right.status.success(), "{key}: {}", stderr(&right));
        let wrong = openssl_pkey(&dir.file(key), "pass:not the passphrase", dir.temp.path());
        assert!(
            !wrong.status.success(),
            "{key}: openssl read it with a wrong passphrase"
        );
    }
}

#[test]
fn serve_decrypts_the_keys_with_the_passphrase_from_a_file_or_the_environment() {
    let (dir, pass) = encrypted_dir();
    let mut args = serve_args(&dir);
    args.extend(["--ca-passphrase-file", pass.to_str().unwrap()]);
    let server = Server::spawn(&args, dir.path.clone());
    let token = server.token("spiffe://example.org/agents/sealed");
    assert_eq!(server.redeem(&token, &p256_csr().1).status, 200);
    drop(server);

    let mut command = Command::new(env!("CARGO_BIN_EXE_sigil"));
    command
        .args(serve_args(&dir))
        .env("SIGIL_CA_PASSPHRASE", PASSPHRASE);
    let server = Server::spawn_command(command, dir.path.clone(), "warn");
    let token = server.token("spiffe://example.org/agents/sealed-again");
    assert_eq!(server.redeem(&token, &p256_csr().1).status, 200);
}

#[test]
fn serve_without_the_passphrase_or_with_a_wrong_one_refuses_to_start_and_says_why() {
    let (dir, _) = encrypted_dir();
    let certificates = dir.count("certificates");

    let without = sigil_with_env(&serve_args(&dir), None);
    assert!(!without.status.success(), "served without the passphrase");
    let message = stderr(&without);
    assert!(
        message.contains("root.key is encrypted")
            && message.contains("--ca-passphrase-file")
            && message.contains("SIGIL_CA_PASSPHRASE"),
        "{message}"
    );

    let wrong = sigil_with_env(&serve_args(&dir), Some("not the passphrase"));
    assert!(!wrong.status.success(), "served with a wrong passphrase");
    let message = stderr(&wrong);
    assert!(message.contains("passphrase is wrong"), "{message}");
    assert!(!message.contains("not the passphrase"), "{message}");

    let other_dir = DataDir::init();
    let empty = passphrase_file(&other_dir, "empty.pass", "");
    let mut args = serve_args(&dir);
    args.extend(["--ca-passphrase-file", empty.to_str().unwrap()]);
    let message = stderr(&sigil_with_env(&args, None));
    assert!(message.contains("passphrase is empty"), "{message}");

    assert_eq!(dir.count("certificates"), certificates, "nothing issued");
}

#[test]
fn a_passphrase_for_keys_that_are_not_encrypted_is_refused() {
    let dir = DataDir::init();
    let refused = sigil_with_env(&serve_args(&dir), Some(PASSPHRASE));
    assert!(
        !refused.status.success(),
        "served plain keys as if encrypted"
    );
    let message = stderr(&refused);
    assert!(message.contains("is not encrypted"), "{message}");

    // Nor does the public development CA take one.
    let dev = dir.temp.path().join("dev");
    let refused = sigil_with_env(
        &[
            "serve",
            "--dev",
            "--data-dir",
            dev.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        Some(PASSPHRASE),
    );
    assert!(
        !refused.status.success(),
        "served the dev CA with a passphrase"
    );
    let message = stderr(&refused);
    assert!(message.contains("takes no CA passphrase"), "{message}");
}

#[test]
fn ed25519_ca_keys_are_encrypted_and_served_too() {
    let (dir, pass) = DataDir::init_encrypted(&["--key-type", "ed25519"]);
    assert!(
        dir.read("ca/issuing.key")
            .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    );
    let mut args = serve_args(&dir);
    args.extend(["--ca-passphrase-file", pass.to_str().unwrap()]);
    let server = Server::spawn(&args, dir.path.clone());
    let token = server.token("spiffe://example.org/agents/edwards");
    assert_eq!(server.redeem(&token, &p256_csr().1).status, 200);
}

#[test]
fn a_passphrase_file_that_others_can_read_is_refused() {
    let dir = DataDir::init();
    let pass = passphrase_file(&dir, "open.pass", PASSPHRASE);
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut args = serve_args(&dir);
    args.extend(["--ca-passphrase-file", pass.to_str().unwrap()]);
    let message = stderr(&sigil_with_env(&args, None));
    assert!(
        message.contains("readable by group or others") && message.contains("open.pass"),
        "{message}"
    );
}

#[test]
fn admin_credentials_are_minted_from_encrypted_keys_only_with_the_passphrase() {
    let (dir, pass) = encrypted_dir();
    let out = dir.temp.path().join("ops");
    let mint = |passphrase: Option<&str>| {
        sigil_with_env(
            &[
                "admin",
                "credential",
                "--data-dir",
                dir.arg(),
                "--name",
                "ops",
                "--out",
                out.to_str().unwrap(),
            ],
            passphrase,
        )
    };
    let refused = mint(None);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("is encrypted"),
        "{}",
        stderr(&refused)
    );
    let minted = mint(Some(PASSPHRASE));
    assert!(minted.status.success(), "{}", stderr(&minted));
    assert!(out.join("svid.pem").exists());
    // The fingerprint needs no key, so no passphrase.
    let fingerprint = sigil(&["fingerprint", "--data-dir", dir.arg()]);
    assert_eq!(stdout(&fingerprint).trim(), dir.fingerprint);
    drop(pass);
}

#[test]
fn keys_that_openssl_encrypted_with_scrypt_or_pbkdf2_are_read_too() {
    let dir = DataDir::init();
    let pass = passphrase_file(&dir, "ca.pass", PASSPHRASE);
    // The root as docs/operations.md says to encrypt a CA in place; the
    // issuing key with OpenSSL's default PBES2 (PBKDF2, AES-256-CBC).
    for (key, scheme) in [("ca/root.key", "-scrypt"), ("ca/issuing.key", "-v2")] {
        let path = dir.file(key);
        let sealed = dir.temp.path().join("sealed.key");
        let mut args = vec!["pkcs8", "-topk8", scheme];
        if scheme == "-v2" {
            args.push("aes-256-cbc");
        }
        let passout = format!("file:{}", pass.display());
        args.extend([
            "-in",
            path.to_str().unwrap(),
            "-passout",
            &passout,
            "-out",
            sealed.to_str().unwrap(),
        ]);
        let converted = openssl(&args, dir.temp.path());
        assert!(converted.status.success(), "{}", stderr(&converted));
        assert!(
            std::fs::read_to_string(&sealed)
                .unwrap()
                .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        );
        std::fs::copy(&sealed, &path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut args = serve_args(&dir);
    args.extend(["--ca-passphrase-file", pass.to_str().unwrap()]);
    let server = Server::spawn(&args, dir.path.clone());
    let token = server.token("spiffe://example.org/agents/openssl-sealed");
    assert_eq!(server.redeem(&token, &p256_csr().1).status, 200);
}
