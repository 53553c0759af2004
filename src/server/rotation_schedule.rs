//! The issuing CA rotates by itself: checked at start and every minute,
//! and once less than `rotate_before` of its life is left, a successor
//! living `issuing_ttl` takes over. It is the same rotation as
//! `POST /admin/v1/ca/rotate`, audited with the actor `scheduler`. Since
//! `rotate_before` is at least twice `max_ttl`, no leaf is ever cut short
//! by its issuer's end.

use std::time::Duration;

use time::OffsetDateTime;

use crate::api::AppState;
use crate::config::RotationSchedule;
use crate::rotation::RotationRequest;

/// How often the schedule is checked.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// The audit log's actor for a scheduled rotation.
pub(super) const SCHEDULER_ACTOR: &str = "scheduler";

/// Whether the issuing CA in force is due, and a successor could outlive
/// it (the root does not end first).
fn due(state: &AppState, schedule: RotationSchedule, now: OffsetDateTime) -> bool {
    let ca = state.issuance.ca();
    let issuing_left = ca.issuing().not_after() - now;
    let root_left = ca.root().not_after() - now;
    issuing_left < schedule.rotate_before && root_left > schedule.rotate_before
}

/// Checks the schedule now and every [`CHECK_EVERY`], in the background.
pub(super) fn spawn(state: AppState, schedule: RotationSchedule) {
    tokio::spawn(async move {
        loop {
            if due(&state, schedule, OffsetDateTime::now_utc()) {
                let by = state.issuance.ca().trust_domain().id();
                let request = RotationRequest {
                    lifetime: schedule.issuing_ttl,
                    revoke_current: false,
                };
                match state.rotate_issuing_ca(request, SCHEDULER_ACTOR, &by).await {
                    Ok(done) => tracing::info!(
                        issuing = %done.issuing_key_id,
                        retired = %done.retired_key_id,
                        "ca.rotate: the issuing CA was due"
                    ),
                    Err(error) => tracing::warn!(
                        ?error,
                        "the issuing CA is due for rotation, which failed; retrying in a minute"
                    ),
                }
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    });
}
