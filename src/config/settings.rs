//! The settings `sigil serve` runs with: flags over the file over the
//! built-in defaults, each checked, with errors that name where a value
//! came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use sigil_core::TrustDomain;

use super::{DEFAULT_LISTEN, LoadedConfig, MAX_CRL_TTL, MIN_CRL_TTL};
use crate::api::{RateLimit, RateLimits};
use crate::attestation::jwt::config::JwtAttestorConfig;
use crate::csr::KeyPolicy;
use crate::duration::HumanDuration;
use crate::hostname::HttpsUrl;
use crate::issuance::TtlPolicy;
use crate::namespace::AdminIds;
use crate::server::ConnectionLimits;

/// The flags of `sigil serve` that override the file: `None` (or `false`)
/// where not given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub public_url: Option<String>,
    pub default_ttl: Option<HumanDuration>,
    pub min_ttl: Option<HumanDuration>,
    pub max_ttl: Option<HumanDuration>,
    pub crl_ttl: Option<HumanDuration>,
    pub crl_resign: Option<HumanDuration>,
    pub issuing_ttl: Option<HumanDuration>,
    pub issuing_rotate_before: Option<HumanDuration>,
    pub root_activation_delay: Option<HumanDuration>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub rate_limit: Option<f64>,
    pub rate_burst: Option<f64>,
    pub renewal_limit: Option<f64>,
    pub renewal_burst: Option<f64>,
    pub failed_attestation_limit: Option<f64>,
    pub failed_attestation_burst: Option<f64>,
    pub allow_rsa: bool,
}

/// The shortest issuing CA a rotation makes.
const MIN_ISSUING_TTL: Duration = Duration::from_secs(86_400);
/// How long before the issuing CA expires it is rotated, by default.
pub const DEFAULT_ROTATE_BEFORE: Duration = Duration::from_secs(30 * 86_400);

/// How long a new root waits in the bundle before it takes over, by
/// default: long enough for every agent and relying party to have fetched
/// the bundle (every 5 minutes by default) many times.
pub const DEFAULT_ROOT_ACTIVATION_DELAY: Duration = Duration::from_secs(86_400);
/// The longest a new root may wait.
pub const MAX_ROOT_ACTIVATION_DELAY: Duration = Duration::from_secs(365 * 86_400);

/// When the server rotates its CAs by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationSchedule {
    /// How long the issuing CAs it makes live.
    pub issuing_ttl: Duration,
    /// How long before the issuing CA in force expires it is rotated.
    pub rotate_before: Duration,
    /// How long a new root waits in the bundle before it takes over, when
    /// the schedule adds it.
    pub root_activation_delay: Duration,
}

/// The attestors of the configuration file, handed on to the server.
#[derive(Debug, Clone, Default)]
pub struct Attestors {
    /// The `[[attestor.jwt]]` tables, as written.
    pub jwt: Vec<JwtAttestorConfig>,
    /// The directory that relative paths in them (JWKS files, CA files) are
    /// read from: the configuration file's.
    pub dir: PathBuf,
}

/// The server's settings: flags over the file over the built-in defaults,
/// checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where clients reach the CA; `https://localhost:<port>` when absent.
    pub public_url: Option<String>,
    /// Lifetimes of SVIDs.
    pub ttl: TtlPolicy,
    /// How long the issuing CA's CRLs are valid.
    pub crl_ttl: Duration,
    /// How old the issuing CA's CRL gets before it is re-signed.
    pub crl_resign: Duration,
    /// When and for how long the issuing CA is rotated.
    pub rotation: RotationSchedule,
    /// Connection limits.
    pub connections: ConnectionLimits,
    /// Per-address rate limits.
    pub rate_limits: RateLimits,
    /// Accepted agent keys.
    pub keys: KeyPolicy,
    /// `admin_ids` as written; checked against the CA's trust domain by
    /// [`Settings::admins`].
    pub admin_ids: Option<Vec<String>>,
    /// The configured attestors.
    pub attestors: Attestors,
    /// The file read, for messages.
    file: Option<PathBuf>,
}

