//! Every malformed, hostile or oversized request gets a 4xx JSON error and
//! changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::Method;
use serde_json::json;

#[test]
fn malformed_requests_get_json_errors_and_change_nothing() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token("spiffe://example.org/agents/steady");
    let (_, csr) = p256_csr();
    let client = server.anonymous();
    let certificates_before = dir.count("certificates");
    let send = |content_type: Option<&str>, body: Vec<u8>| {
        block_on(client.request(Method::POST, "/v1/svid", content_type, body)).unwrap()
    };
    let json_body = |value: serde_json::Value| serde_json::to_vec(&value).unwrap();
    let attestation = json!({"type": "join_token", "token": token});

    let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (
            Some("application/json"),
            b"{not json".to_vec(),
            400,
            "invalid_request",
        ),
        (
            Some("application/json"),
            b"".to_vec(),
            400,
            "invalid_request",
        ),
        (
            Some("application/json"),
            b"[]".to_vec(),
            400,
            "invalid_request",
        ),
        (
            Some("application/json"),
            json_body(json!({"attestation": attestation})),
            400,
            "invalid_request",
        ),
        (
            Some("application/json"),
            json_body(json!({"csr": 5, "attestation": attestation})),
            400,
            "invalid_request",
        ),
        (
            Some("application/json"),
            json_body(json!({"csr": csr, "attestation": attestation, "ttl": 60})),
            400,
            "invalid_request",
        ),
        (
            Some("application/json"),
            json_body(json!({"csr": csr, "attestation": {"type": "magic"}})),
            400,
            "invalid_request",
        ),
        (
            Some("application/json"),
            json_body(json!({"csr": csr, "attestation": attestation, "ttl_seconds": -5})),
            400,
            "invalid_request",
        ),
        (
            Some("application/json"),
            json_body(json!({"csr": "hello", "attestation": attestation})),
            400,
            "invalid_csr",
        ),
        (
            Some("application/json"),
            json_body(json!({"csr": format!("{csr}{csr}"), "attestation": attestation})),
            400,
            "invalid_csr",
        ),
        (
            Some("text/plain"),
            json_body(json!({"csr": csr, "attestation": attestation})),
            415,
            "unsupported_media_type",
        ),
        (
            None,
            json_body(json!({"csr": csr, "attestation": attestation})),
            415,
            "unsupported_media_type",
        ),
        (
            Some("application/json"),
            vec![b' '; 64 * 1024 + 1],
            413,
            "payload_too_large",
        ),
        (
            Some("application/json"),
            vec![b'a'; 10 * 1024 * 1024],
            413,
            "payload_too_large",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let preview = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        let response = send(content_type, body);
        assert_eq!(
            response.status.as_u16(),
            status,
            "{content_type:?} {preview}"
        );
        assert_error(&response, status, code);
    }
    assert_eq!(dir.count("certificates"), certificates_before);

    // The token survived every refusal; a charset parameter is fine.
    let ok = send(
        Some("application/json; charset=utf-8"),
        json_body(json!({"csr": csr, "attestation": attestation})),
    );
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
}

#[test]
fn a_body_of_exactly_the_limit_is_read() {
    let dir = DataDir::init();
    let server = dir.start();
    let client = server.anonymous();
    let mut body = b"{\"csr\": \"".to_vec();
    body.resize(64 * 1024 - 2, b'x');
    body.extend_from_slice(b"\"}");
    assert_eq!(body.len(), 64 * 1024);
    let response =
        block_on(client.request(Method::POST, "/v1/svid", Some("application/json"), body)).unwrap();
    // Read and parsed (the attestation is missing), not refused as too large.
    assert_error(&response, 400, "invalid_request");
    assert!(String::from_utf8_lossy(&response.body).contains("attestation"));
}

#[test]
fn unknown_routes_and_methods_get_json_errors() {
    let dir = DataDir::init();
    let server = dir.start();
    let client = server.anonymous();
    let get = |path: &str| block_on(client.get(path)).unwrap();
    assert_error(&get("/nope"), 404, "not_found");
    assert_error(&get("/v1/svid"), 405, "method_not_allowed");
    assert_error(&get("/admin/v1/join-tokens"), 405, "method_not_allowed");
    let delete = block_on(client.request(Method::DELETE, "/v1/bundle", None, Vec::new())).unwrap();
    assert_error(&delete, 405, "method_not_allowed");
}

#[test]
fn admin_routes_check_the_caller_before_the_body() {
    let dir = DataDir::init();
    let server = dir.start();
    let response = block_on(server.anonymous().request(
        Method::POST,
        "/admin/v1/join-tokens",
        Some("application/json"),
        b"{broken".to_vec(),
    ))
    .unwrap();
    assert_error(&response, 401, "client_certificate_required");
    let response = block_on(server.admin().request(
        Method::POST,
        "/admin/v1/join-tokens",
        Some("application/json"),
        b"{broken".to_vec(),
    ))
    .unwrap();
    assert_error(&response, 400, "invalid_request");
    assert_eq!(dir.count("join_tokens"), 0);
}

#[test]
fn an_address_over_its_rate_limit_gets_429_with_retry_after() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--rate-limit", "0.1", "--rate-burst", "3"]);
    let client = server.anonymous();
    let send = || {
        block_on(client.request(
            Method::POST,
            "/v1/svid",
            Some("application/json"),
            b"{}".to_vec(),
        ))
        .unwrap()
    };
    for _ in 0..3 {
        assert_eq!(
            send().status,
            400,
            "within the burst, the request itself is judged"
        );
    }
    let limited = send();
    assert_error(&limited, 429, "rate_limited");
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry_after), "{retry_after}");
    // Reading the bundle and CRLs is never limited.
    assert_eq!(block_on(client.get("/v1/bundle")).unwrap().status, 200);
    assert_eq!(block_on(client.get("/v1/crls")).unwrap().status, 200);
}

#[test]
fn an_address_that_fails_too_many_attestations_gets_429_and_good_tokens_are_never_charged() {
    let dir = DataDir::init();
    let server = dir.start_with(&[
        "--failed-attestation-limit",
        "0.01",
        "--failed-attestation-burst",
        "3",
    ]);
    let token = server.token_with(json!({
        "spiffe_id": "spiffe://example.org/agents/guessed",
        "uses": 20,
    }));
    // A fleet restarting with good tokens: far more than the burst, all
    // issued.
    for _ in 0..10 {
        assert_eq!(server.redeem(&token, &p256_csr().1).status, 200);
    }
    // A client guessing: its burst of failures is judged one by one...
    let guess = format!("{}0", &token[..token.len() - 1]);
    let guess = if guess == token {
        format!("{}1", &token[..token.len() - 1])
    } else {
        guess
    };
    for _ in 0..3 {
        assert_error(
            &server.redeem(&guess, &p256_csr().1),
            401,
            "invalid_attestation",
        );
    }
    // ...then every attestation from that address waits, even a good one,
    // and nothing is issued meanwhile.
    let before = dir.count("certificates");
    let limited = server.redeem(&token, &p256_csr().1);
    assert_error(&limited, 429, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(dir.count("certificates"), before);
}
