//! `GET /openapi.json`: the OpenAPI 3.1 description of the HTTP API, kept
//! in `openapi.json` beside this file and embedded in the binary. No client
//! certificate, no rate limit.
//!
//! The tests below keep it in step with the router: every `.route(...)` in
//! `mod.rs` is documented and every documented operation is routed, every
//! error code of `error.rs` is in the `Error` schema with its status, and
//! the document's own references and operations are well formed. The
//! end-to-end test `tests/openapi.rs` then calls each documented operation
//! on a real server.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// The document, as served.
const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /openapi.json`.
pub(super) async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::{BTreeMap, BTreeSet};

    use axum::body::to_bytes;
    use serde_json::Value;

    use super::*;

    /// The router's source, where every route is declared.
    const ROUTER: &str = include_str!("mod.rs");
    /// The error type's source, where every code is declared.
    const ERRORS: &str = include_str!("error.rs");

    const METHODS: [&str; 8] = [
        "get", "post", "put", "delete", "patch", "head", "options", "trace",
    ];

    fn spec() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    /// `(METHOD, path)` of every operation in the document.
    fn documented(spec: &Value) -> BTreeSet<(String, String)> {
        let mut operations = BTreeSet::new();
        for (path, item) in spec["paths"].as_object().expect("paths") {
            for key in item.as_object().expect("path item").keys() {
                if METHODS.contains(&key.as_str()) {
                    operations.insert((key.to_uppercase(), path.clone()));
                }
            }
        }
        operations
    }

    /// The source without whole-line `//` comments.
    fn code_only(source: &str) -> String {
        source
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Index just past the parenthesis that closes the one before `from`.
    fn close_paren(text: &str, from: usize) -> usize {
        let mut depth = 1usize;
        let mut in_string = false;
        let bytes = text.as_bytes();
        let mut at = from;
        while at < bytes.len() {
            match bytes[at] {
                b'\\' if in_string => at += 1,
                b'"' => in_string = !in_string,
                b'(' if !in_string => depth += 1,
                b')' if !in_string => {
                    depth -= 1;
                    if depth == 0 {
                        return at + 1;
                    }
                }
                _ => {}
            }
            at += 1;
        }
        panic!("unbalanced parentheses after byte {from} of mod.rs");
    }

    /// `(METHOD, path)` of every `.route("PATH", get(a).post(b))` in the
    /// router's source, however it is laid out.
    fn routed(source: &str) -> BTreeSet<(String, String)> {
        let code = code_only(source);
        for unsupported in [".nest(", ".nest_service(", ".route_service("] {
            assert!(
                !code.contains(unsupported),
                "mod.rs uses {unsupported}..., which this test cannot read: teach it, \
                 and document the routes in openapi.json"
            );
        }
        let mut routes = BTreeSet::new();
        for (start, _) in code.match_indices(".route(") {
            let rest = code[start + ".route(".len()..].trim_start();
            let rest = rest
                .strip_prefix('"')
                .unwrap_or_else(|| panic!("a .route( without a literal path: {rest:.60}"));
            let end = rest.find('"').expect("the path's closing quote");
            let path = &rest[..end];
            let mut rest = rest[end + 1..].trim_start();
            rest = rest
                .strip_prefix(',')
                .unwrap_or_else(|| panic!("{path}: expected a comma after the path"))
                .trim_start();
            // A chain of method routers: `get(a)`, `get(a).post(b)`, ...
            loop {
                let name_end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .expect("a method router");
                let method = &rest[..name_end];
                assert!(
                    METHODS.contains(&method),
                    "{path}: unknown method router {method:?} (`on`, `any` and \
                     services are not understood by this test)"
                );
                routes.insert((method.to_uppercase(), path.to_owned()));
                let after = rest[name_end..].trim_start();
                let args = after
                    .strip_prefix('(')
                    .unwrap_or_else(|| panic!("{path}: expected {method}(...)"));
                rest = args[close_paren(args, 0)..].trim_start();
                match rest.strip_prefix('.') {
                    Some(next) => rest = next.trim_start(),
                    None => break,
                }
            }
            let rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
            assert!(
                rest.starts_with(')'),
                "{path}: unexpected text after the method routers: {rest:.40}"
            );
        }
        routes
    }

    fn listed(set: &BTreeSet<(String, String)>) -> String {
        set.iter()
            .map(|(method, path)| format!("{method} {path}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let routes = routed(ROUTER);
        assert!(
            routes.len() >= 10,
            "the parser found too few routes in mod.rs: {}",
            listed(&routes)
        );
        let spec = spec();
        let documented = documented(&spec);
        let undocumented: BTreeSet<_> = routes.difference(&documented).cloned().collect();
        let unrouted: BTreeSet<_> = documented.difference(&routes).cloned().collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routed in src/api/mod.rs but missing from src/api/openapi.json: [{}]; \
             documented in src/api/openapi.json but not routed in src/api/mod.rs: [{}]",
            listed(&undocumented),
            listed(&unrouted)
        );
    }

    #[test]
    fn the_route_parser_reads_chains_and_any_layout() {
        let source = r#"
            Router::new()
                // .route("/commented", get(nothing))
                .route("/a", get(a::b))
                .route(
                    "/b/{id}",
                    get(handler).post(other)
                        .delete(|| async { ApiError::not_found() }),
                )
                .route_layer(layer(x))
        "#;
        let expected: BTreeSet<(String, String)> = [
            ("GET", "/a"),
            ("GET", "/b/{id}"),
            ("POST", "/b/{id}"),
            ("DELETE", "/b/{id}"),
        ]
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
        assert_eq!(routed(source), expected);
    }

    /// Follows a local `$ref` (`#/components/...`).
    fn resolve<'a>(spec: &'a Value, reference: &str) -> Option<&'a Value> {
        spec.pointer(reference.strip_prefix('#')?)
    }

    /// `value`, or what its `$ref` names.
    fn deref<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                resolve(spec, reference).unwrap_or_else(|| panic!("{reference} does not resolve"))
            }
            None => value,
        }
    }

    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(reference)) => found.push(reference),
                        _ => refs(value, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
            _ => {}
        }
    }

    /// Every operation: (method, path, operation).
    fn operations(spec: &Value) -> Vec<(String, String, &Value)> {
        let mut found = Vec::new();
        for (path, item) in spec["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                if METHODS.contains(&method.as_str()) {
                    found.push((method.to_uppercase(), path.clone(), operation));
                }
            }
        }
        found
    }

    #[test]
    fn the_document_is_well_formed() {
        let spec = spec();
        assert_eq!(spec["openapi"], "3.1.0");
        assert_eq!(spec["info"]["title"], "Sigil");
        assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
        for server in spec["servers"].as_array().expect("servers") {
            let url = server["url"].as_str().expect("a server URL");
            assert!(url.starts_with('/'), "server URL {url} is not relative");
        }

        let mut found = Vec::new();
        refs(&spec, &mut found);
        assert!(!found.is_empty());
        for reference in found {
            assert!(
                reference.starts_with("#/") && resolve(&spec, reference).is_some(),
                "$ref {reference} does not resolve inside the document"
            );
        }

        let mut ids = BTreeSet::new();
        for (method, path, operation) in operations(&spec) {
            let name = format!("{method} {path}");
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no operationId"));
            assert!(ids.insert(id.to_owned()), "operationId {id} is not unique");
            let responses = operation["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{name} has no responses"));
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{name} has no 2xx response"
            );
            for (status, response) in responses {
                let response = deref(&spec, response);
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/Error",
                        "{name} {status} must be the Error shape"
                    );
                    assert!(
                        response["x-error-codes"].is_array(),
                        "{name} {status} lists no x-error-codes"
                    );
                }
            }
            // Path templates and path parameters agree.
            let params: BTreeSet<String> = operation["parameters"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|param| deref(&spec, param))
                .filter(|param| param["in"] == "path")
                .map(|param| param["name"].as_str().expect("a name").to_owned())
                .collect();
            let templated: BTreeSet<String> = path
                .split('/')
                .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_owned)
                .collect();
            assert_eq!(params, templated, "{name}: path parameters");
        }
    }

    #[test]
    fn who_may_call_each_route_is_documented() {
        let spec = spec();
        for (method, path, operation) in operations(&spec) {
            let schemes: Vec<&str> = operation["security"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .flat_map(|requirement| requirement.as_object().expect("requirement").keys())
                .map(String::as_str)
                .collect();
            let expected: &[&str] = if path.starts_with("/admin/") {
                &["adminSvid"]
            } else if path == "/v1/renew" {
                &["agentSvid"]
            } else {
                &[]
            };
            assert_eq!(schemes, expected, "{method} {path}: security");
            let needs_certificate = !expected.is_empty();
            let has_401 = operation["responses"].get("401").is_some();
            if needs_certificate {
                assert!(
                    has_401,
                    "{method} {path} needs a certificate but has no 401"
                );
            }
        }
        for scheme in ["adminSvid", "agentSvid"] {
            assert_eq!(
                spec["components"]["securitySchemes"][scheme]["type"],
                "mutualTLS"
            );
        }
    }

    /// `code -> status` of every `Self::new(StatusCode::X, "code", ...)` in
    /// `error.rs`.
    fn codes_in_source(source: &str) -> BTreeMap<String, u16> {
        let mut codes = BTreeMap::new();
        for (start, _) in source.match_indices("StatusCode::") {
            let rest = &source[start + "StatusCode::".len()..];
            let name_end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
                .expect("a status name");
            let name = &rest[..name_end];
            let Some(after) = rest[name_end..].trim_start().strip_prefix(',') else {
                continue; // not a constructor's status argument
            };
            let Some(literal) = after.trim_start().strip_prefix('"') else {
                continue;
            };
            let code = &literal[..literal.find('"').expect("closing quote")];
            let status = match name {
                "BAD_REQUEST" => 400,
                "UNAUTHORIZED" => 401,
                "FORBIDDEN" => 403,
                "NOT_FOUND" => 404,
                "METHOD_NOT_ALLOWED" => 405,
                "CONFLICT" => 409,
                "PAYLOAD_TOO_LARGE" => 413,
                "UNSUPPORTED_MEDIA_TYPE" => 415,
                "TOO_MANY_REQUESTS" => 429,
                "INTERNAL_SERVER_ERROR" => 500,
                "SERVICE_UNAVAILABLE" => 503,
                other => panic!("error.rs uses StatusCode::{other}; add it to this test"),
            };
            let previous = codes.insert(code.to_owned(), status);
            assert!(
                previous.is_none_or(|previous| previous == status),
                "{code} has two statuses in error.rs"
            );
        }
        codes
    }

    #[test]
    fn every_error_code_is_documented_with_its_status() {
        let spec = spec();
        let in_source = codes_in_source(ERRORS);
        assert!(in_source.len() >= 15, "found only {in_source:?}");
        let documented: BTreeSet<String> = spec["components"]["schemas"]["Error"]["properties"]
            ["error"]["properties"]["code"]["enum"]
            .as_array()
            .expect("the code enum")
            .iter()
            .map(|code| code.as_str().expect("a code").to_owned())
            .collect();
        let known: BTreeSet<String> = in_source.keys().cloned().collect();
        assert_eq!(
            documented, known,
            "the Error schema's codes (left) and error.rs's (right) differ"
        );

        // Each response lists codes of its own status, and together they
        // use every code.
        let mut used = BTreeSet::new();
        let mut check = |context: &str, status: &str, response: &Value| {
            for code in response["x-error-codes"].as_array().into_iter().flatten() {
                let code = code.as_str().expect("a code");
                assert_eq!(
                    in_source.get(code).map(u16::to_string).as_deref(),
                    Some(status),
                    "{context}: {code} is not a {status} code"
                );
                used.insert(code.to_owned());
            }
        };
        for (method, path, operation) in operations(&spec) {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                check(&format!("{method} {path}"), status, deref(&spec, response));
            }
        }
        // Responses that no operation names (unknown routes, wrong methods).
        for (name, response) in spec["components"]["responses"]
            .as_object()
            .expect("responses")
        {
            let codes = response["x-error-codes"].as_array().expect("x-error-codes");
            let code = codes[0].as_str().expect("a code");
            let status = in_source[code].to_string();
            check(name, &status, response);
        }
        let unused: BTreeSet<_> = known.difference(&used).collect();
        assert!(unused.is_empty(), "no response lists {unused:?}");
    }

    #[tokio::test]
    async fn the_handler_serves_the_document_as_json() {
        let response = document().await.into_response();
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let served: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(served, spec());
    }
}