/// A setting and where its value came from.
struct Picked<T> {
    value: T,
    origin: String,
}

/// Picks each setting from a flag, else the file, and says whence.
struct Sources<'a> {
    file: Option<&'a Path>,
}

impl Sources<'_> {
    fn pick<T>(
        &self,
        flag: &str,
        given: Option<T>,
        key: &str,
        written: Option<T>,
    ) -> Option<Picked<T>> {
        match (given, written) {
            (Some(value), _) => Some(Picked {
                value,
                origin: flag.to_owned(),
            }),
            (None, Some(value)) => Some(Picked {
                value,
                origin: in_file(key, self.file),
            }),
            (None, None) => None,
        }
    }

    /// [`Self::pick`], else the built-in default.
    fn pick_or<T>(
        &self,
        flag: &str,
        given: Option<T>,
        key: &str,
        written: Option<T>,
        default: T,
    ) -> Picked<T> {
        self.pick(flag, given, key, written)
            .unwrap_or_else(|| Picked {
                value: default,
                origin: format!("the built-in {key}"),
            })
    }

    /// A rate (above 0 per second) and a burst (at least 1), each from its
    /// flag, its key or the default.
    fn rate_limit(
        &self,
        (rate_flag, rate_given, rate_key, rate_written): (&str, Option<f64>, &str, Option<f64>),
        (burst_flag, burst_given, burst_key, burst_written): (&str, Option<f64>, &str, Option<f64>),
        default: RateLimit,
    ) -> anyhow::Result<RateLimit> {
        let per_second = self.pick_or(
            rate_flag,
            rate_given,
            rate_key,
            rate_written,
            default.per_second,
        );
        if !(per_second.value > 0.0 && per_second.value.is_finite()) {
            bail!("{}: a rate limit must be above 0", per_second.origin);
        }
        let burst = self.pick_or(
            burst_flag,
            burst_given,
            burst_key,
            burst_written,
            default.burst,
        );
        if !(burst.value >= 1.0 && burst.value.is_finite()) {
            bail!("{}: a burst must be at least 1", burst.origin);
        }
        Ok(RateLimit {
            per_second: per_second.value,
            burst: burst.value,
        })
    }

    /// [`Self::pick_or`] for a duration.
    fn duration(
        &self,
        flag: &str,
        given: Option<HumanDuration>,
        key: &str,
        written: Option<HumanDuration>,
        default: Duration,
    ) -> Picked<Duration> {
        let get = |duration: Option<HumanDuration>| duration.map(HumanDuration::get);
        self.pick_or(flag, get(given), key, get(written), default)
    }
}

