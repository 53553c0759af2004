//! Serving an axum router over mutual TLS with this crate's verifier:
//! handlers get the caller's [`PeerIdentity`] as an extractor, and a
//! connection whose peer is revoked is closed as soon as the CRL says so,
//! keep-alive and HTTP/2 included.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::identity::PeerIdentity;
use crate::trust::TrustSource;

/// How long a client has to finish the TLS handshake.
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
/// [`crate::server_config`]) until the task is dropped.
///
/// Each connection:
/// - is refused if the client's identity is revoked right after the
///   handshake, which also covers TLS sessions resumed under a
///   configuration that allows resumption;
/// - carries the client's [`PeerIdentity`] into every request, for handlers
///   to extract;
/// - is closed when `source` reports that its peer has been revoked.
///
/// ```no_run
/// # async fn run(
/// #     config: rustls::ServerConfig,
/// #     source: sigil_verifier::TrustSource,
/// # ) -> std::io::Result<()> {
/// use axum::{Router, routing::get};
/// use sigil_verifier::PeerIdentity;
///
/// let app = Router::new().route(
///     "/",
///     get(|peer: PeerIdentity| async move { peer.spiffe_id().to_string() }),
/// );
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8444").await?;
/// sigil_verifier::axum::serve(listener, std::sync::Arc::new(config), source, app).await
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
    source: TrustSource,
    router: Router,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(config);
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait, then go on.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let source = source.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let Some(identity) = PeerIdentity::from_connection(tls.get_ref().1) else {
                return;
            };
            serve_connection(tls, identity, source, router).await;
        });
    }
}

async fn serve_connection(
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    identity: PeerIdentity,
    source: TrustSource,
    router: Router,
) {
    let mut updates = source.subscribe();
    if source.is_revoked(&identity) {
        tracing::info!(peer = %identity.spiffe_id(), "refused a revoked peer");
        return;
    }
    let app = router.layer(Extension(identity.clone()));
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            changed = updates.changed() => {
                if changed.is_err() || source.is_revoked(&identity) {
                    tracing::info!(peer = %identity.spiffe_id(), "closing the connection of a revoked peer");
                    return;
                }
            }
        }
    }
}
