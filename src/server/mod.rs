//! `sigil serve`: the CA's HTTPS listener.

mod identity;
mod tls;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Extension;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::api::{self, AppState, PeerCertificates};
use crate::ca::{CaFiles, CertificateAuthority};
use crate::csr::KeyPolicy;
use crate::datadir::{self, DataDir};
use crate::issuance::{Issuance, TtlPolicy};
use crate::store::{SqliteStore, Store};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What `sigil serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where clients reach the CA; `https://localhost:<port>` when absent.
    pub public_url: Option<String>,
    /// Lifetimes of SVIDs.
    pub ttl: TtlPolicy,
    /// Accepted agent keys.
    pub keys: KeyPolicy,
}

/// Serves the CA until SIGINT or SIGTERM, then drains open connections.
///
/// # Errors
///
/// The CA or store cannot be loaded, or the address cannot be bound.
pub async fn serve(
    dir: &DataDir,
    files: &CaFiles,
    options: ServeOptions,
    banner: impl FnOnce(SocketAddr) -> String,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("binding {}", options.listen))?;
    let local = listener.local_addr()?;
    let public_url = options
        .public_url
        .clone()
        .unwrap_or_else(|| format!("https://localhost:{}", local.port()));

    let ca = Arc::new(CertificateAuthority::load(files, &public_url)?);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.store())?);
    let issuance = Issuance::new(Arc::clone(&ca), store);
    let state = AppState::new(issuance.clone(), options.ttl, options.keys)?;

    let names = identity::ServerNames::for_listener(local, &public_url)?;
    let server_identity = identity::start(issuance, names).await?;
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(server_identity)?));

    let url = format!("https://{}", reachable(local));
    datadir::write_public(&dir.server_url(), format!("{url}\n").as_bytes())?;
    datadir::write_public(&dir.public_url(), format!("{public_url}\n").as_bytes())?;
    tracing::info!(%url, trust_domain = %ca.trust_domain(), "serving");
    println!("listening on https://{local}");
    let banner = banner(local);
    if !banner.is_empty() {
        println!("{banner}");
    }
    std::io::stdout().flush()?;

    accept_loop(listener, acceptor, api::app(state)).await;
    Ok(())
}

/// The address a local admin command dials: the listen address, or
/// loopback when listening on every interface.
fn reachable(local: SocketAddr) -> SocketAddr {
    if local.ip().is_unspecified() {
        let ip = match local.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        };
        SocketAddr::new(ip, local.port())
    } else {
        local
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, app: axum::Router) {
    let graceful = GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let chain: Option<Arc<[_]>> = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect());
            let app = match chain {
                Some(chain) => app.layer(Extension(PeerCertificates(chain))),
                None => app,
            };
            let service = TowerToHyperService::new(app.map_request(
                |request: hyper::Request<hyper::body::Incoming>| request.map(axum::body::Body::new),
            ));
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down; draining open connections");
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time");
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
