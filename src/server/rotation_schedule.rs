//! The CAs rotate by themselves. The schedule is checked at start, every
//! minute, when a root rotation begins, after a revocation while a
//! previous root is kept, and when one of its steps falls due:
//!
//! - once less than `rotate_before` of the issuing CA's life is left, a
//!   successor living `issuing_ttl` takes over. It is the same rotation as
//!   `POST /admin/v1/ca/rotate`. Since `rotate_before` is at least twice
//!   `max_ttl`, no leaf is ever cut short by its issuer's end;
//! - once the root has too little life left for a full issuing CA, a new
//!   root joins the bundle, as `POST /admin/v1/ca/root/rotate` does;
//! - a root rotation's next root takes over at its activation time;
//! - its previous root leaves the bundle once no live leaf chains to it.
//!
//! Each step is audited with the actor `scheduler`.

use std::time::Duration;

use time::OffsetDateTime;

use crate::api::AppState;
use crate::ca::CertificateAuthority;
use crate::config::RotationSchedule;
use crate::rotation::RotationRequest;

/// How often the schedule is checked at the least.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// The audit log's actor for a scheduled rotation.
pub(super) const SCHEDULER_ACTOR: &str = "scheduler";

/// Whether the issuing CA in force is due, and a successor could outlive
/// it (the root does not end first).
fn issuing_due(ca: &CertificateAuthority, schedule: RotationSchedule, now: OffsetDateTime) -> bool {
    let issuing_left = ca.issuing().not_after() - now;
    let root_left = ca.root().not_after() - now;
    issuing_left < schedule.rotate_before && root_left > schedule.rotate_before
}

/// Whether the root is due for rotation: no rotation is under way, and
/// once a new root had waited its activation delay, the active one could
/// not hold a full issuing CA any more.
fn root_due(ca: &CertificateAuthority, schedule: RotationSchedule, now: OffsetDateTime) -> bool {
    let under_way = ca.next_root().is_some() || ca.previous_roots().next().is_some();
    let needed = schedule.issuing_ttl + schedule.rotate_before + schedule.root_activation_delay;
    !under_way && ca.root().not_after() - now < needed
}

/// Checks the schedule now and whenever it may be due, in the background.
pub(super) fn spawn(state: AppState, schedule: RotationSchedule) {
    tokio::spawn(async move {
        loop {
            let wait = check(&state, schedule).await;
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = state.rotation_schedule_woken() => {}
            }
        }
    });
}

/// Takes every step that is due; returns how long to wait before the
/// next check: none after a step was taken, since the CA it judged by
/// has changed.
async fn check(state: &AppState, schedule: RotationSchedule) -> Duration {
    let now = OffsetDateTime::now_utc();
    let ca = state.issuance.ca();
    let mut wait = CHECK_EVERY;
    let mut acted = false;
    let mut until = |when: OffsetDateTime| {
        let left = Duration::try_from(when - now).unwrap_or(Duration::ZERO);
        wait = wait.min(left.max(Duration::from_secs(1)));
    };
    if issuing_due(&ca, schedule, now) {
        let by = ca.trust_domain().id();
        let request = RotationRequest {
            lifetime: schedule.issuing_ttl,
            revoke_current: false,
        };
        let still_due = |ca: &CertificateAuthority| issuing_due(ca, schedule, now);
        match state
            .rotate_issuing_ca_if(request, SCHEDULER_ACTOR, &by, still_due)
            .await
        {
            Ok(None) => acted = true,
            Ok(Some(done)) => {
                acted = true;
                tracing::info!(
                    issuing = %done.issuing_key_id,
                    retired = %done.retired_key_id,
                    "ca.rotate: the issuing CA was due"
                );
            }
            Err(error) => tracing::warn!(
                ?error,
                "the issuing CA is due for rotation, which failed; retrying in a minute"
            ),
        }
    } else {
        let due_at = ca.issuing().not_after() - schedule.rotate_before;
        if due_at > now {
            until(due_at);
        }
    }
    if root_due(&ca, schedule, now) {
        match state
            .add_root(schedule.root_activation_delay, SCHEDULER_ACTOR)
            .await
        {
            Ok(added) => {
                acted = true;
                tracing::info!(
                    root = %added.root.key_id(),
                    activate_at = %crate::rfc3339::format(added.activate_at),
                    "ca.root.add: the root was due"
                );
            }
            Err(error) => tracing::warn!(?error, "adding a new root failed; retrying in a minute"),
        }
    }
    if let Some((next, activate_at)) = ca.next_root() {
        if activate_at <= now {
            match state
                .activate_next_root(schedule.issuing_ttl, SCHEDULER_ACTOR)
                .await
            {
                Ok(done) => {
                    acted = true;
                    tracing::info!(
                        root = %done.root_key_id,
                        issuing = %done.rotation.issuing_key_id,
                        "ca.root.activate: the next root took over"
                    );
                }
                Err(error) => tracing::warn!(
                    ?error,
                    root = %next.key_id(),
                    "the next root is due to take over, which failed; retrying in a minute"
                ),
            }
        } else {
            until(activate_at);
        }
    }
    for previous in ca.previous_roots() {
        let key_id = previous.key_id();
        match state.previous_root_needed_until(key_id).await {
            Ok(Some(needed_until)) => {
                tracing::debug!(
                    root = %key_id,
                    until = %crate::rfc3339::format(needed_until),
                    "live certificates still chain to the previous root"
                );
                until(needed_until);
            }
            Ok(None) => match state.drop_previous_root(key_id, SCHEDULER_ACTOR).await {
                Ok(sequence) => {
                    acted = true;
                    tracing::info!(
                        root = %key_id,
                        spiffe_sequence = sequence,
                        "ca.root.drop: no live certificate chains to the previous root"
                    );
                }
                Err(error) => tracing::warn!(?error, root = %key_id, "dropping a root failed"),
            },
            Err(error) => tracing::warn!(?error, root = %key_id, "reading the store failed"),
        }
    }
    if acted { Duration::ZERO } else { wait }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ca::{CaFiles, DEFAULT_ISSUING_LIFETIME, KeyType, ROOT_LIFETIME};

    const DAY: Duration = Duration::from_secs(86_400);

    fn schedule() -> RotationSchedule {
        RotationSchedule {
            issuing_ttl: 365 * DAY,
            rotate_before: 30 * DAY,
            root_activation_delay: DAY,
        }
    }

    #[test]
    fn the_root_is_due_once_it_cannot_hold_a_full_issuing_ca_after_the_activation_delay() {
        let made = OffsetDateTime::now_utc();
        let files = CaFiles::generate(
            &"example.org".parse().unwrap(),
            KeyType::P256,
            DEFAULT_ISSUING_LIFETIME,
            made,
        )
        .unwrap();
        let ca = CertificateAuthority::load(&files, "https://localhost").unwrap();
        let needed = 396 * DAY;
        let at = |left: Duration| made + ROOT_LIFETIME - left;
        assert!(!root_due(&ca, schedule(), made));
        assert!(!root_due(&ca, schedule(), at(needed + DAY)));
        assert!(root_due(&ca, schedule(), at(needed - DAY)));
        // And the issuing CA is not rotated past the root's end.
        assert!(!issuing_due(&ca, schedule(), at(20 * DAY)));
        assert!(issuing_due(
            &ca,
            schedule(),
            made + DEFAULT_ISSUING_LIFETIME - 20 * DAY
        ));
    }
}
