//! Hostile HTTP and JSON: oversized and deeply nested bodies, huge fields,
//! duplicate and unknown keys, bodies the headers promise but never send,
//! Content-Length/Transfer-Encoding tricks, wrong content types, methods
//! and routes. Most requests carry a good join token and CSR, so a request
//! the server misread would issue a certificate; the snapshot shows none
//! was issued and the token kept its use.

use http::Method;
use serde_json::json;

use crate::common::*;
use crate::support::*;

/// A CA with a good token for [`AGENT_ID`], and a request body that would
/// redeem it.
struct Setup {
    dir: DataDir,
    server: Server,
    token: String,
    csr: String,
}

impl Setup {
    fn new() -> Self {
        let dir = DataDir::init();
        let server = dir.start();
        let token = server.token(AGENT_ID);
        let (_, csr) = p256_csr();
        Self {
            dir,
            server,
            token,
            csr,
        }
    }

    /// The good request body, as JSON text.
    fn body(&self) -> String {
        serde_json::to_string(&svid_request(&self.csr, &self.token)).unwrap()
    }

    /// An HTTP/1.1 `POST /v1/svid` head with these extra header lines.
    fn head(&self, headers: &str) -> String {
        format!("POST /v1/svid HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n")
    }
}

/// Sends `body` as JSON to `/v1/svid` and asserts the refusal and that
/// nothing changed.
fn refused_body(body: impl FnOnce(&Setup) -> Vec<u8>, status: u16, code: &str, hint: &str) {
    let setup = Setup::new();
    let body = body(&setup);
    let before = Snapshot::take(&setup.dir);
    let response = post_svid_bytes(&setup.server, body);
    assert_error(&response, status, code);
    let message = error_message(&response);
    assert!(message.contains(hint), "{message}");
    before.assert_unchanged(&setup.dir, setup.server);
}

/// Sends raw bytes (see [`raw_http`]) and asserts a JSON refusal after
/// which the server closed the connection without answering anything
/// else, and that nothing changed.
fn refused_raw(request: impl FnOnce(&Setup) -> Vec<u8>, half_close: bool, code: &str) {
    let setup = Setup::new();
    let request = request(&setup);
    let before = Snapshot::take(&setup.dir);
    let (response, rest) = raw_http(&setup.server, &request, half_close);
    assert_error(&response, 400, code);
    assert!(
        rest.is_empty(),
        "a second answer: {:?}",
        String::from_utf8_lossy(&rest)
    );
    before.assert_unchanged(&setup.dir, setup.server);
}

// Bodies.

#[test]
fn body_over_64_kib_is_refused_with_413() {
    // The good request, its CSR padded past the limit with newlines.
    refused_body(
        |setup| {
            let padded = format!("{}{}", setup.csr, "\n".repeat(70 * 1024));
            serde_json::to_vec(&svid_request(&padded, &setup.token)).unwrap()
        },
        413,
        "payload_too_large",
        "65536",
    );
}

#[test]
fn ten_thousand_nested_arrays_are_refused() {
    refused_body(
        |_| vec![b'['; 10_000],
        400,
        "invalid_request",
        "request body",
    );
}

#[test]
fn deeply_nested_arrays_inside_the_attestation_are_refused() {
    // The attestation is an internally tagged enum, which serde buffers
    // whole before reading its tag: the nesting is parsed, recursively, and
    // must hit the parser's recursion limit rather than the stack.
    refused_body(
        |setup| {
            let csr = serde_json::to_string(&setup.csr).unwrap();
            let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
            format!(
                "{{\"csr\":{csr},\"attestation\":{{\"deep\":{nested},\"type\":\"join_token\",\"token\":\"{}\"}}}}",
                setup.token
            )
            .into_bytes()
        },
        400,
        "invalid_request",
        "recursion limit",
    );
}

