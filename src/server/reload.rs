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

/// Reads the configuration again: its reloadable settings, or why it is
/// refused.
#[derive(Clone)]
pub struct Reloader(Arc<dyn Fn() -> Reloading + Send + Sync>);

impl Reloader {
    /// A reloader that runs `read` on each SIGHUP.
    pub fn new(read: impl Fn() -> Reloading + Send + Sync + 'static) -> Self {
        Self(Arc::new(read))
    }
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reloader")
    }
}

/// Takes SIGHUP from now on (its default action would end the process),
/// for [`reload_on_hangup`].
///
/// # Errors
///
/// The signal handler cannot be installed.
pub(super) fn hangups() -> anyhow::Result<Signal> {
    signal(SignalKind::hangup()).context("listening for SIGHUP")
}

/// On each SIGHUP, reloads with `reload` into `state`.
pub(super) async fn reload_on_hangup(mut hangups: Signal, state: AppState, reload: Reloader) {
    while hangups.recv().await.is_some() {
        match (reload.0)().await.and_then(|update| state.reload(update)) {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "configuration reload refused; the configuration in force stays"
            ),
        }
    }
}
