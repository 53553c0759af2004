//! `sigil demo`: the real binary tells the whole story and exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

const AGENT_ID: &str = "spiffe://demo.sigil.test/agents/support-bot";

#[test]
fn the_demo_tells_all_six_steps_and_exits_0() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .arg("demo")
        .env_remove("SIGIL_DATA_DIR")
        .env_remove("RUST_LOG")
        .output()
        .expect("running sigil demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "sigil demo failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "sigil demo took {:?}",
        started.elapsed()
    );

    // Each numbered step, in order, with what it shows.
    let steps = [
        (
            "1. ",
            &[
                "CA started",
                "root fingerprint sha256:",
                "listening on https://127.0.0.1:",
            ][..],
        ),
        ("2. ", &["Join token", AGENT_ID]),
        (
            "3. ",
            &[
                "SVID issued to spiffe://demo.sigil.test/agents/support-bot",
                "serial ",
            ],
        ),
        (
            "4. ",
            &[
                "Echo server spiffe://demo.sigil.test/tools/echo",
                "accepted the agent",
                "200",
            ],
        ),
        (
            "5. ",
            &[
                "Revoked",
                "next handshake refused",
                "CertificateRevoked",
                "revoked -> refused in",
            ],
        ),
        ("6. ", &["Renewal refused"]),
    ];
    let mut rest: &str = &stdout;
    for (number, says) in steps {
        let at = rest
            .find(&format!("\n{number}"))
            .unwrap_or_else(|| panic!("no step {number:?} after the previous one:\n{stdout}"));
        rest = &rest[at + 1..];
        let step = step_text(rest);
        for phrase in says {
            assert!(
                step.contains(phrase),
                "step {number:?} does not say {phrase:?}:\n{step}\n--- whole output ---\n{stdout}"
            );
        }
    }
    assert!(
        stdout.contains("All six steps behaved as expected"),
        "{stdout}"
    );

    // The agent's serial, as issued, is the one revoked.
    let serial = stdout
        .split("SVID issued to")
        .nth(1)
        .and_then(|after| after.split("serial ").nth(1))
        .map(|after| {
            after
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect::<String>()
        })
        .unwrap();
    assert_eq!(serial.len(), 32, "{stdout}");
    assert!(
        stdout.contains(&format!("{AGENT_ID}, serial {serial}")),
        "the revoked serial is not the agent's {serial}:\n{stdout}"
    );

    // Quiet: no tracing output, and the throwaway data dir is gone.
    assert!(
        !stderr.contains("WARN") && !stderr.contains("ERROR"),
        "{stderr}"
    );
    let dir = stdout
        .lines()
        .find(|line| line.starts_with("1. "))
        .and_then(|line| line.rsplit(" in ").next())
        .unwrap()
        .trim();
    assert!(dir.contains("sigil-demo-"), "{stdout}");
    assert!(!std::path::Path::new(dir).exists(), "{dir} was left behind");
}

/// A step's text: its numbered line and the indented lines under it.
fn step_text(from: &str) -> String {
    let mut lines = from.lines();
    let mut text = lines.next().unwrap_or_default().to_owned();
    for line in lines.take_while(|line| line.starts_with("   ")) {
        text.push('\n');
        text.push_str(line);
    }
    text
}