#[test]
fn huge_csr_string_is_refused() {
    refused_body(
        |setup| {
            let huge = format!(
                "-----BEGIN CERTIFICATE REQUEST-----\n{}\n-----END CERTIFICATE REQUEST-----\n",
                "QUFB".repeat(15_000)
            );
            serde_json::to_vec(&svid_request(&huge, &setup.token)).unwrap()
        },
        400,
        "invalid_csr",
        "PKCS#10",
    );
}

#[test]
fn huge_token_string_is_refused_and_counted() {
    let setup = Setup::new();
    let huge = format!("{}{}", setup.token, "A".repeat(60 * 1024));
    let before = Snapshot::take(&setup.dir);
    let response = setup.server.redeem(&huge, &setup.csr);
    assert_error(&response, 401, "invalid_attestation");
    assert!(response.body.len() < 1024, "the token is not echoed");
    before.assert_unchanged_except_refusals(
        &setup.dir,
        setup.server,
        &[("malformed join token", 1)],
    );
}

#[test]
fn huge_spiffe_id_in_a_join_token_request_is_refused() {
    let setup = Setup::new();
    let huge = format!("spiffe://example.org/{}", "a".repeat(60 * 1024));
    let before = Snapshot::take(&setup.dir);
    let response = admin_post(
        &setup.server,
        "/admin/v1/join-tokens",
        &json!({"spiffe_id": huge}),
    );
    assert_error(&response, 400, "invalid_spiffe_id");
    assert!(response.body.len() < 1024, "the ID is not echoed");
    before.assert_unchanged(&setup.dir, setup.server);
}

#[test]
fn duplicate_csr_keys_are_refused() {
    // Which CSR would be certified — the first, or the last? Neither.
    refused_body(
        |setup| {
            let other = serde_json::to_string(&p256_csr().1).unwrap();
            format!("{{\"csr\":{other},{}", &setup.body()[1..]).into_bytes()
        },
        400,
        "invalid_request",
        "duplicate field `csr`",
    );
}

#[test]
fn duplicate_attestation_type_keys_are_refused() {
    refused_body(
        |setup| {
            let csr = serde_json::to_string(&setup.csr).unwrap();
            format!(
                "{{\"csr\":{csr},\"attestation\":{{\"type\":\"jwt\",\"attestor\":\"k8s\",\"type\":\"join_token\",\"token\":\"{}\"}}}}",
                setup.token
            )
            .into_bytes()
        },
        400,
        "invalid_request",
        "duplicate field `type`",
    );
}

#[test]
fn unknown_field_naming_an_identity_is_refused() {
    refused_body(
        |setup| {
            let mut body = svid_request(&setup.csr, &setup.token);
            body["spiffe_id"] = json!("spiffe://example.org/sigil/admin/admin");
            serde_json::to_vec(&body).unwrap()
        },
        400,
        "invalid_request",
        "unknown field `spiffe_id`",
    );
}

#[test]
fn unknown_field_in_a_join_token_request_is_refused() {
    let setup = Setup::new();
    let before = Snapshot::take(&setup.dir);
    let response = admin_post(
        &setup.server,
        "/admin/v1/join-tokens",
        &json!({"spiffe_id": "spiffe://example.org/agents/ca", "is_ca": true}),
    );
    assert_error(&response, 400, "invalid_request");
    assert!(error_message(&response).contains("unknown field `is_ca`"));
    before.assert_unchanged(&setup.dir, setup.server);
}

#[test]
fn invalid_utf8_in_json_is_refused() {
    refused_body(
        |setup| {
            // `join\xfftoken`: not UTF-8, so not JSON.
            let mut body = setup.body().into_bytes();
            let at = body.windows(10).position(|w| w == b"join_token").unwrap();
            body[at + 4] = 0xff;
            body
        },
        400,
        "invalid_request",
        "request body",
    );
}

// Framing.

#[test]
fn content_length_without_a_body_is_refused() {
    refused_raw(
        |setup| {
            setup
                .head("Content-Type: application/json\r\nContent-Length: 1000\r\n")
                .into_bytes()
        },
        true,
        "invalid_request",
    );
}

