//! Request IDs: every request gets one, carried by a tracing span around
//! its handling (so every log line of the request names it) and returned
//! in the `x-request-id` header, so that a client's report can be matched
//! with the log.

use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The response header that carries the request ID.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A fresh request ID: 16 lowercase hex digits. An ID matches log lines
/// with a client's report, so it must be unique; and since every client
/// sees its own, it must not tell how many requests the CA serves. So it is
/// a count hashed with a key drawn once per process (SipHash, with the
/// standard library's random keys): unlike a random draw, no system call
/// per request, and distinct IDs but for a 2^-64 chance per pair.
fn new_request_id() -> String {
    static IDS: OnceLock<(RandomState, AtomicU64)> = OnceLock::new();
    let (key, count) = IDS.get_or_init(|| (RandomState::new(), AtomicU64::new(0)));
    hex::encode(
        key.hash_one(count.fetch_add(1, Ordering::Relaxed))
            .to_be_bytes(),
    )
}

/// Middleware: runs the request inside a `request` span carrying its ID,
/// method and path, and names the ID in the response.
pub(super) async fn assign(request: Request, next: Next) -> Response {
    let id = new_request_id();
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        // The route, not the client's path: no client text in every line.
        route = %super::metrics::route_of(&request),
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| tracing::debug!(status = response.status().as_u16(), "answered"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn request_ids_do_not_repeat() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
