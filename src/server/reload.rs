//! SIGHUP: the configuration is read again and its reloadable settings
//! (admin IDs, SVID lifetimes, accepted keys, rate limits, JWT attestors)
//! are put in force for the requests that start afterwards. Connections
//! stay open. A configuration that does not load is refused whole, with a
//! log line saying why, and the one in force stays.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::api::{AppState, PolicyUpdate};

/// The future a [`Reloader`] returns.
pub type Reloading = Pin<Box<dyn Future<Output = anyhow::Result<PolicyUpdate>> + Send>>;

/// SIGHUP, taken: from the moment [`Hangups::take`] runs, SIGHUP no longer
/// ends the process (its default action), and each one is kept for the
/// reloader.
#[derive(Debug)]
pub struct Hangups(Signal);

impl Hangups {
    /// Takes SIGHUP; call it first thing, before the slow parts of start-up
    /// (decrypting keys, fetching JWKS), so that `systemctl reload` during
    /// them cannot kill the CA.
    ///
    /// # Errors
    ///
    /// The signal handler cannot be installed.
    pub fn take() -> anyhow::Result<Self> {
        signal(SignalKind::hangup())
            .map(Self)
            .context("listening for SIGHUP")
    }
}

/// Reads the configuration again on each SIGHUP: its reloadable settings,
/// or why it is refused.
#[derive(Clone)]
pub struct Reloader {
    read: Arc<dyn Fn() -> Reloading + Send + Sync>,
    hangups: Arc<std::sync::Mutex<Option<Hangups>>>,
}

impl Reloader {
    /// A reloader that runs `read` on each of `hangups`.
    pub fn new(hangups: Hangups, read: impl Fn() -> Reloading + Send + Sync + 'static) -> Self {
        Self {
            read: Arc::new(read),
            hangups: Arc::new(std::sync::Mutex::new(Some(hangups))),
        }
    }
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reloader")
    }
}

/// On each SIGHUP (also those that came during start-up), reloads with
/// `reload` into `state`.
///
/// # Errors
///
/// The reloader's SIGHUP was taken already, or cannot be.
pub(super) fn spawn(state: AppState, reload: Reloader) -> anyhow::Result<()> {
    let taken = reload
        .hangups
        .lock()
        .ok()
        .and_then(|mut hangups| hangups.take());
    let Hangups(mut hangups) = match taken {
        Some(hangups) => hangups,
        None => Hangups::take()?,
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            reload_once(&state, &reload).await;
        }
    });
    Ok(())
}

async fn reload_once(state: &AppState, reload: &Reloader) {
    super::systemd::notify("RELOADING=1");
    let reloaded = (reload.read)()
        .await
        .and_then(|update| state.reload(update));
    // Ready again either way: a refused file leaves the one in force.
    super::systemd::notify("READY=1");
    match reloaded {
        Ok(()) => tracing::info!("configuration reloaded"),
        Err(error) => tracing::warn!(
            error = format!("{error:#}"),
            "configuration reload refused; the configuration in force stays"
        ),
    }
}