#[test]
fn content_length_longer_than_the_body_sent_is_refused() {
    // A good body, but the headers promise more: the server must not act
    // on the part it got.
    refused_raw(
        |setup| {
            let body = setup.body();
            let head = setup.head(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len() + 100
            ));
            format!("{head}{body}").into_bytes()
        },
        true,
        "invalid_request",
    );
}

#[test]
fn chunked_body_that_never_ends_is_refused() {
    refused_raw(
        |setup| {
            let body = setup.body();
            let head =
                setup.head("Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n");
            format!("{head}{:x}\r\n{body}\r\n", body.len()).into_bytes()
        },
        true,
        "invalid_request",
    );
}

#[test]
fn post_with_headers_and_no_body_is_refused() {
    refused_raw(
        |setup| {
            setup
                .head("Content-Type: application/json\r\nConnection: close\r\n")
                .into_bytes()
        },
        false,
        "invalid_request",
    );
}

#[test]
fn content_length_and_chunked_together_cannot_smuggle_a_request() {
    // A front end trusting Content-Length sees one request; a server
    // trusting Transfer-Encoding sees an empty body, then a second request
    // that redeems the token. The server answers the first and closes.
    refused_raw(
        |setup| {
            let body = setup.body();
            let smuggled = format!(
                "0\r\n\r\nPOST /v1/svid HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let head = setup.head(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                smuggled.len()
            ));
            format!("{head}{smuggled}").into_bytes()
        },
        false,
        "invalid_request",
    );
}

// Requests that do not parse as HTTP/1.1 at all are refused by hyper
// before any route sees them: a bare 400 (431 for more headers than
// hyper reads) with `connection: close`. The refusal and the closed
// connection are what stops request smuggling; the bare body is the bug
// pinned by `framing_errors_get_json_errors`.

/// A head with these header lines and the good body after it.
fn with_good_body(setup: &Setup, headers: &str) -> Vec<u8> {
    format!("{}{}", setup.head(headers), setup.body()).into_bytes()
}

/// Two Content-Length headers that disagree, the second the good body's.
fn conflicting_content_lengths(setup: &Setup) -> Vec<u8> {
    let length = setup.body().len();
    with_good_body(
        setup,
        &format!(
            "Content-Type: application/json\r\nContent-Length: 5\r\nContent-Length: {length}\r\n"
        ),
    )
}

/// A transfer coding the server does not implement, in front of a good
/// body.
fn unsupported_transfer_coding(setup: &Setup) -> Vec<u8> {
    with_good_body(
        setup,
        "Content-Type: application/json\r\nTransfer-Encoding: gzip\r\n",
    )
}

/// A Content-Length with a sign, which lenient parsers accept.
fn signed_content_length(setup: &Setup) -> Vec<u8> {
    let length = setup.body().len();
    with_good_body(
        setup,
        &format!("Content-Type: application/json\r\nContent-Length: +{length}\r\n"),
    )
}

/// A thousand header lines (hyper reads a hundred). Small enough to be
/// read whole, so the server's close cannot reset the answer away.
fn header_flood(setup: &Setup) -> Vec<u8> {
    let length = setup.body().len();
    let flood: String = (0..1000).map(|n| format!("X-Flood-{n}: 1\r\n")).collect();
    with_good_body(
        setup,
        &format!("Content-Type: application/json\r\nContent-Length: {length}\r\n{flood}"),
    )
}

