//! `GET /metrics`, and the layer that times every request and counts
//! renewals by outcome.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use super::AppState;
use super::error::ErrorCode;
use super::svid::AttestorLabel;
use crate::metrics::ISSUED;

/// The content type of the Prometheus text format the metrics use.
const PROMETHEUS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`: Prometheus text. Public, like the bundle and the CRLs:
/// it holds counts, routes, attestor names and CA key IDs, no secrets.
pub(super) async fn render(State(state): State<AppState>) -> Response {
    let text = state.metrics.render(
        &state.issuance.ca(),
        &state.crls.snapshot(),
        OffsetDateTime::now_utc(),
    );
    ([(CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response()
}

/// The route label of a request: the route as the router names it (never
/// the path a client sent), or `unmatched`.
pub(super) fn route_of(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned()
}

/// The method label: one of the methods HTTP defines, or `other` for
/// whatever a client made up (each label value is a new series).
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: times each request, from its whole body read to its answer,
/// by route, method and status; and counts every answered `POST /v1/svid`
/// by attestor and outcome and every `POST /v1/renew` by outcome (`issued`
/// or the error code, rate-limit refusals included).
pub(super) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = route_of(&request);
    let method = method_label(request.method());
    let response = next.run(request).await;
    let status = response.status();
    let outcome = match response.extensions().get::<ErrorCode>() {
        Some(code) => code.0,
        None if status.is_success() => ISSUED,
        None => "other",
    };
    match (method, route.as_str()) {
        ("POST", "/v1/svid") => {
            // Refused before the handler read the body: no attestor known.
            let attestor = response
                .extensions()
                .get::<AttestorLabel>()
                .map_or("none", |label| label.0.as_str());
            state.metrics.issuance(attestor, outcome);
        }
        ("POST", "/v1/renew") => state.metrics.renewal(outcome),
        _ => {}
    }
    state
        .metrics
        .request(&route, method, status.as_u16(), started.elapsed());
    response
}
