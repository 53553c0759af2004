//! Renewal, serialised: one renewal at a time, never two from one parent
//! unless the first went unanswered (the CA allows one such retry; a
//! second would look like a second holder of the identity and get it
//! banned), and never further when the files cannot keep up.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use sigil_verifier::TrustSource;
use tokio::sync::{Mutex, broadcast};

use crate::Error;
use crate::attestation::Attestor;
use crate::event::Event;
use crate::files::SvidFiles;
use crate::key::KeyType;
use crate::requests::Requests;
use crate::svid::Svid;

/// The first wait after a failed renewal; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between failed renewals.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Renewal waits at least this long after receipt, whatever the clocks say.
const MIN_RENEWAL_DELAY: Duration = Duration::from_secs(1);

/// What the agent and its background tasks share.
pub(crate) struct Inner {
    pub(crate) url: String,
    pub(crate) trust: TrustSource,
    pub(crate) current: Arc<ArcSwap<Svid>>,
    pub(crate) key_type: KeyType,
    pub(crate) ttl: Option<Duration>,
    pub(crate) files: Option<SvidFiles>,
    pub(crate) events: broadcast::Sender<Event>,
    /// How to attest again when renewal is over, if the attestation can
    /// be repeated (a JWT the platform rotates).
    pub(crate) attestor: Option<Arc<dyn Attestor>>,
    /// The event that ended renewal for good, sent once.
    pub(crate) finished: OnceLock<Event>,
    /// Held for the whole of a renewal.
    pub(crate) state: Mutex<RenewalState>,
}

/// What renewal must remember between attempts.
#[derive(Debug, Default)]
pub(crate) struct RenewalState {
    /// Renewals of the current certificate sent without an answer.
    pub(crate) unanswered: u8,
    /// The current SVID is newer than the files.
    pub(crate) unsaved: bool,
    /// The CA will not renew the current line (it refused for a reason
    /// that will not pass); only a new attestation goes on.
    pub(crate) line_over: bool,
}