/// Sends a request hyper cannot parse, and asserts `status`, a closed
/// connection with nothing else answered, and no change. Hyper answers
/// these before any route, with a bare status rather than a JSON error:
/// the README names this exception.
fn refused_by_the_parser(request: fn(&Setup) -> Vec<u8>, status: u16) {
    let setup = Setup::new();
    let request = request(&setup);
    let before = Snapshot::take(&setup.dir);
    let (response, rest) = raw_http(&setup.server, &request, false);
    assert_eq!(response.status, status, "{}", body_text(&response));
    assert_eq!(
        response.headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    before.assert_unchanged(&setup.dir, setup.server);
}

#[test]
fn conflicting_content_lengths_are_refused_and_the_connection_closed() {
    refused_by_the_parser(conflicting_content_lengths, 400);
}

#[test]
fn unsupported_transfer_coding_is_refused_and_the_connection_closed() {
    refused_by_the_parser(unsupported_transfer_coding, 400);
}

#[test]
fn signed_content_length_is_refused_and_the_connection_closed() {
    refused_by_the_parser(signed_content_length, 400);
}

#[test]
fn header_flood_is_refused_and_the_connection_closed() {
    refused_by_the_parser(header_flood, 431);
}

// Content types, methods, routes.

/// Sends the good body with this content type, and asserts 415 and no
/// change.
fn unsupported_media_type(content_type: Option<&str>) {
    let setup = Setup::new();
    let body = match content_type {
        Some(multipart) if multipart.starts_with("multipart/") => format!(
            "--x\r\nContent-Disposition: form-data; name=\"json\"\r\nContent-Type: application/json\r\n\r\n{}\r\n--x--\r\n",
            setup.body()
        ),
        _ => setup.body(),
    };
    let before = Snapshot::take(&setup.dir);
    let response = send(
        &setup.server.anonymous(),
        Method::POST,
        "/v1/svid",
        content_type,
        body.into_bytes(),
    );
    assert_error(&response, 415, "unsupported_media_type");
    before.assert_unchanged(&setup.dir, setup.server);
}

#[test]
fn text_plain_content_type_is_refused() {
    unsupported_media_type(Some("text/plain"));
}

#[test]
fn missing_content_type_is_refused() {
    unsupported_media_type(None);
}

#[test]
fn multipart_content_type_is_refused() {
    unsupported_media_type(Some("multipart/form-data; boundary=x"));
}

#[test]
fn json_lookalike_content_type_is_refused() {
    unsupported_media_type(Some("application/json-patch+json"));
}

#[test]
fn methods_a_route_does_not_take_are_refused() {
    let setup = Setup::new();
    let before = Snapshot::take(&setup.dir);
    for (method, path) in [
        (Method::GET, "/v1/svid"),
        (Method::PUT, "/v1/svid"),
        (Method::PUT, "/v1/renew"),
        (Method::DELETE, "/admin/v1/join-tokens"),
        (Method::PATCH, "/admin/v1/revocations"),
        (Method::POST, "/admin/v1/certificates"),
        (Method::DELETE, "/admin/v1/audit"),
        (Method::POST, "/v1/bundle"),
    ] {
        let body = setup.body().into_bytes();
        let response = send(
            &setup.server.admin(),
            method.clone(),
            path,
            Some("application/json"),
            body,
        );
        assert_error(&response, 405, "method_not_allowed");
    }
    before.assert_unchanged(&setup.dir, setup.server);
}

#[test]
fn unknown_routes_get_a_json_404() {
    let setup = Setup::new();
    let before = Snapshot::take(&setup.dir);
    for path in [
        "/v2/svid",
        "/v1/svid/",
        "/v1/svid/extra",
        "/V1/SVID",
        "/admin/v1/join-tokens/../revocations",
        "/admin/v2/join-tokens",
        "/%2e%2e/admin/v1/join-tokens",
    ] {
        let body = setup.body().into_bytes();
        let response = send(
            &setup.server.admin(),
            Method::POST,
            path,
            Some("application/json"),
            body,
        );
        assert_error(&response, 404, "not_found");
    }
    before.assert_unchanged(&setup.dir, setup.server);
}

#[test]
fn crl_path_traversal_reads_no_file() {
    let setup = Setup::new();
    let before = Snapshot::take(&setup.dir);
    for path in [
        "/v1/crl/..%2F..%2Fsigil.db",
        "/v1/crl/..%2Fca%2Fissuing.key",
    ] {
        let response = block_on(setup.server.anonymous().get(path)).unwrap();
        assert_error(&response, 404, "not_found");
        assert!(!body_text(&response).contains("PRIVATE KEY"));
    }
    before.assert_unchanged(&setup.dir, setup.server);
}
