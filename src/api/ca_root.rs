//! `POST /admin/v1/ca/root/rotate`: an admin starts a root rotation (see
//! `crate::root_rotation`): a new root joins the bundle now, and takes
//! over after `activate_after_seconds`. The rotation schedule takes the
//! later steps, through the other methods here.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Notify;

use super::{Admin, ApiError, AppState, JsonBody};
use crate::ca::{RootActivation, RootAddition};
use crate::config::{DEFAULT_ROOT_ACTIVATION_DELAY, MAX_ROOT_ACTIVATION_DELAY};
use crate::rfc3339;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RootRotateRequest {
    /// How long the new root waits in the bundle before it takes over
    /// [default: 1 day].
    activate_after_seconds: Option<u64>,
}

/// `POST /admin/v1/ca/root/rotate`.
pub(super) async fn rotate(
    State(state): State<AppState>,
    admin: Admin,
    JsonBody(request): JsonBody<RootRotateRequest>,
) -> Result<Json<Value>, ApiError> {
    let delay = request
        .activate_after_seconds
        .map_or(DEFAULT_ROOT_ACTIVATION_DELAY, Duration::from_secs);
    if delay > MAX_ROOT_ACTIVATION_DELAY {
        return Err(ApiError::invalid_request(
            "activate_after_seconds must lie between 0 and 31536000 (365 days)",
        ));
    }
    let actor = admin.spiffe_id().to_string();
    let added = state.add_root(delay, &actor).await?;
    tracing::info!(
        admin = %actor,
        root = %added.root.key_id(),
        activate_at = %rfc3339::format(added.activate_at),
        "ca.root.add"
    );
    Ok(Json(json!({
        "root_key_id": added.root.key_id(),
        "fingerprint": added.root.fingerprint(),
        "not_after": rfc3339::format(added.root.not_after()),
        "activate_at": rfc3339::format(added.activate_at),
        "spiffe_sequence": added.sequence,
    })))
}

impl AppState {
    /// Starts a root rotation: a new root joins the bundle, to take over
    /// after `delay`.
    ///
    /// # Errors
    ///
    /// `conflict` when a root rotation is under way, `unavailable` when the
    /// server cannot rotate, `internal` for the rest.
    pub async fn add_root(&self, delay: Duration, actor: &str) -> Result<RootAddition, ApiError> {
        let rotation = self.rotation()?;
        let _one_at_a_time = rotation.lock.lock().await;
        let ca = self.issuance.ca();
        if let Some((next, at)) = ca.next_root() {
            return Err(ApiError::conflict(format!(
                "a root rotation is under way: root {} takes over at {}",
                next.key_id(),
                rfc3339::format(at)
            )));
        }
        if let Some(previous) = ca.previous_roots().next() {
            return Err(ApiError::conflict(format!(
                "a root rotation is under way: the previous root {} stays in the bundle until \
                 no live certificate chains to it",
                previous.key_id()
            )));
        }
        let added = self
            .issuance
            .add_root(&rotation.settings, delay, actor, |crls| {
                self.crls.post(crls)
            })
            .await
            .map_err(ApiError::internal)?;
        rotation.schedule.notify_one();
        Ok(added)
    }

    /// Puts the next root in force, with a new issuing CA living
    /// `lifetime`, and has the server take a certificate under it.
    ///
    /// # Errors
    ///
    /// As [`AppState::add_root`].
    pub async fn activate_next_root(
        &self,
        lifetime: Duration,
        actor: &str,
    ) -> Result<RootActivation, ApiError> {
        let rotation = self.rotation()?;
        let _one_at_a_time = rotation.lock.lock().await;
        let before = self.issuance.ca().root().key_id().to_owned();
        let activated = self
            .issuance
            .activate_root(&rotation.settings, lifetime, actor, |crls| {
                self.crls.post(crls);
            })
            .await;
        // Also when a later step (the first CRL, the audit record) failed:
        // the new root is in force all the same.
        if self.issuance.ca().root().key_id() != before {
            *lock(&rotation.activated_at) = Some(std::time::Instant::now());
            rotation.server_identity.refresh.notify_one();
        }
        activated.map_err(ApiError::internal)
    }

