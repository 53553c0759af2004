//! The trust bundle, as PEM and as a SPIFFE bundle (JWKS).

use anyhow::{Context, bail};
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::crl::BUNDLE_SEQUENCE_HEADER;
use super::{ApiError, AppState};
use crate::ca::CertificateAuthority;

/// How often, in seconds, bundle consumers should refresh.
const REFRESH_HINT_SECONDS: u64 = 300;

/// `GET /v1/bundle`: every root currently trusted, PEM, with the bundle's
/// sequence in a header.
pub(super) async fn pem(State(state): State<AppState>) -> impl IntoResponse {
    let ca = state.issuance.ca();
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-pem-file"),
            ),
            (
                BUNDLE_SEQUENCE_HEADER,
                HeaderValue::from(ca.bundle_sequence()),
            ),
        ],
        ca.bundle_pem(),
    )
}

/// `GET /v1/bundle.spiffe`: the SPIFFE bundle format.
pub(super) async fn spiffe(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let bundle = spiffe_bundle_json(&state.issuance.ca()).map_err(ApiError::internal)?;
    Ok(([(CONTENT_TYPE, "application/json")], bundle))
}

/// Renders the SPIFFE trust bundle: a JWKS whose keys are the roots, each
/// with `use: x509-svid` and its certificate in `x5c`; its sequence grows
/// whenever a root rotation changes them.
pub(super) fn spiffe_bundle_json(ca: &CertificateAuthority) -> anyhow::Result<String> {
    let keys = ca
        .roots()
        .map(|root| {
            let (_, cert) = X509Certificate::from_der(root.der()).context("root CA certificate")?;
            let mut key = jwk_of(&cert)?;
            key["use"] = json!("x509-svid");
            key["x5c"] = json!([STANDARD.encode(root.der())]);
            Ok(key)
        })
        .collect::<anyhow::Result<Vec<Value>>>()?;
    let bundle = json!({
        "keys": keys,
        "spiffe_sequence": ca.bundle_sequence(),
        "spiffe_refresh_hint": REFRESH_HINT_SECONDS,
    });
    Ok(bundle.to_string())
}

fn jwk_of(cert: &X509Certificate<'_>) -> anyhow::Result<Value> {
    let spki = cert.public_key();
    let algorithm = &spki.algorithm.algorithm;
    let point = spki.subject_public_key.data.as_ref();
    if *algorithm == OID_SIG_ED25519 {
        return Ok(json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(point)}));
    }
    if *algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        bail!("root key algorithm {algorithm} has no JWK form here");
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .context("EC root key names no curve")?;
    let (name, size) = if curve == OID_EC_P256 {
        ("P-256", 32)
    } else if curve == OID_NIST_EC_P384 {
        ("P-384", 48)
    } else {
        bail!("root key curve {curve} has no JWK form here")
    };
    // An uncompressed point: 0x04, then X, then Y.
    if point.len() != 1 + 2 * size || point[0] != 0x04 {
        bail!("root EC key is not an uncompressed point");
    }
    Ok(json!({
        "kty": "EC",
        "crv": name,
        "x": URL_SAFE_NO_PAD.encode(&point[1..=size]),
        "y": URL_SAFE_NO_PAD.encode(&point[1 + size..]),
    }))
}
