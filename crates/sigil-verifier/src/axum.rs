//! Serving an axum router over mutual TLS with this crate's verifier:
//! handlers get the caller's [`PeerIdentity`] as an extractor, and a
//! connection whose peer no longer passes (revoked, expired, no longer
//! allowed) is closed at once, keep-alive and HTTP/2 included.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, UnixTime};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::identity::PeerIdentity;
use crate::verifier::SpiffeClientVerifier;

/// How long a client has to finish the TLS handshake, and to send a
/// request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl<S: Send + Sync> FromRequestParts<S> for PeerIdentity {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<PeerIdentity>().cloned().ok_or((
            StatusCode::UNAUTHORIZED,
            "no verified peer identity on this connection",
        ))
    }
}

/// Serves `router` on `listener` with `config` (see
/// [`crate::server_config`], built with `verifier`) until the task is
/// dropped.
///
/// Each connection:
/// - runs `verifier`'s full check once more right after the handshake,
///   which also covers TLS sessions resumed under a configuration that
///   allows resumption;
/// - carries the client's [`PeerIdentity`] into every request, for handlers
///   to extract;
/// - is checked again, fully (revocation, roots, stale CRLs, policy), each
///   time the trust material changes, and closed when it no longer passes;
/// - is closed when the client's certificate expires.
///
/// At most 4,096 connections are served at once; a client has 10 s for
/// the handshake and for each request's headers.
///
/// ```no_run
/// # async fn run(
/// #     config: rustls::ServerConfig,
/// #     verifier: std::sync::Arc<sigil_verifier::SpiffeClientVerifier>,
/// # ) -> std::io::Result<()> {
/// use axum::{Router, routing::get};
/// use sigil_verifier::PeerIdentity;
///
/// let app = Router::new().route(
///     "/",
///     get(|peer: PeerIdentity| async move { peer.spiffe_id().to_string() }),
/// );
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8444").await?;
/// sigil_verifier::axum::serve(listener, std::sync::Arc::new(config), verifier, app).await
/// # }
/// ```
///
/// # Errors
///
/// Never returns except with an error of the listener that is not about
/// one connection.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    verifier: Arc<SpiffeClientVerifier>,
    router: Router,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // Wait for a free slot before taking the next connection.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return Ok(());
        };
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait, then go on.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Small answers go out at once, not after the peer's delayed ACK.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let verifier = Arc::clone(&verifier);
        let router = router.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let chain: Vec<CertificateDer<'static>> = match tls.get_ref().1.peer_certificates() {
                Some(chain) if !chain.is_empty() => {
                    chain.iter().map(|cert| cert.clone().into_owned()).collect()
                }
                _ => return,
            };
            let identity = match check(&verifier, &chain) {
                Ok(identity) => identity,
                Err(error) => {
                    tracing::info!(%error, "refused a peer after its handshake");
                    return;
                }
            };
            serve_connection(tls, identity, chain, verifier, router).await;
        });
    }
}

/// The most connections served at once.
const MAX_CONNECTIONS: usize = 4096;

fn check(
    verifier: &SpiffeClientVerifier,
    chain: &[CertificateDer<'static>],
) -> Result<PeerIdentity, rustls::Error> {
    verifier.verify(&chain[0], &chain[1..], UnixTime::now())
}

async fn serve_connection(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    identity: PeerIdentity,
    chain: Vec<CertificateDer<'static>>,
    verifier: Arc<SpiffeClientVerifier>,
    router: Router,
) {
    let mut updates = verifier.source().subscribe();
    let expires = tokio::time::Instant::now()
        + identity
            .not_after()
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
    let peer = identity.spiffe_id().clone();
    let app = router.layer(Extension(identity));
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT);
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            () = tokio::time::sleep_until(expires) => {
                tracing::info!(%peer, "closing the connection of a peer whose certificate expired");
                return;
            }
            changed = updates.changed() => {
                if changed.is_err() {
                    return;
                }
                if let Err(error) = check(&verifier, &chain) {
                    tracing::info!(%peer, %error, "closing the connection of a peer that no longer passes");
                    return;
                }
            }
        }
    }
}
