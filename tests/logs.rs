//! Logs: `--log-format json` writes one JSON object per line; every
//! request gets an ID, returned in `x-request-id` and carried by each log
//! line of that request; an issuance is logged with its SPIFFE ID and
//! serial at debug level.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::Value;

fn serve_args(dir: &DataDir, format: &str) -> Vec<String> {
    ["serve", "--data-dir", dir.arg(), "--listen", "127.0.0.1:0"]
        .into_iter()
        .map(str::to_owned)
        .chain(["--log-format".to_owned(), format.to_owned()])
        .collect()
}

/// Issues one SVID; returns (request ID, serial).
fn issue(server: &Server, spiffe_id: &str) -> (String, String) {
    let response = server.redeem(&server.token(spiffe_id), &p256_csr().1);
    assert_eq!(response.status, 200);
    let id = response.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 16, "{id}");
    let body: Value = response.json().unwrap();
    (id, body["serial"].as_str().unwrap().to_owned())
}

#[test]
fn json_logs_are_one_object_per_line_and_name_the_request_and_the_issued_svid() {
    let dir = DataDir::init();
    let args = serve_args(&dir, "json");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::spawn_logging(&args, dir.path.clone(), "info,sigil=debug");
    let (request_id, serial) = issue(&server, "spiffe://example.org/agents/logged");
    let (other_id, _) = issue(&server, "spiffe://example.org/agents/logged-too");
    assert_ne!(request_id, other_id, "each request has its own ID");
    // The log is written as the request ends; stop the server to flush it.
    let log_path = server.log_path.clone();
    server.terminate();
    let log = std::fs::read_to_string(log_path).unwrap();

    let lines: Vec<Value> = log
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|line| line["level"].is_string() && line["timestamp"].is_string())
    );
    let issued = lines
        .iter()
        .find(|line| {
            line["fields"]["message"] == "svid.issue" && line["fields"]["serial"] == serial
        })
        .unwrap_or_else(|| panic!("no svid.issue line for {serial} in:\n{log}"));
    assert_eq!(
        issued["fields"]["spiffe_id"],
        "spiffe://example.org/agents/logged"
    );
    assert_eq!(issued["span"]["id"], request_id.as_str(), "{issued}");
    assert_eq!(issued["span"]["route"], "/v1/svid");
}

#[test]
fn text_logs_carry_the_request_id_too() {
    let dir = DataDir::init();
    let args = serve_args(&dir, "text");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::spawn_logging(&args, dir.path.clone(), "info,sigil=debug");
    let (request_id, serial) = issue(&server, "spiffe://example.org/agents/plain");
    let log_path = server.log_path.clone();
    server.terminate();
    let log = std::fs::read_to_string(log_path).unwrap();
    let line = log
        .lines()
        .find(|line| line.contains("svid.issue") && line.contains(&serial))
        .unwrap_or_else(|| panic!("no svid.issue line in:\n{log}"));
    assert!(line.contains(&format!("id={request_id}")), "{line}");
}
