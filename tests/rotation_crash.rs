//! SIGKILL in the middle of rotations. In each round a fresh CA's server
//! is killed at a moment in the time an admin's `sigil ca rotate` or
//! `sigil ca root rotate --activate-after 0s` takes (the server then also
//! activates the new root at once); the moments are spread over 0 to
//! 31 ms. After the kill it must start again from its files and agree with
//! them: every key loads, the bundle it serves is the data dir's
//! `bundle.pem`, and an SVID it issues verifies with `sigil-verifier`
//! against that bundle and the CRLs it serves.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

const ROUNDS: u64 = 32;

/// The set of certificates in a PEM text, DER.
fn certificates(pem_text: &str) -> BTreeSet<Vec<u8>> {
    chain_der(pem_text).into_iter().collect()
}

#[test]
fn a_server_killed_in_the_middle_of_a_rotation_starts_again_whole() {
    let mut outcomes = Vec::new();
    for round in 0..ROUNDS {
        let dir = DataDir::init();
        let server = dir.start();
        let rotate: &[&str] = match round % 2 {
            0 => &["ca", "rotate"],
            _ => &["ca", "root", "rotate", "--activate-after", "0s"],
        };
        let mut args = rotate.to_vec();
        args.extend(["--data-dir", dir.arg()]);
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        let admin = std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            sigil(&args)
        });
        // From before the request arrives to after it is done.
        std::thread::sleep(Duration::from_millis(round));
        let mut server = server;
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        drop(server);
        // The admin's command fails or succeeds; either is fine.
        let answered = admin.join().unwrap().status.success();
        let staged = dir.file("ca/issuing.next.pem").exists();
        let roots = std::fs::read_to_string(dir.file("ca/roots.json")).unwrap_or_default();
        eprintln!(
            "round {round}: {} {}; staged issuing CA left: {staged}; roots.json: {}",
            rotate.join(" "),
            if answered { "answered" } else { "cut off" },
            roots.split_whitespace().collect::<String>()
        );

        let mut server = dir.start();
        let bundle_file = dir.read("bundle.pem");
        server.bundle_pem = bundle_file.clone();
        let served = block_on(server.anonymous().get("/v1/bundle")).unwrap();
        let served = String::from_utf8(served.body.to_vec()).unwrap();
        assert_eq!(
            certificates(&served),
            certificates(&bundle_file),
            "round {round}: the bundle served is not bundle.pem"
        );
        let status = server.status();
        assert_eq!(status["health"], "ok", "round {round}: {status:#}");
        let rotated = ["retired", "next_root", "previous_root"]
            .iter()
            .any(|role| !keys_of(&status, role).is_empty());
        outcomes.push((answered, rotated));
        let held = server.attest(&format!("spiffe://example.org/agents/round-{round}"));
        let crls = block_on(server.anonymous().get("/v1/crls")).unwrap();
        sigil_verifier_verdict(&bundle_file, &crls.body, &held.chain_pem)
            .unwrap_or_else(|refused| panic!("round {round}: {refused}"));
    }
    let count = |answered: bool, rotated: bool| {
        outcomes
            .iter()
            .filter(|outcome| **outcome == (answered, rotated))
            .count()
    };
    eprintln!(
        "{} rotations answered, {} done but cut off before the answer, {} cut off before \
         they were done",
        count(true, true),
        count(false, true),
        count(false, false)
    );
    // An answered rotation is never lost.
    assert_eq!(count(true, false), 0, "{outcomes:?}");
}
