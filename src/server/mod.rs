//! `sigil serve`: the CA's HTTPS listener.

mod admission;
mod audit_keeper;
mod connection;
mod crl_refresh;
mod fd_limit;
mod identity;
mod reload;
mod rotation_schedule;
mod systemd;
mod tls;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

pub use admission::ConnectionLimits;
pub use reload::{Hangups, Reloader, Reloading};

use crate::api::{self, AppState, RateLimits};
use crate::attestation::jwt::JwtAttestors;
use crate::audit::{AuditKey, RefusalCounter};
use crate::ca::{CaFiles, CertificateAuthority, Passphrase};
use crate::config::RotationSchedule;
use crate::crl_board::CrlBoard;
use crate::csr::KeyPolicy;
use crate::datadir::{self, DataDir};
use crate::hostname::HttpsUrl;
use crate::issuance::{Issuance, TtlPolicy};
use crate::metrics::Metrics;
use crate::namespace::AdminIds;
use crate::rotation::RotationSettings;
use crate::store::{CommitObserver, SqliteStore, Store};
use admission::Admission;
use audit_keeper::AuditKeeper;

/// How long open connections get to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What `sigil serve` was asked for.
#[derive(Debug)]
pub struct ServeOptions {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Where clients reach the CA; `https://localhost:<port>` when absent.
    pub public_url: Option<String>,
    /// Lifetimes of SVIDs.
    pub ttl: TtlPolicy,
    /// Accepted agent keys.
    pub keys: KeyPolicy,
    /// How long the issuing CA's CRLs are valid.
    pub crl_validity: Duration,
    /// How old the issuing CA's CRL gets before it is re-signed (less than
    /// `crl_validity`).
    pub crl_resign: Duration,
    /// How many connections the server takes.
    pub connections: ConnectionLimits,
    /// Per-address rate limits on the routes that cost work and on failed
    /// attestations.
    pub rate_limits: RateLimits,
    /// Who may use the admin API, when not everything under
    /// `/sigil/admin/`.
    pub admins: Option<AdminIds>,
    /// The JWT attestors the configuration file sets up.
    pub jwt_attestors: Arc<JwtAttestors>,
    /// Reads the configuration again on SIGHUP; without it, SIGHUP is not
    /// taken.
    pub reload: Option<Reloader>,
    /// The passphrase of encrypted CA keys, kept (wiped on drop) to
    /// encrypt the key of a rotated issuing CA.
    pub passphrase: Option<Passphrase>,
    /// When the issuing CA rotates by itself.
    pub rotation: RotationSchedule,
}

/// Serves the CA until SIGINT or SIGTERM, then drains open connections.
///
/// # Errors
///
/// The CA or store cannot be loaded, or the address cannot be bound.
pub async fn serve(
    dir: &DataDir,
    files: CaFiles,
    options: ServeOptions,
    banner: impl FnOnce(SocketAddr) -> String,
) -> anyhow::Result<()> {
    fd_limit::raise_for(options.connections.total);
    let listener = TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("binding {}", options.listen))?;
    let local = listener.local_addr()?;
    let public_url = match &options.public_url {
        Some(url) => HttpsUrl::parse(url).context("--public-url")?.to_string(),
        None => format!("https://localhost:{}", local.port()),
    };

    let ca = Arc::new(
        CertificateAuthority::load(&files, &public_url)?.with_crl_validity(options.crl_validity),
    );
    // The keys' PEM text is wiped now, not at exit.
    drop(files);
    let metrics = Arc::new(Metrics::new());
    let observer: Arc<dyn CommitObserver> = metrics.clone();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_observed(&dir.store(), Some(observer))?);
    let issuance = Issuance::new(Arc::clone(&ca), store);
    let crls = Arc::new(CrlBoard::default());
    crl_refresh::start(issuance.clone(), Arc::clone(&crls), options.crl_resign).await?;
    let refusals = Arc::new(RefusalCounter::default());
    let keeper = Arc::new(AuditKeeper::new(
        Arc::clone(issuance.store()),
        audit_key(dir, issuance.store().as_ref()).await?,
        Arc::clone(&refusals),
    ));
    Arc::clone(&keeper).spawn();
    let names = identity::ServerNames::for_listener(local, &public_url)?;
    let mut state = AppState::new(issuance.clone(), options.ttl, options.keys, crls, refusals)?
        .with_ca_hosts(names.hosts())
        .with_rate_limits(options.rate_limits)
        .with_jwt_attestors(options.jwt_attestors)
        .with_metrics(metrics)
        .with_rotation(RotationSettings {
            dir: dir.clone(),
            passphrase: options.passphrase,
            public_url: public_url.clone(),
            crl_validity: options.crl_validity,
        });
    if let Some(admins) = options.admins {
        state = state.with_admins(admins)?;
    }

    let server_identity = identity::start(issuance, names, state.server_identity_hooks()).await?;
    let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(server_identity)?));

    let url = format!("https://{}", reachable(local));
    datadir::write_public(&dir.server_url(), format!("{url}\n").as_bytes())?;
    datadir::write_public(&dir.public_url(), format!("{public_url}\n").as_bytes())?;
    tracing::info!(%url, trust_domain = %ca.trust_domain(), "serving");
    let shutdown = shutdown_signal()?;
    if let Some(reloader) = options.reload {
        reload::spawn(state.clone(), reloader)?;
    }
    rotation_schedule::spawn(state.clone(), options.rotation);
    println!("listening on https://{local}");
    systemd::notify("READY=1");
    let banner = banner(local);
    if !banner.is_empty() {
        println!("{banner}");
    }
    std::io::stdout().flush()?;

    accept_loop(
        listener,
        acceptor,
        api::app(state),
        options.connections,
        shutdown,
    )
    .await;
    keeper.tick().await;
    Ok(())
}

/// The data dir's audit key. A missing key is created only for a log that
/// has never been checkpointed: replacing the key of a signed log would let
/// anyone re-sign it.
async fn audit_key(dir: &DataDir, store: &dyn Store) -> anyhow::Result<AuditKey> {
    if dir.audit_key().exists() || store.latest_checkpoint().await?.is_none() {
        return AuditKey::load_or_create(dir);
    }
    anyhow::bail!(
        "{} is missing but the audit log has signed checkpoints; restore the key \
         (without it the log cannot be verified or extended)",
        dir.audit_key().display()
    )
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

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let (closing, closing_watch) = watch::channel(false);
    let admission = Admission::new(limits);
    loop {
        let reserved = tokio::select! {
            reserved = admission.reserve() => match reserved {
                Some(reserved) => reserved,
                None => break,
            },
            () = &mut shutdown => break,
        };
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
        let Some(slot) = admission.admit(reserved, peer.ip()) else {
            tracing::debug!(%peer, "refused a connection: its address holds its share");
            continue;
        };
        // Answers are small and whole: send each at once, rather than wait
        // for the client's delayed ACK (Nagle), which cost every new
        // connection's first exchange about 40 ms.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, %error, "could not set TCP_NODELAY");
        }
        let serving = connection::serve(tcp, acceptor.clone(), app.clone(), closing_watch.clone());
        tokio::spawn(async move {
            serving.await;
            drop(slot);
        });
    }
    tracing::info!("shutting down; draining open connections");
    drop(listener);
    let _ = closing.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, admission.all_closed())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time");
    }
}

/// SIGINT or SIGTERM. The handlers are registered when this is called, so
/// a signal that arrives right after the "listening" line still shuts the
/// server down gracefully.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        systemd::notify("STOPPING=1");
    })
}
