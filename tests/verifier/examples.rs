//! 9–10: the echo_server example, curl and the client example.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::ca::Ca;
use crate::client::{PROPAGATION_TIMEOUT, run};
use crate::common::{sans_of, stderr, stdout};
use crate::echo::{ECHO_ID, ECHO_IP, EchoProcess, example_binary};

fn curl(bundle: &Path, cert: &Path, key: &Path, url: &str, extra: &[&str]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "5"])
        .arg("--cacert")
        .arg(bundle)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .args(["--write-out", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl is installed")
}

/// (status, body) from curl's output with `--write-out "\n%{http_code}"`.
fn curl_answer(output: &Output) -> (String, String) {
    let text = stdout(output);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_owned(), body.to_owned())
}

fn example_client(ca: &Ca, cert: &Path, key: &Path, url: &str) -> Output {
    Command::new(example_binary("client"))
        .arg("--url")
        .arg(url)
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg("--ca")
        .arg(&ca.server.url)
        .arg("--fingerprint")
        .arg(&ca.dir.fingerprint)
        .arg("--server-id")
        .arg(ECHO_ID)
        .output()
        .expect("running the client example")
}

#[test]
fn curl_and_the_client_example_are_served_until_revoked_by_the_echo_server_example() {
    let ca = Ca::start();
    let work = tempfile::tempdir().unwrap();
    let echo_svid = ca.issue_with(json!({"spiffe_id": ECHO_ID, "ip_addresses": [ECHO_IP]}));
    assert!(
        sans_of(&echo_svid.chain()[0]).contains(&"IPAddress([127, 0, 0, 2])".to_owned()),
        "{:?}",
        sans_of(&echo_svid.chain()[0])
    );
    let echo = EchoProcess::start(
        &ca,
        &echo_svid,
        &["spiffe://example.org/agents/*"],
        ECHO_IP,
        work.path(),
    );
    let url = format!("https://{}/", echo.addr);
    let agent = ca.issue("spiffe://example.org/agents/curl");
    let (cert, key) = agent.write_files(work.path(), "agent");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let bundle = ca.dir.file("bundle.pem");

    // curl verifies the echo server by IP against the CA's bundle, and the
    // echo server lets the agent in.
    let served = curl(&bundle, &cert, &key, &url, &[]);
    assert!(served.status.success(), "curl: {}", stderr(&served));
    assert_eq!(
        curl_answer(&served),
        ("200".to_owned(), format!("{}\n", agent.spiffe_id))
    );
    // So does the client example, which checks the server by SPIFFE ID.
    let client = example_client(&ca, &cert, &key, &url);
    assert!(client.status.success(), "client: {}", stderr(&client));
    assert_eq!(stdout(&client), format!("{}\n", agent.spiffe_id));

    // Revoke the agent; the echo server's live source picks it up within
    // moments, and from then on every new handshake fails.
    run(ca.revoke(&agent.serial));
    let deadline = Instant::now() + PROPAGATION_TIMEOUT;
    let refused = loop {
        let output = curl(&bundle, &cert, &key, &url, &[]);
        if !output.status.success() {
            break output;
        }
        assert!(
            Instant::now() < deadline,
            "curl was still served {:?} after revocation",
            curl_answer(&output)
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Under TLS 1.3 curl's handshake completes before the server has
    // judged its certificate; the server then sends its alert and closes,
    // and curl reports whichever it meets first (a receive failure with
    // the alert, or a send failure on the reset connection).
    assert_ne!(curl_answer(&refused).0, "200", "{}", stderr(&refused));
    // Under TLS 1.2 the server judges the client certificate inside the
    // handshake, so curl always reads the alert.
    let refused = curl(&bundle, &cert, &key, &url, &["--tls-max", "1.2"]);
    let message = stderr(&refused);
    assert!(
        !refused.status.success() && message.contains("alert certificate revoked"),
        "curl over TLS 1.2 was not refused with certificate_revoked (exit {:?}): {message}",
        refused.status.code()
    );

    // The client example fails too, and names the alert whether hyper sees
    // it on the request or the connection task sees it first.
    let client = example_client(&ca, &cert, &key, &url);
    let message = stderr(&client);
    assert!(
        !client.status.success(),
        "the revoked client example was served: {}",
        stdout(&client)
    );
    assert!(
        !stdout(&client).contains(&agent.spiffe_id),
        "{}",
        stdout(&client)
    );
    assert!(message.contains("CertificateRevoked"), "{message}");
}
