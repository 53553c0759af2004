//! The OpenAPI document against the real server: it is served without a
//! client certificate or a rate limit, every operation it documents reaches
//! a handler (not the router's 404 or 405 fallback) and answers a status,
//! content type, headers and error code the document lists, and every
//! method it does not document for a path gets 405.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use http::Method;
use serde_json::Value;
use sigil::client::{CaClient, Response};
use x509_parser::extensions::ParsedExtension;

/// The methods probed on every documented path (HEAD answers wherever GET
/// does, so it is left out).
const PROBED: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

fn fetch_document(client: &CaClient) -> Value {
    let response = block_on(client.get("/openapi.json")).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.content_type.as_deref(), Some("application/json"));
    let spec: Value = response.json().unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["info"]["title"], "Sigil");
    assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
    spec
}

/// `value`, or what its `$ref` names.
fn deref<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => spec
            .pointer(reference.strip_prefix('#').unwrap())
            .unwrap_or_else(|| panic!("{reference} does not resolve")),
        None => value,
    }
}

/// The key id of an issuer whose CRL the server publishes.
fn issuer_key_id(server: &Server) -> String {
    let response = block_on(server.anonymous().get("/v1/crls")).unwrap();
    assert_eq!(response.status, 200);
    let blocks = pem::parse_many(&response.body).unwrap();
    let (_, crl) = x509_parser::parse_x509_crl(blocks[0].contents()).unwrap();
    crl.extensions()
        .iter()
        .find_map(|extension| match extension.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| hex::encode(id.0))
            }
            _ => None,
        })
        .expect("the CRL names its issuer's key")
}

/// The path with its parameters filled in.
fn fill(path: &str, key_id: &str) -> String {
    path.split('/')
        .map(|segment| match segment {
            "{issuer_key_id}" => key_id.to_owned(),
            "{spiffe_id}" => "spiffe%3A%2F%2Fexample.org%2Fagents%2Fnever-banned".to_owned(),
            other if other.starts_with('{') => {
                panic!("{path}: give the path parameter {other} a value in this test")
            }
            other => other.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn send(client: &CaClient, method: Method, path: &str) -> Response {
    let response = if method == Method::POST || method == Method::PUT || method == Method::PATCH {
        block_on(client.request(
            method.clone(),
            path,
            Some("application/json"),
            b"{}".to_vec(),
        ))
    } else {
        block_on(client.request(method.clone(), path, None, Vec::new()))
    };
    response.unwrap_or_else(|e| panic!("{method} {path}: {e:#}"))
}

fn error_of(response: &Response) -> (String, String) {
    let body: Value = response.json().unwrap_or(Value::Null);
    (
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// Whether the router's fallbacks answered: no such route (the fallback's
/// own message, which handlers' 404s never use), or no such method.
fn fell_through(response: &Response) -> Option<&'static str> {
    let (code, message) = error_of(response);
    match (response.status.as_u16(), code.as_str()) {
        (404, "not_found") if message == "no such route" => Some("404 no such route"),
        (405, _) => Some("405"),
        _ => None,
    }
}

/// The answer is one the operation documents: status, content type,
/// required headers, error code.
fn assert_documented(spec: &Value, name: &str, operation: &Value, response: &Response) {
    let body = String::from_utf8_lossy(&response.body);
    let status = response.status.as_u16().to_string();
    let documented = operation["responses"]
        .get(&status)
        .or_else(|| operation["responses"].get("default"))
        .unwrap_or_else(|| panic!("{name} answered {status}, which is not documented: {body}"));
    let documented = deref(spec, documented);
    match documented["content"].as_object() {
        Some(types) => {
            let essence = response
                .content_type
                .as_deref()
                .and_then(|value| value.split(';').next())
                .unwrap_or_default()
                .trim();
            assert!(
                types.contains_key(essence),
                "{name} {status}: content type {essence:?}, documented {:?}",
                types.keys().collect::<Vec<_>>()
            );
        }
        None => assert!(
            response.body.is_empty(),
            "{name} {status}: a body where none is documented"
        ),
    }
    for (header, definition) in documented["headers"].as_object().into_iter().flatten() {
        if deref(spec, definition)["required"] == true {
            assert!(
                response.headers.contains_key(header.as_str()),
                "{name} {status}: no {header} header"
            );
        }
    }
    if response.status.as_u16() >= 400 {
        let (code, _) = error_of(response);
        let codes = documented["x-error-codes"].as_array().unwrap();
        assert!(
            codes.iter().any(|documented| *documented == code),
            "{name} {status}: code {code:?} is not among {codes:?}"
        );
    }
}

#[test]
fn every_documented_operation_reaches_a_handler_and_no_other_method_does() {
    let dir = DataDir::init();
    let server = dir.start();
    let spec = fetch_document(&server.anonymous());
    let admin = server.admin();
    let key_id = issuer_key_id(&server);

    // The fallback is told apart from handlers' own 404s.
    let nowhere = send(&admin, Method::GET, "/v1/no-such-route");
    assert_eq!(fell_through(&nowhere), Some("404 no such route"));
    let unknown_crl = send(&admin, Method::GET, "/v1/crl/00");
    assert_eq!(
        (unknown_crl.status.as_u16(), fell_through(&unknown_crl)),
        (404, None)
    );

    let paths = spec["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        let url = fill(path, &key_id);
        for method in PROBED {
            let name = format!("{method} {path}");
            let response = send(&admin, method.clone(), &url);
            match item.get(method.as_str().to_lowercase()) {
                Some(operation) => {
                    operations += 1;
                    assert_eq!(
                        fell_through(&response),
                        None,
                        "{name} is documented but the router has no such route: {}",
                        String::from_utf8_lossy(&response.body)
                    );
                    assert_documented(&spec, &name, operation, &response);
                }
                None => {
                    assert_eq!(
                        (response.status.as_u16(), error_of(&response).0.as_str()),
                        (405, "method_not_allowed"),
                        "{name} is not documented, yet the server answered it: {}",
                        String::from_utf8_lossy(&response.body)
                    );
                }
            }
        }
    }
    assert!(operations >= 15, "only {operations} operations documented");
}

#[test]
fn the_document_needs_no_certificate_and_no_rate_limit() {
    let dir = DataDir::init();
    let server = dir.start_with(&["--rate-limit", "0.01", "--rate-burst", "2"]);
    let anonymous = server.anonymous();
    for _ in 0..6 {
        fetch_document(&anonymous);
    }
    // The limit is in force: the admin routes share it.
    let admin = server.admin();
    let answers: Vec<u16> = (0..3)
        .map(|_| {
            block_on(admin.get("/admin/v1/certificates"))
                .unwrap()
                .status
                .as_u16()
        })
        .collect();
    assert_eq!(answers, [200, 200, 429]);
    fetch_document(&anonymous);
}