impl Settings {
    /// Merges the flags, the file and the defaults, and checks the result.
    ///
    /// # Errors
    ///
    /// A value is out of range or contradicts another; the message names
    /// the flag or the file's key it came from.
    pub fn resolve(flags: Overrides, config: LoadedConfig) -> anyhow::Result<Self> {
        let LoadedConfig { file: f, path, dir } = config;
        let from = Sources {
            file: path.as_deref(),
        };

        let defaults = TtlPolicy::default();
        let default_ttl = from.duration(
            "--default-ttl",
            flags.default_ttl,
            "default_ttl",
            f.default_ttl,
            defaults.default,
        );
        let min_ttl = from.duration(
            "--min-ttl",
            flags.min_ttl,
            "min_ttl",
            f.min_ttl,
            defaults.min,
        );
        let max_ttl = from.duration(
            "--max-ttl",
            flags.max_ttl,
            "max_ttl",
            f.max_ttl,
            defaults.max,
        );
        let ttl = TtlPolicy {
            default: default_ttl.value,
            min: min_ttl.value,
            max: max_ttl.value,
        }
        .validate()
        .map_err(|problem| {
            anyhow::anyhow!(
                "{problem} (default TTL from {}, minimum from {}, maximum from {})",
                default_ttl.origin,
                min_ttl.origin,
                max_ttl.origin
            )
        })?;

        let crl_ttl = from.duration(
            "--crl-ttl",
            flags.crl_ttl,
            "crl_ttl",
            f.crl_ttl,
            crate::ca::DEFAULT_CRL_VALIDITY,
        );
        if !(MIN_CRL_TTL..=MAX_CRL_TTL).contains(&crl_ttl.value) {
            bail!("{}: crl_ttl must lie between 1m and 7d", crl_ttl.origin);
        }
        let crl_resign = from.duration(
            "--crl-resign",
            flags.crl_resign,
            "crl_resign",
            f.crl_resign,
            crl_ttl.value / 2,
        );
        if crl_resign.value.is_zero() || crl_resign.value >= crl_ttl.value {
            bail!(
                "{}: crl_resign ({}s) must be above 0 and below crl_ttl ({}s, from {}), \
                 so that a fresh CRL is out before the last one expires",
                crl_resign.origin,
                crl_resign.value.as_secs(),
                crl_ttl.value.as_secs(),
                crl_ttl.origin
            );
        }

        let issuing_ttl = from.duration(
            "--issuing-ttl",
            flags.issuing_ttl,
            "issuing_ttl",
            f.issuing_ttl,
            crate::ca::DEFAULT_ISSUING_LIFETIME,
        );
        if !(MIN_ISSUING_TTL..=crate::ca::ROOT_LIFETIME).contains(&issuing_ttl.value) {
            bail!(
                "{}: issuing_ttl must lie between 1d and 3650d",
                issuing_ttl.origin
            );
        }
        let rotate_before = from.duration(
            "--issuing-rotate-before",
            flags.issuing_rotate_before,
            "issuing_rotate_before",
            f.issuing_rotate_before,
            DEFAULT_ROTATE_BEFORE,
        );
        // Rotated that early, no leaf is ever cut short by its issuer's end,
        // with room for a renewal that comes late.
        if rotate_before.value < 2 * ttl.max || rotate_before.value >= issuing_ttl.value {
            bail!(
                "{}: issuing_rotate_before ({}s) must be at least twice max_ttl ({}s) and \
                 below issuing_ttl ({}s)",
                rotate_before.origin,
                rotate_before.value.as_secs(),
                ttl.max.as_secs(),
                issuing_ttl.value.as_secs()
            );
        }
        let root_activation_delay = from.duration(
            "--root-activation-delay",
            flags.root_activation_delay,
            "root_activation_delay",
            f.root_activation_delay,
            DEFAULT_ROOT_ACTIVATION_DELAY,
        );
        if root_activation_delay.value > MAX_ROOT_ACTIVATION_DELAY {
            bail!(
                "{}: root_activation_delay must lie between 0s and 365d",
                root_activation_delay.origin
            );
        }
        // The root is rotated once it has this much life left: half of a
        // new root's at most, or each new root would be due at once.
        let root_rotated_with =
            issuing_ttl.value + rotate_before.value + root_activation_delay.value;
        if root_rotated_with > crate::ca::ROOT_LIFETIME / 2 {
            bail!(
                "issuing_ttl ({}) + issuing_rotate_before ({}) + root_activation_delay ({}) \
                 comes to {}d: at most 1825d (half a root's 3650d life) is allowed, or every new \
                 root would be due for rotation at once",
                issuing_ttl.origin,
                rotate_before.origin,
                root_activation_delay.origin,
                root_rotated_with.as_secs() / 86_400
            );
        }

        let connection_defaults = ConnectionLimits::default();
        let total = from.pick_or(
            "--max-connections",
            flags.max_connections,
            "max_connections",
            f.max_connections,
            connection_defaults.total,
        );
        let per_ip = from.pick_or(
            "--max-connections-per-ip",
            flags.max_connections_per_ip,
            "max_connections_per_ip",
            f.max_connections_per_ip,
            connection_defaults.per_ip,
        );
        for limit in [&total, &per_ip] {
            if limit.value == 0 {
                bail!("{}: a connection limit must be at least 1", limit.origin);
            }
        }

        let defaults = RateLimits::default();
        let requests = from.rate_limit(
            ("--rate-limit", flags.rate_limit, "rate_limit", f.rate_limit),
            ("--rate-burst", flags.rate_burst, "rate_burst", f.rate_burst),
            defaults.requests,
        )?;
        let renewals = from.rate_limit(
            (
                "--renewal-limit",
                flags.renewal_limit,
                "renewal_limit",
                f.renewal_limit,
            ),
            (
                "--renewal-burst",
                flags.renewal_burst,
                "renewal_burst",
                f.renewal_burst,
            ),
            defaults.renewals,
        )?;
        let failed_attestations = from.rate_limit(
            (
                "--failed-attestation-limit",
                flags.failed_attestation_limit,
                "failed_attestation_limit",
                f.failed_attestation_limit,
            ),
            (
                "--failed-attestation-burst",
                flags.failed_attestation_burst,
                "failed_attestation_burst",
                f.failed_attestation_burst,
            ),
            defaults.failed_attestations,
        )?;

        let public_url = from.pick("--public-url", flags.public_url, "public_url", f.public_url);
        if let Some(url) = &public_url {
            HttpsUrl::parse(&url.value).with_context(|| url.origin.clone())?;
        }
        let listen = from
            .pick_or("--listen", flags.listen, "listen", f.listen, DEFAULT_LISTEN)
            .value;

        Ok(Self {
            listen,
            public_url: public_url.map(|url| url.value),
            ttl,
            crl_ttl: crl_ttl.value,
            crl_resign: crl_resign.value,
            rotation: RotationSchedule {
                issuing_ttl: issuing_ttl.value,
                rotate_before: rotate_before.value,
                root_activation_delay: root_activation_delay.value,
            },
            connections: ConnectionLimits {
                total: total.value,
                per_ip: per_ip.value,
            },
            rate_limits: RateLimits {
                requests,
                renewals,
                failed_attestations,
            },
            keys: KeyPolicy {
                allow_rsa: flags.allow_rsa || f.allow_rsa.unwrap_or(false),
            },
            admin_ids: f.admin_ids,
            attestors: Attestors {
                jwt: f.attestor.jwt,
                dir,
            },
            file: path,
        })
    }

