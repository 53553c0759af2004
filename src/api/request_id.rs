//! Request IDs: every request gets one, carried by a tracing span around
//! its handling (so every log line of the request names it) and returned
//! in the `x-request-id` header, so that a client's report can be matched
//! with the log.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use ring::rand::{SecureRandom, SystemRandom};
use tracing::Instrument;

/// The response header that carries the request ID.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A fresh request ID: 16 lowercase hex digits.
fn new_request_id() -> String {
    let mut bytes = [0u8; 8];
    // Without randomness (never seen on Linux), IDs are still unique
    // enough within one log line's context: all zeros marks them.
    let _ = SystemRandom::new().fill(&mut bytes);
    hex::encode(bytes)
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
}