impl Inner {
    pub(crate) fn requests(&self) -> Requests<'_> {
        Requests {
            url: &self.url,
            trust: &self.trust,
            key_type: self.key_type,
            ttl: self.ttl,
            files: self.files.as_ref(),
        }
    }

    pub(crate) fn save(&self) -> Result<(), Error> {
        match &self.files {
            Some(files) => files.write(
                &self.current.load(),
                &self.trust.bundle_pem(),
                &self.trust.crls_pem(),
            ),
            None => Ok(()),
        }
    }

    /// Sends the event that ends renewal, once.
    pub(crate) fn finish(&self, event: Event) {
        if self.finished.set(event.clone()).is_ok() {
            let _ = self.events.send(event);
        }
    }

    /// Renews once. With `seen`, a renewal that happened meanwhile (the
    /// current serial is no longer `seen`) counts as this one.
    pub(crate) async fn renew_once(&self, seen: Option<&str>) -> Result<Arc<Svid>, Error> {
        let mut state = self.state.lock().await;
        if let Some(event) = self.finished.get() {
            return Err(Error::Stopped(event.to_string()));
        }
        let previous = self.current.load_full();
        if seen.is_some_and(|seen| seen != previous.serial()) {
            return Ok(previous);
        }
        if state.unsaved {
            // The files are a generation behind: a restart would renew
            // from the parent. One more would make it a fork.
            self.save()?;
            state.unsaved = false;
        }
        if state.unanswered >= 2 || state.line_over {
            if self.can_attest_again() {
                return Err(Error::Stopped(
                    "this line of certificates is over".to_owned(),
                ));
            }
            self.finish(Event::Refused {
                code: "unconfirmed_renewal".to_owned(),
                message: "two renewals went unanswered; a third from the same certificate would \
                          look like a second holder to the CA. Attest again with a new token."
                    .to_owned(),
            });
            return Err(Error::Stopped("two renewals went unanswered".to_owned()));
        }
        let renewed = match self.requests().renew(&previous).await {
            Ok(renewed) => Arc::new(renewed),
            Err(error) => {
                self.judge(&mut state, &error);
                return Err(error);
            }
        };
        state.unanswered = 0;
        self.current.store(Arc::clone(&renewed));
        if let Err(error) = self.save() {
            tracing::warn!(%error, "could not write the renewed SVID; renewal waits for the files");
            state.unsaved = true;
        }
        let _ = self.events.send(renewed_event(&previous, &renewed));
        Ok(renewed)
    }

    /// Whether the last failure ends renewal of the current line (two
    /// unanswered renewals), short of a final refusal.
    fn renewal_is_over(&self) -> bool {
        self.state
            .try_lock()
            .is_ok_and(|state| state.unanswered >= 2 || state.line_over)
    }

    fn can_attest_again(&self) -> bool {
        self.attestor.as_ref().is_some_and(|a| a.can_attest_again())
    }

    /// Starts a new line with a fresh attestation, when the attestor can
    /// attest again. Returns whether it did.
    async fn attest_again(&self) -> bool {
        let Some(attestor) = self.attestor.as_ref().filter(|_| self.can_attest_again()) else {
            return false;
        };
        let mut state = self.state.lock().await;
        let previous = self.current.load_full();
        match self.requests().issue(attestor.as_ref()).await {
            Ok(issued) => {
                let issued = Arc::new(issued);
                *state = RenewalState::default();
                self.current.store(Arc::clone(&issued));
                if let Err(error) = self.save() {
                    tracing::warn!(%error, "could not write the new SVID; renewal waits for the files");
                    state.unsaved = true;
                }
                let _ = self.events.send(Event::Issued {
                    spiffe_id: issued.spiffe_id().clone(),
                    serial: issued.serial().to_owned(),
                    not_after: issued.not_after(),
                });
                tracing::info!(previous = previous.serial(), "attested again");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "attesting again failed");
                false
            }
        }
    }

    /// Records what a failed renewal means for the next one.
    fn judge(&self, state: &mut RenewalState, error: &Error) {
        match error {
            Error::Revoked { code, message } => self.finish(Event::Revoked {
                code: code.clone(),
                message: message.clone(),
            }),
            error if error.may_have_been_acted_on() => state.unanswered += 1,
            error if error.is_transient() => {}
            Error::Refused { .. } if self.can_attest_again() => state.line_over = true,
            Error::Refused { code, message, .. } => self.finish(Event::Refused {
                code: code.clone(),
                message: message.clone(),
            }),
            _ => {}
        }
    }

    /// Renews at about half of each SVID's remaining life (40–60 %, so that
    /// a fleet started together does not renew together), retrying with
    /// backoff while the CA is unreachable, until a final refusal or expiry.
    pub(crate) async fn renew_forever(self: Arc<Self>, retry_soon: bool) {
        let mut backoff = MIN_BACKOFF;
        // Set after a failure: the wait before the next attempt.
        let mut retry_in = retry_soon.then_some(MIN_BACKOFF);
        loop {
            let current = self.current.load_full();
            let due = match retry_in.take() {
                Some(wait) => SystemTime::now() + wait,
                None => current.renewal_time(0.4 + 0.2 * jitter(), MIN_RENEWAL_DELAY),
            };
            sleep_until(due).await;
            match self.renew_once(Some(current.serial())).await {
                Ok(_) => backoff = MIN_BACKOFF,
                Err(_) if self.finished.get().is_some() => return,
                Err(_) if self.renewal_is_over() && self.attest_again().await => {
                    backoff = MIN_BACKOFF;
                }
                Err(error) => {
                    let current = self.current.load_full();
                    let left = current
                        .not_after()
                        .duration_since(SystemTime::now())
                        .unwrap_or_default();
                    if left.is_zero() {
                        if !self.can_attest_again() {
                            self.finish(Event::Expired {
                                serial: current.serial().to_owned(),
                            });
                            return;
                        }
                        if self.attest_again().await {
                            backoff = MIN_BACKOFF;
                            continue;
                        }
                    }
                    let jittered = backoff.mul_f64(0.5 + 0.5 * jitter());
                    let wait = retry_wait(jittered, left, error.retry_after());
                    let _ = self.events.send(Event::RenewalFailed {
                        error: error.to_string(),
                        retry_in: wait,
                    });
                    retry_in = Some(wait);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// The wait before retrying a failed renewal: the backoff, which spreads
/// a fleet's retries, cut so that one more try comes before expiry (after
/// it, only a new attestation helps: back off); but no sooner than the CA
/// asked (`Retry-After`) while that still leaves time before expiry.
fn retry_wait(jittered: Duration, left: Duration, retry_after: Option<Duration>) -> Duration {
    if left.is_zero() {
        return jittered.max(retry_after.unwrap_or_default());
    }
    let wait = jittered
        .min(left.mul_f64(0.5))
        .max(Duration::from_millis(100));
    match retry_after {
        Some(asked) if asked < left => wait.max(asked),
        _ => wait,
    }
}

pub(crate) fn renewed_event(previous: &Svid, renewed: &Svid) -> Event {
    Event::Renewed {
        spiffe_id: renewed.spiffe_id().clone(),
        serial: renewed.serial().to_owned(),
        previous_serial: previous.serial().to_owned(),
        not_after: renewed.not_after(),
    }
}

/// Rewrites `bundle.pem` and `crls.pem` whenever the trust material
/// changes. It takes the renewal lock so that it never interleaves with a
/// renewal's own writes.
pub(crate) async fn keep_trust_files(inner: Arc<Inner>, files: SvidFiles) {
    let mut updates = inner.trust.subscribe();
    while updates.changed().await.is_ok() {
        let _renewal = inner.state.lock().await;
        if let Err(error) = files.write_trust(&inner.trust.bundle_pem(), &inner.trust.crls_pem()) {
            tracing::warn!(%error, "could not write the bundle and CRL files");
        }
    }
}

async fn sleep_until(at: SystemTime) {
    if let Ok(wait) = at.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait).await;
    }
}

/// A number in [0, 1) from the OS's random source (0.5 if it fails).
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes) {
        Ok(()) => f64::from(u32::from_be_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_retry_waits_as_long_as_the_ca_asked_while_that_leaves_time_before_expiry() {
        // No Retry-After: the backoff, cut to half the time left.
        assert_eq!(retry_wait(2 * SECOND, 60 * SECOND, None), 2 * SECOND);
        assert_eq!(retry_wait(40 * SECOND, 60 * SECOND, None), 30 * SECOND);
        // The CA asked for longer than the backoff: it gets it.
        assert_eq!(
            retry_wait(2 * SECOND, 60 * SECOND, Some(10 * SECOND)),
            10 * SECOND
        );
        // Not past expiry, where only one last try before it helps.
        assert_eq!(
            retry_wait(2 * SECOND, 5 * SECOND, Some(10 * SECOND)),
            2 * SECOND
        );
        // Expired already: back off, and no sooner than asked.
        assert_eq!(
            retry_wait(2 * SECOND, Duration::ZERO, Some(10 * SECOND)),
            10 * SECOND
        );
    }
}