    /// The settings that only a restart applies and that differ from
    /// `before`, by their `sigil.toml` key.
    pub fn restart_only_changes(&self, before: &Settings) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.listen != before.listen {
            changed.push("listen");
        }
        if self.public_url != before.public_url {
            changed.push("public_url");
        }
        if self.crl_ttl != before.crl_ttl {
            changed.push("crl_ttl");
        }
        if self.crl_resign != before.crl_resign {
            changed.push("crl_resign");
        }
        if self.rotation.issuing_ttl != before.rotation.issuing_ttl {
            changed.push("issuing_ttl");
        }
        if self.rotation.rotate_before != before.rotation.rotate_before {
            changed.push("issuing_rotate_before");
        }
        if self.rotation.root_activation_delay != before.rotation.root_activation_delay {
            changed.push("root_activation_delay");
        }
        if self.connections.total != before.connections.total {
            changed.push("max_connections");
        }
        if self.connections.per_ip != before.connections.per_ip {
            changed.push("max_connections_per_ip");
        }
        changed
    }

    /// The admin identities for a CA of `trust_domain`; `None` for the
    /// default, everything under `/sigil/admin/`.
    ///
    /// # Errors
    ///
    /// `admin_ids` is empty, or an entry is not an ID or pattern of the
    /// trust domain under `/sigil/`, or covers the CA's own identity.
    pub fn admins(&self, trust_domain: &TrustDomain) -> anyhow::Result<Option<AdminIds>> {
        self.admin_ids
            .as_deref()
            .map(|entries| {
                AdminIds::parse(trust_domain, entries)
                    .with_context(|| in_file("admin_ids", self.file.as_deref()))
            })
            .transpose()
    }
}

/// "`key` in FILE".
fn in_file(key: &str, path: Option<&Path>) -> String {
    match path {
        Some(path) => format!("{key} in {}", path.display()),
        None => key.to_owned(),
    }
}
