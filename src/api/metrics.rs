//! `GET /metrics`, and the layer that times every request and counts
//! renewals by outcome.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use super::AppState;
use super::error::ErrorCode;
use crate::metrics::ISSUED;

/// The content type of the Prometheus text format the metrics use.
const PROMETHEUS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`: Prometheus text. Public, like the bundle and the CRLs:
/// it holds counts, routes, attestor names and CA key IDs, no secrets.
pub(super) async fn render(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(
        state.issuance.ca(),
        &state.crls.snapshot(),
        OffsetDateTime::now_utc(),
    );
    ([(CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response()
}

/// Middleware: times each request by route (as the router names it, not
/// the path a client sent), method and status, and counts renewals by
/// outcome (`issued` or the error code).
pub(super) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let code = response.extensions().get::<ErrorCode>().map(|code| code.0);
    if route == "/v1/renew" {
        let outcome = match code {
            Some(code) => code,
            None if status.is_success() => ISSUED,
            None => "other",
        };
        state.metrics.renewal(outcome);
    }
    state
        .metrics
        .request(&route, method.as_str(), status.as_u16(), started.elapsed());
    response
}
