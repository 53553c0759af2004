//! Per-source-address rate limits on the routes that cost the CA work: a
//! token bucket per IP address and per kind of call (attestations and admin
//! calls, renewals, failed attestations), each with a burst large enough
//! for a fleet behind one NAT to restart at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, PeerAddr};

/// How fast one address may call, and how far it may run ahead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests an idle address may make at once.
    pub burst: f64,
}

impl RateLimit {
    /// The default limit on failed attestations per address: an agent
    /// with a good token never fails, one with a stale token fails a few
    /// times while it backs off, and a client guessing tokens is held to
    /// two guesses a second (each also a counted refusal in the audit log).
    pub const FAILED_ATTESTATIONS: Self = Self {
        per_second: 2.0,
        burst: 20.0,
    };
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 200.0,
            burst: 2000.0,
        }
    }
}

/// The per-address limits, one per kind of call. Each kind has its own
/// buckets, so a renewal storm (every agent of a NAT renewing after the CA
/// was down) does not starve the attestations of agents starting up, and
/// the reverse.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Attestations (`POST /v1/svid`) and admin calls.
    pub requests: RateLimit,
    /// Renewals (`POST /v1/renew`).
    pub renewals: RateLimit,
    /// Failed attestations (bad tokens and JWTs); an address over it gets
    /// 429 on every attestation.
    pub failed_attestations: RateLimit,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            requests: RateLimit::default(),
            renewals: RateLimit::default(),
            failed_attestations: RateLimit::FAILED_ATTESTATIONS,
        }
    }
}

/// The buckets of every kind of call.
#[derive(Debug, Clone)]
pub struct RateLimiters {
    /// Attestations and admin calls.
    pub requests: Arc<RateLimiter>,
    /// Renewals.
    pub renewals: Arc<RateLimiter>,
    /// Failed attestations.
    pub failed_attestations: Arc<RateLimiter>,
}

impl RateLimiters {
    /// Limiters with these limits.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            requests: Arc::new(RateLimiter::new(limits.requests)),
            renewals: Arc::new(RateLimiter::new(limits.renewals)),
            failed_attestations: Arc::new(RateLimiter::new(limits.failed_attestations)),
        }
    }

    /// Limiters with `limits`, keeping the buckets of each kind whose limit
    /// is unchanged: a reload is no way around a limit (an address locked
    /// out for guessing tokens stays locked out).
    pub fn carried_over(&self, limits: RateLimits) -> Self {
        let keep = |current: &Arc<RateLimiter>, limit: RateLimit| {
            if current.limit == limit {
                Arc::clone(current)
            } else {
                Arc::new(RateLimiter::new(limit))
            }
        };
        Self {
            requests: keep(&self.requests, limits.requests),
            renewals: keep(&self.renewals, limits.renewals),
            failed_attestations: keep(&self.failed_attestations, limits.failed_attestations),
        }
    }
}

/// The longest Retry-After given, whatever the configured rate: a day.
const MAX_WAIT_SECONDS: f64 = 86_400.0;

/// The wait for a bucket `missing` tokens short of one at `per_second`.
fn wait_for(missing: f64, per_second: f64) -> Duration {
    Duration::from_secs_f64((missing / per_second).clamp(0.001, MAX_WAIT_SECONDS))
}

/// Above this many tracked addresses, full buckets are forgotten.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every address seen lately.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// A limiter with this limit.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::default(),
        }
    }

    /// Whether `ip` is out of tokens, and if so for how long, without
    /// taking one.
    pub(super) fn exhausted(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let buckets = self.buckets.lock().ok()?;
        let bucket = refill(*buckets.get(&ip)?, self.limit, now);
        (bucket.tokens < 1.0).then(|| wait_for(1.0 - bucket.tokens, self.limit.per_second))
    }

    /// Takes one token for `ip`, or says how long until one is free.
    pub(super) fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() > PRUNE_ABOVE {
            let limit = self.limit;
            buckets.retain(|_, bucket| refill(*bucket, limit, now).tokens < limit.burst);
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: self.limit.burst,
            at: now,
        });
        *bucket = refill(*bucket, self.limit, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(wait_for(1.0 - bucket.tokens, self.limit.per_second))
    }
}

