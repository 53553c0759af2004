//! `sigil agent --jwt-file PATH --attestor NAME`: the agent attests with
//! the token its platform wrote to a file, reading the file again at each
//! attestation (platforms rotate these tokens).

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::*;
use crate::fixture::*;

/// `sigil agent --once --jwt-file TOKEN_FILE --attestor k8s-prod --out OUT`.
fn agent_once(ca: &Ca, token_file: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args([
            "agent",
            "--ca",
            &ca.server.url,
            "--fingerprint",
            &ca.dir.fingerprint,
            "--once",
            "--attestor",
            "k8s-prod",
        ])
        .arg("--jwt-file")
        .arg(token_file)
        .arg("--out")
        .arg(out)
        .env_remove("SIGIL_DATA_DIR")
        .env_remove("SIGIL_JOIN_TOKEN")
        .env_remove("SIGIL_JWT_FILE")
        .env_remove("SIGIL_ATTESTOR")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn leaf_of(out: &Path) -> Vec<u8> {
    let pem = std::fs::read_to_string(out.join("svid.pem")).unwrap();
    chain_der(&pem).remove(0)
}

#[test]
fn sigil_agent_attests_with_the_jwt_file_and_reads_it_again_each_time() {
    let ca = Ca::start();
    let temp = ca.dir.temp.path();
    let token_file = temp.join("sa-token");
    let first_token = ca.idps.k8s_rsa.token(&k8s_claims("agents", "support-bot"));
    std::fs::write(&token_file, &first_token).unwrap();

    let first = agent_once(&ca, &token_file, &temp.join("first"));
    assert!(first.status.success(), "{}", stderr(&first));
    let first_leaf = leaf_of(&temp.join("first"));
    assert_eq!(sans_of(&first_leaf), [format!("URI({K8S_ID:?})")]);

    // The same token again, for another workload dir: its jti is spent,
    // and the agent says who refused what, without quoting the token.
    let second_dir = temp.join("second");
    let replayed = agent_once(&ca, &token_file, &second_dir);
    let text = stderr(&replayed);
    assert_eq!(replayed.status.code(), Some(1), "{text}");
    for part in [
        "attestor k8s-prod refused the JWT in",
        token_file.to_str().unwrap(),
        "already used",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert_nowhere(&text, &first_token, "agent's output");
    assert!(!second_dir.join("svid.pem").exists());

    // The platform rotates the token (a new jti, written with a newline):
    // the next attestation reads the new one.
    let second_token = ca.idps.k8s_ec.token(&k8s_claims("agents", "support-bot"));
    std::fs::write(&token_file, format!("{second_token}\n")).unwrap();
    let second = agent_once(&ca, &token_file, &second_dir);
    assert!(second.status.success(), "{}", stderr(&second));
    let second_leaf = leaf_of(&second_dir);
    assert_eq!(sans_of(&second_leaf), sans_of(&first_leaf));
    assert_ne!(second_leaf, first_leaf);

    let (dir, log) = ca.stop();
    let records = audit_records(&dir);
    assert_eq!(jwt_issues(&records).len(), 2);
    assert_eq!(
        refusal_counts(&records).into_iter().collect::<Vec<_>>(),
        [("jwt k8s-prod: replayed jti".to_owned(), 1)]
    );
    for token in [&first_token, &second_token] {
        assert_nowhere(&log, token, "server log");
        assert_nowhere(
            &serde_json::to_string(&records).unwrap(),
            token,
            "audit log",
        );
    }
}

/// An agent whose SVID expired while the CA was away attests again with
/// the token its platform keeps fresh, and carries on: a join token could
/// not (it is single-use), a JWT file can.
#[test]
fn an_agent_with_a_jwt_file_attests_again_once_its_svid_has_expired() {
    let dir = DataDir::init();
    let idps = Idps::new(&dir);
    idps.write_jwks(&dir, true);
    std::fs::write(
        dir.file("sigil.toml"),
        config(r#"{ file = "k8s-jwks.json" }"#),
    )
    .unwrap();
    let args = |listen: &str| {
        [
            "serve",
            "--data-dir",
            dir.arg(),
            "--listen",
            listen,
            "--default-ttl",
            "2s",
            "--min-ttl",
            "1s",
        ]
        .map(str::to_owned)
    };
    let serve = |listen: &str| {
        let args = args(listen);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Server::spawn(&args, dir.path.clone())
    };
    let server = serve("127.0.0.1:0");
    let port = server.port();
    let token_file = dir.temp.path().join("sa-token");
    std::fs::write(
        &token_file,
        idps.k8s_rsa.token(&k8s_claims("agents", "support-bot")),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (agent, mut events) = runtime.block_on(async {
        let builder = sigil_agent::Agent::builder(&server.url)
            .fingerprint(&dir.fingerprint)
            .jwt_file("k8s-prod", &token_file);
        let events = builder.events();
        (builder.start().await.unwrap(), events)
    });
    let first = agent.svid();
    assert_eq!(first.spiffe_id().as_str(), K8S_ID);

    // The CA is away until the SVID has expired; the platform rotates the
    // token meanwhile.
    drop(server);
    let expired_in = first
        .not_after()
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    std::thread::sleep(expired_in + std::time::Duration::from_millis(1500));
    std::fs::write(
        &token_file,
        idps.k8s_rsa.token(&k8s_claims("agents", "support-bot")),
    )
    .unwrap();
    let _server = serve(&format!("127.0.0.1:{port}"));

    runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let event = tokio::time::timeout_at(deadline, events.recv())
                .await
                .expect("a new SVID in time")
                .unwrap();
            match event {
                sigil_agent::Event::Issued { serial, .. } if serial != first.serial() => break,
                event => assert!(!event.is_final(), "renewal stopped: {event}"),
            }
        }
        let current = agent.svid();
        assert_eq!(current.spiffe_id().as_str(), K8S_ID);
        assert!(!current.is_expired_at(std::time::SystemTime::now()));
    });
}
