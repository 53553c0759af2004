//! Request IDs: every request gets one, carried by a tracing span around
//! its handling (so every log line of the request names it) and returned
//! in the `x-request-id` header, so that a client's report can be matched
//! with the log.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use ring::rand::{SecureRandom, SystemRandom};
use tracing::Instrument;

/// The response header that carries the request ID.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A fresh request ID: 16 lowercase hex digits. An ID matches log lines
/// with a client's report, so it must be unique, not secret: a counter
/// from a random start, drawn once per process, spread by a bijection so
/// that neighbouring IDs do not look alike. No system call per request.
fn new_request_id() -> String {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    let next = NEXT.get_or_init(|| {
        let mut seed = [0u8; 8];
        // Without randomness (never seen on Linux) the count starts at
        // zero: IDs stay unique within the process.
        let _ = SystemRandom::new().fill(&mut seed);
        AtomicU64::new(u64::from_le_bytes(seed))
    });
    hex::encode(spread(next.fetch_add(1, Ordering::Relaxed)).to_be_bytes())
}

/// SplitMix64's finalizer: a bijection on `u64`, so distinct counts give
/// distinct IDs.
fn spread(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
    fn request_ids_do_not_repeat_and_neighbours_look_unrelated() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        // Consecutive counts differ in about half their bits once spread.
        let differing = (spread(41) ^ spread(42)).count_ones();
        assert!((16..=48).contains(&differing), "{differing} bits differ");
    }
}