    /// Stops trusting the previous root `key_id`, and publishing its CRLs.
    /// Returns the bundle's new sequence.
    ///
    /// # Errors
    ///
    /// As [`AppState::add_root`].
    pub async fn drop_previous_root(&self, key_id: &str, actor: &str) -> Result<u64, ApiError> {
        let rotation = self.rotation()?;
        let _one_at_a_time = rotation.lock.lock().await;
        let sequence = self
            .issuance
            .drop_root(&rotation.settings, key_id, actor)
            .await
            .map_err(ApiError::internal)?;
        // Its CRLs, and those of the issuing CAs it signed, go at once.
        let (ca, now) = (self.issuance.ca(), OffsetDateTime::now_utc());
        self.crls
            .retain(|issuer| !ca.crl_no_longer_needed(issuer, now));
        // A fresh CRL of the active root wakes the long polls, whose
        // answers carry the new bundle sequence: relying parties stop
        // trusting the old root within a second, not at their next poll.
        match self
            .issuance
            .sign_crl_now(&ca, ca.root().key_id(), now)
            .await
        {
            Ok(crl) => self.crls.post([crl]),
            Err(error) => tracing::warn!(
                ?error,
                "signing a CRL to announce the new bundle failed; relying parties learn of it \
                 at their next poll"
            ),
        }
        Ok(sequence)
    }

    /// Has the rotation schedule check again now, if a previous root
    /// waits for its last certificates to go.
    pub(super) fn wake_rotation_schedule(&self) {
        if let Some(rotation) = &self.rotation
            && self.issuance.ca().previous_roots().next().is_some()
        {
            rotation.schedule.notify_one();
        }
    }

    /// Resolves when the rotation schedule should check again at once: a
    /// root rotation began, or a revocation may have freed a previous
    /// root (never on a server that cannot rotate).
    pub async fn rotation_schedule_woken(&self) {
        match self.rotation.as_ref() {
            Some(rotation) => rotation.schedule.notified().await,
            None => std::future::pending().await,
        }
    }

    /// How the server's own certificate follows root rotations.
    pub fn server_identity_hooks(&self) -> Option<ServerIdentityHooks> {
        self.rotation
            .as_ref()
            .map(|rotation| rotation.server_identity.clone())
    }

    /// When the previous root `key_id` may go at the earliest: `None` once
    /// no live leaf chains to it (see
    /// `Issuance::previous_root_needed_until`), the server's own
    /// certificate included, and [`DROP_GRACE`] has passed since the new
    /// root took over.
    ///
    /// # Errors
    ///
    /// The store cannot be read, or the server cannot rotate.
    pub async fn previous_root_needed_until(
        &self,
        key_id: &str,
    ) -> Result<Option<OffsetDateTime>, ApiError> {
        let rotation = self.rotation()?;
        let now = OffsetDateTime::now_utc();
        let activated = *lock(&rotation.activated_at);
        if let Some(left) = activated.and_then(|at| DROP_GRACE.checked_sub(at.elapsed())) {
            return Ok(Some(now + left));
        }
        let under = self.issuance.ca().issuing_cas_under(key_id);
        let server_issuer = lock(&rotation.server_identity.issuer).clone();
        if server_issuer.is_some_and(|issuer| under.contains(&issuer)) {
            // It takes a new one, retried until it succeeds.
            return Ok(Some(now + SERVER_IDENTITY_RECHECK));
        }
        self.issuance
            .previous_root_needed_until(key_id)
            .await
            .map_err(ApiError::internal)
    }
}

/// How long the previous root is kept at least after the next one took
/// over: a request that signed under the old root just before has long
/// been recorded by then.
const DROP_GRACE: Duration = Duration::from_secs(10);
/// How soon to look again while the server's own certificate still
/// chains to the previous root.
const SERVER_IDENTITY_RECHECK: Duration = Duration::from_secs(30);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How the server's own certificate follows root rotations: notified to
/// take a new one when a new root takes over; and the issuing CA of the
/// one in use, so that the previous root is not dropped under it.
#[derive(Debug, Clone, Default)]
pub struct ServerIdentityHooks {
    /// Notified when the server must take a new certificate.
    pub refresh: Arc<Notify>,
    /// The key id of the issuing CA of the server's certificate.
    pub issuer: Arc<Mutex<Option<String>>>,
}

impl ServerIdentityHooks {
    /// Records the issuing CA of the certificate now in use.
    pub fn set_issuer(&self, key_id: &str) {
        *lock(&self.issuer) = Some(key_id.to_owned());
    }
}
