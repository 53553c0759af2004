//! Client certificates on routes that need one.
//!
//! The CA's TLS listener only checks proof of key possession; each route
//! judges the certificate here, so that every refusal is JSON. A certificate
//! passes when its chain verifies to the bundle (webpki), it is an
//! X509-SVID of this trust domain, and this exact certificate (byte for
//! byte, not just its serial) is in the store.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rustls_pki_types::{CertificateDer, UnixTime};
use sigil_core::SpiffeId;

use super::{ApiError, AppState};
use crate::ca::CertificateAuthority;
use crate::store::CertificateRecord;
use crate::svid::read_svid;

/// The certificate chain a client presented in the TLS handshake, attached
/// to every request on that connection.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Arc<[CertificateDer<'static>]>);

/// The client's address, attached to every request on its connection.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// The client's IP address, where the connection knows it.
#[derive(Debug, Clone, Copy)]
pub struct SourceIp(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for SourceIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts.extensions.get::<PeerAddr>().map(|peer| peer.0.ip()),
        ))
    }
}

/// Verifies a client chain against the roots of the CA in force, adding
/// its issuing CAs (which a chain may lack).
fn verify_chain(
    ca: &CertificateAuthority,
    chain: &[CertificateDer<'static>],
) -> Result<(), ApiError> {
    let leaf = chain
        .first()
        .ok_or_else(ApiError::client_certificate_required)?;
    let end_entity = webpki::EndEntityCert::try_from(leaf).map_err(|e| {
        ApiError::invalid_client_certificate(format!("client certificate does not parse: {e}"))
    })?;
    // Borrowed, not copied: this runs on every renewal and admin call.
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .chain(ca.intermediates())
        .map(|certificate| CertificateDer::from(certificate.as_ref()))
        .collect();
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            ca.anchors(),
            &intermediates,
            UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(|e| {
            ApiError::invalid_client_certificate(format!("client certificate does not verify: {e}"))
        })?;
    Ok(())
}

/// A caller whose client certificate passed every check; only
/// [`authenticate`] makes one.
#[derive(Debug, Clone)]
pub struct Caller {
    spiffe_id: SpiffeId,
    record: CertificateRecord,
}

impl Caller {
    /// The caller's identity.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The store's record of the certificate the caller presented.
    pub fn record(&self) -> &CertificateRecord {
        &self.record
    }
}

/// A caller allowed to use the admin API; only its extractor makes one.
#[derive(Debug, Clone)]
pub struct Admin(Caller);

impl Admin {
    /// The admin's identity.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.0.spiffe_id
    }
}

/// Runs every check on a presented chain.
///
/// # Errors
///
/// `client_certificate_required` without a certificate;
/// `invalid_client_certificate` when the chain does not verify to the
/// bundle (also when it has expired), the certificate is not an X509-SVID of
/// this trust domain, or this exact certificate is not in the store;
/// `revoked` or `banned` for a revoked certificate or a banned identity;
/// `unavailable` when the store cannot be read.
pub async fn authenticate(
    state: &AppState,
    peer: Option<&PeerCertificates>,
) -> Result<Caller, ApiError> {
    authenticate_with(state, peer, Revoked::Refuse).await
}

/// Whether a revoked certificate is refused at once, or passed on for the
/// renewal line to judge (a certificate superseded by a retry that renews
/// anyway reveals a second holder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revoked {
    Refuse,
    LetLineageJudge,
}

async fn authenticate_with(
    state: &AppState,
    peer: Option<&PeerCertificates>,
    revoked: Revoked,
) -> Result<Caller, ApiError> {
    let chain = match peer {
        Some(PeerCertificates(chain)) if !chain.is_empty() => chain,
        _ => return Err(ApiError::client_certificate_required()),
    };
    verify_chain(&state.issuance.ca(), chain)?;
    let (spiffe_id, serial) = read_svid(&chain[0]).map_err(ApiError::invalid_client_certificate)?;
    if !spiffe_id.is_member_of(state.policy().namespace.trust_domain()) {
        return Err(ApiError::invalid_client_certificate(
            "client certificate is from a foreign trust domain",
        ));
    }
    let stored = state
        .issuance
        .store()
        .find_certificate(serial)
        .await?
        .filter(|stored| stored.record.der == chain[0].as_ref())
        .ok_or_else(|| {
            ApiError::invalid_client_certificate("client certificate was not issued by this CA")
        })?;
    // A ban revokes every live certificate too; name the ban, the cause.
    if stored.banned {
        return Err(ApiError::banned(&spiffe_id));
    }
    if stored.revocation.is_some() && revoked == Revoked::Refuse {
        return Err(ApiError::revoked(format!(
            "certificate {serial} is revoked"
        )));
    }
    Ok(Caller {
        spiffe_id,
        record: stored.record,
    })
}

/// Counts a caller refused for who it is, for the audit log (per reason
/// and address, like every anonymous refusal): a forged, foreign, expired,
/// revoked or missing client certificate, or an agent calling admin routes.
fn count_refusal(state: &AppState, parts: &Parts, reason: &str, error: &ApiError) {
    if error.refuses_the_caller() {
        let source = parts.extensions.get::<PeerAddr>().map(|peer| peer.0.ip());
        state.refusals.count(reason, source);
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(state, parts.extensions.get::<PeerCertificates>())
            .await
            .inspect_err(|error| {
                let reason = format!("client certificate: {}", error.code());
                count_refusal(state, parts, &reason, error);
            })
    }
}

/// A caller renewing its SVID: authenticated like a [`Caller`], except that
/// revocation is left to the renewal line (see `Store::renew`).
#[derive(Debug, Clone)]
pub(super) struct RenewingCaller(pub(super) Caller);

impl FromRequestParts<AppState> for RenewingCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts.extensions.get::<PeerCertificates>();
        authenticate_with(state, peer, Revoked::LetLineageJudge)
            .await
            .map(Self)
            .inspect_err(|error| {
                let reason = format!("renewal: {}", error.code());
                count_refusal(state, parts, &reason, error);
            })
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = authenticate(state, parts.extensions.get::<PeerCertificates>())
            .await
            .inspect_err(|error| {
                let reason = format!("admin route: {}", error.code());
                count_refusal(state, parts, &reason, error);
            })?;
        if !state.policy().namespace.is_admin(&caller.spiffe_id) {
            let error = ApiError::forbidden(format!("{} is not an admin", caller.spiffe_id));
            // Who probed the admin API is worth knowing: an agent's
            // credential may be in the wrong hands.
            let reason = format!("admin route called by {}", caller.spiffe_id);
            count_refusal(state, parts, &reason, &error);
            return Err(error);
        }
        Ok(Admin(caller))
    }
}