fn refill(bucket: Bucket, limit: RateLimit, now: Instant) -> Bucket {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    Bucket {
        tokens: (bucket.tokens + elapsed * limit.per_second).min(limit.burst),
        at: now,
    }
}

/// Middleware: 429 `rate_limited` with Retry-After for an address over its
/// limit on attestations and admin calls.
pub(super) async fn limit_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    limit(
        &state,
        "requests",
        &state.policy().rate_limiters.requests,
        request,
        next,
    )
    .await
}

/// Middleware: 429 `rate_limited` with Retry-After for an address over its
/// limit on renewals.
pub(super) async fn limit_renewals(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    limit(
        &state,
        "renewals",
        &state.policy().rate_limiters.renewals,
        request,
        next,
    )
    .await
}

async fn limit(
    state: &AppState,
    name: &str,
    limiter: &RateLimiter,
    request: Request,
    next: Next,
) -> Response {
    if let Some(PeerAddr(peer)) = request.extensions().get::<PeerAddr>().copied()
        && let Err(wait) = limiter.take(peer.ip(), Instant::now())
    {
        state.refusals.count("rate limited", Some(peer.ip()));
        state.metrics.rate_limited(name);
        return ApiError::rate_limited(wait).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_then_its_rate_and_others_are_unaffected() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 10.0,
            burst: 5.0,
        });
        let start = Instant::now();
        let busy: IpAddr = [192, 0, 2, 1].into();
        for _ in 0..5 {
            assert!(limiter.take(busy, start).is_ok());
        }
        let wait = limiter.take(busy, start).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert!(limiter.take([192, 0, 2, 2].into(), start).is_ok());
        // 100 ms later, one more token.
        let later = start + Duration::from_millis(100);
        assert!(limiter.take(busy, later).is_ok());
        assert!(limiter.take(busy, later).is_err());
    }

    #[test]
    fn a_tiny_rate_waits_at_most_a_day_instead_of_overflowing() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1e-20,
            burst: 1.0,
        });
        let now = Instant::now();
        let ip: IpAddr = [192, 0, 2, 1].into();
        limiter.take(ip, now).unwrap();
        assert_eq!(limiter.take(ip, now), Err(Duration::from_secs(86_400)));
        assert_eq!(
            limiter.exhausted(ip, now),
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn a_reload_keeps_the_buckets_of_every_limit_it_leaves_alone() {
        let limits = RateLimits {
            failed_attestations: RateLimit {
                per_second: 0.001,
                burst: 1.0,
            },
            ..RateLimits::default()
        };
        let limiters = RateLimiters::new(limits);
        let now = Instant::now();
        let guesser: IpAddr = [192, 0, 2, 66].into();
        limiters.failed_attestations.take(guesser, now).unwrap();
        assert!(
            limiters
                .failed_attestations
                .exhausted(guesser, now)
                .is_some()
        );

        let relaxed = RateLimits {
            requests: RateLimit {
                per_second: 1.0,
                burst: 1.0,
            },
            ..limits
        };
        let reloaded = limiters.carried_over(relaxed);
        assert!(
            reloaded
                .failed_attestations
                .exhausted(guesser, now)
                .is_some(),
            "the guesser is still locked out"
        );
        assert!(Arc::ptr_eq(&reloaded.renewals, &limiters.renewals));
        assert!(!Arc::ptr_eq(&reloaded.requests, &limiters.requests));
        assert_eq!(reloaded.requests.limit, relaxed.requests);
    }

    #[test]
    fn looking_at_a_bucket_takes_nothing_from_it() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 2.0,
        });
        let start = Instant::now();
        let ip: IpAddr = [192, 0, 2, 1].into();
        assert_eq!(limiter.exhausted(ip, start), None, "an address never seen");
        limiter.take(ip, start).unwrap();
        assert_eq!(limiter.exhausted(ip, start), None);
        limiter.take(ip, start).unwrap();
        let wait = limiter.exhausted(ip, start).unwrap();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiter.exhausted(ip, start).is_some(), "still exhausted");
        assert_eq!(limiter.exhausted(ip, start + Duration::from_secs(1)), None);
    }
}
