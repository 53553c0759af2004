//! Trust material kept fresh from a Sigil CA: bootstrapped from a bundle
//! file or a pinned root fingerprint, then the CRLs by long poll (so a
//! revocation arrives within a second) and the bundle now and then.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::Error;
use crate::bundle::{Bundle, certificates_from_pem, fingerprint, fingerprint_text};
use crate::ca::{CaClient, CaResponse};
use crate::crl::crls_from_pem;
use crate::trust::{TrustSource, WeakTrustSource};

/// The header in which the CA names the highest CRL number it served.
const CRL_NUMBER_HEADER: &str = "sigil-crl-number";
/// The header in which the CA names its bundle's `spiffe_sequence`.
const BUNDLE_SEQUENCE_HEADER: &str = "sigil-bundle-sequence";

/// How the first roots are obtained.
#[derive(Clone)]
enum Anchor {
    /// Only the root with this SHA-256 fingerprint, from the CA's bundle.
    Fingerprint([u8; 32]),
    /// The roots of a bundle the caller already trusts.
    BundlePem(Vec<u8>),
}

/// Configures trust material that follows a Sigil CA.
///
/// ```no_run
/// # async fn run() -> Result<(), sigil_verifier::Error> {
/// use sigil_verifier::LiveSource;
///
/// let source = LiveSource::from_fingerprint(
///     "https://ca.internal:8443",
///     "sha256:3f2a…",
/// )?
/// .start()
/// .await?;
/// # let _ = source;
/// # Ok(())
/// # }
/// ```
///
/// [`LiveSource::start`] fetches the bundle and every CRL once, and then
/// keeps them fresh in a background task on the current tokio runtime:
/// - CRLs by long poll (`GET /v1/crls?after=N&wait=S`): the CA answers as
///   soon as it signs a newer CRL;
/// - the bundle every [`LiveSource::bundle_refresh`], over TLS verified
///   against the roots already held (never from an unauthenticated fetch);
/// - a failed fetch, or a CRL that does not verify, keeps the last good
///   material and retries with backoff.
///
/// The task ends once every clone of the returned [`TrustSource`] is gone.
#[derive(Clone)]
pub struct LiveSource {
    url: String,
    anchor: Anchor,
    bundle_refresh: Duration,
    poll_wait: Duration,
    request_timeout: Duration,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("url", &self.url)
            .field("bundle_refresh", &self.bundle_refresh)
            .field("poll_wait", &self.poll_wait)
            .finish_non_exhaustive()
    }
}

/// Parses `sha256:<64 hex digits>` (case-insensitive hex).
fn parse_fingerprint(text: &str) -> Result<[u8; 32], Error> {
    let invalid = || Error::Fingerprint(format!("'{text}' is not sha256:<64 hex digits>"));
    let hex = text.strip_prefix("sha256:").ok_or_else(invalid)?;
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(invalid());
    }
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * index..2 * index + 2], 16).map_err(|_| invalid())?;
    }
    Ok(bytes)
}

impl LiveSource {
    fn new(url: &str, anchor: Anchor) -> Result<Self, Error> {
        // Refuse a bad URL now rather than at start.
        CaClient::unauthenticated(url, bootstrap_config()?)?;
        Ok(Self {
            url: url.to_owned(),
            anchor,
            bundle_refresh: Duration::from_secs(300),
            poll_wait: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        })
    }

    /// Follows the CA at `url`, trusting at first only the root whose
    /// SHA-256 fingerprint is `fingerprint` (as `sigil init` prints it).
    ///
    /// # Errors
    ///
    /// The URL is not `https://host:port`, or the fingerprint is not
    /// `sha256:` and 64 hex digits.
    pub fn from_fingerprint(url: &str, fingerprint: &str) -> Result<Self, Error> {
        Self::new(url, Anchor::Fingerprint(parse_fingerprint(fingerprint)?))
    }

    /// Follows the CA at `url`, trusting at first the roots of `bundle_pem`.
    ///
    /// # Errors
    ///
    /// The URL is not `https://host:port`.
    pub fn from_bundle_pem(url: &str, bundle_pem: &[u8]) -> Result<Self, Error> {
        Self::new(url, Anchor::BundlePem(bundle_pem.to_vec()))
    }

    /// How often the bundle is fetched again (default 5 minutes; between
    /// 1 s and 1 day).
    pub fn bundle_refresh(mut self, every: Duration) -> Self {
        self.bundle_refresh = every.clamp(Duration::from_secs(1), Duration::from_secs(86_400));
        self
    }

    /// How long each CRL long poll asks the CA to wait (default 30 s; the
    /// CA caps it at 60 s).
    pub fn poll_wait(mut self, wait: Duration) -> Self {
        self.poll_wait = wait.clamp(Duration::from_secs(1), Duration::from_secs(60));
        self
    }

    /// Fetches the bundle and CRLs, and starts keeping them fresh.
    ///
    /// # Errors
    ///
    /// The CA cannot be reached; its TLS certificate does not chain to the
    /// trusted roots ([`Error::UntrustedCa`]; with a pinned fingerprint, an
    /// [`Error::Fingerprint`] that says what to pin instead); no root it
    /// serves matches the fingerprint; or its bundle or CRLs are refused.
    pub async fn start(self) -> Result<TrustSource, Error> {
        let (bundle, pinned) = match &self.anchor {
            Anchor::BundlePem(pem) => (Bundle::from_pem(pem, None)?, None),
            Anchor::Fingerprint(pinned) => (self.pinned_root(pinned).await?, Some(*pinned)),
        };
        let source = TrustSource::from_bundle(bundle);
        let refresher = Refresher {
            settings: self,
            source: source.downgrade(),
        };
        let sequence = match (pinned, refresher.refresh_bundle(&source).await) {
            // The CA still serves the pinned root, but its own certificate
            // chains to another: most likely it has activated a new root.
            (Some(pinned), Err(Error::UntrustedCa { url, message })) => {
                return Err(Error::Fingerprint(format!(
                    "the CA at {url} still serves the root {}, but its TLS certificate does not \
                     chain to it ({message}). If the CA has activated a new root, pin that one \
                     (`sigil fingerprint` on the CA host prints it); if not, something between \
                     here and the CA presents a certificate of its own",
                    fingerprint_text(&pinned)
                )));
            }
            (_, result) => result?,
        };
        let fetched = refresher.fetch_crls(&source, None).await?;
        tokio::spawn(refresher.run(fetched.after, sequence));
        Ok(source)
    }

    /// The first, unauthenticated fetch: only the pinned root is kept.
    async fn pinned_root(&self, pinned: &[u8; 32]) -> Result<Bundle, Error> {
        let ca = CaClient::unauthenticated(&self.url, bootstrap_config()?)?
            .with_timeout(self.request_timeout);
        let served = certificates_from_pem(&success(ca.get("/v1/bundle").await?)?.body)?;
        let wanted = fingerprint_text(pinned);
        let root = served
            .into_iter()
            .find(|der| fingerprint(der) == wanted)
            .ok_or_else(|| {
                Error::Fingerprint(format!(
                    "no root the CA at {} serves has fingerprint {wanted}",
                    self.url
                ))
            })?;
        Bundle::new(vec![root], None)
    }
}

/// The configuration of the one unauthenticated fetch.
fn bootstrap_config() -> Result<ClientConfig, Error> {
    Ok(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(UnauthenticatedBootstrap::default()))
            .with_no_client_auth(),
    )
}

/// A 200 or a 304; anything else is the CA's error.
fn success(answer: CaResponse) -> Result<CaResponse, Error> {
    match answer.status {
        StatusCode::NOT_MODIFIED => Ok(answer),
        _ => answer.success(),
    }
}

/// The background task's state.
struct Refresher {
    settings: LiveSource,
    source: WeakTrustSource,
}

impl Refresher {
    /// A client of the CA verified against the roots held now.
    fn ca(&self, source: &TrustSource) -> Result<CaClient, Error> {
        Ok(CaClient::new(&self.settings.url, source, None)?
            .with_timeout(self.settings.request_timeout))
    }

    /// Fetches the bundle over verified TLS and adopts it. Returns its
    /// sequence, if the CA names it.
    async fn refresh_bundle(&self, source: &TrustSource) -> Result<Option<u64>, Error> {
        let answer = self.ca(source)?.get("/v1/bundle").await?.success()?;
        let sequence = bundle_sequence(&answer);
        let bundle = Bundle::from_pem(&answer.body, None)?;
        if bundle.trust_domain != source.trust_domain() {
            return Err(Error::Certificate(format!(
                "the CA now serves roots of trust domain {}, not {}",
                bundle.trust_domain,
                source.trust_domain()
            )));
        }
        source.replace_bundle(bundle);
        Ok(sequence)
    }

    /// Fetches CRLs (newer than `after`, by long poll, if given) and loads
    /// them, each on its own.
    async fn fetch_crls(
        &self,
        source: &TrustSource,
        after: Option<u128>,
    ) -> Result<CrlFetch, Error> {
        let (path, timeout) = match after {
            Some(after) => (
                format!(
                    "/v1/crls?after={after}&wait={}",
                    self.settings.poll_wait.as_secs()
                ),
                self.settings.request_timeout + self.settings.poll_wait,
            ),
            None => ("/v1/crls".to_owned(), self.settings.request_timeout),
        };
        let ca = self.ca(source)?.with_timeout(timeout);
        let answer = success(ca.get(&path).await?)?;
        let bundle_sequence = bundle_sequence(&answer);
        if answer.status == StatusCode::NOT_MODIFIED {
            return Ok(CrlFetch {
                after: after.unwrap_or(0),
                news: false,
                bundle_sequence,
            });
        }
        let served = answer
            .headers
            .get(CRL_NUMBER_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u128>().ok());
        let crls = crls_from_pem(&answer.body)?;
        let replaced = match after {
            // At start, all or nothing: a CA whose CRLs do not verify is
            // not one to start from.
            None => source.update_crls(crls)?,
            Some(_) => {
                let (replaced, refused) = source.update_crls_leniently(crls);
                for error in refused {
                    tracing::warn!(%error, "refused a CRL from the CA; keeping the one held");
                }
                replaced
            }
        };
        let held = source.crl_number().unwrap_or(0);
        // Poll after what the CA served even if it was refused, so that a
        // bad CRL is not fetched again and again.
        Ok(CrlFetch {
            after: served.unwrap_or(held).max(held),
            news: replaced > 0,
            bundle_sequence,
        })
    }

    async fn run(self, mut after: u128, mut sequence: Option<u64>) {
        let mut backoff = MIN_BACKOFF;
        let mut bundle_due = tokio::time::Instant::now() + self.settings.bundle_refresh;
        loop {
            let Some(source) = self.source.upgrade() else {
                return;
            };
            if tokio::time::Instant::now() >= bundle_due {
                bundle_due = tokio::time::Instant::now() + self.settings.bundle_refresh;
                match self.refresh_bundle(&source).await {
                    Ok(served) => sequence = served.or(sequence),
                    Err(error) => {
                        tracing::warn!(%error, "bundle refresh failed; keeping the roots held");
                        // Soon again: the roots may be changing.
                        bundle_due = bundle_due.min(tokio::time::Instant::now() + MAX_BACKOFF);
                    }
                }
            }
            let started = tokio::time::Instant::now();
            let outcome = self.fetch_crls(&source, Some(after)).await;
            drop(source);
            match outcome {
                Ok(fetched) => {
                    after = fetched.after;
                    backoff = MIN_BACKOFF;
                    // The CA's roots changed (a root rotation): fetch the
                    // bundle before the next poll.
                    if fetched
                        .bundle_sequence
                        .is_some_and(|served| sequence.is_none_or(|held| served > held))
                    {
                        bundle_due = tokio::time::Instant::now();
                        sequence = fetched.bundle_sequence;
                        continue;
                    }
                    // A CA (or a proxy) that answers at once with nothing
                    // new is not long-polling: do not hammer it.
                    if !fetched.news {
                        tokio::time::sleep_until(started + MIN_POLL_INTERVAL).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "CRL refresh failed; keeping the CRLs held");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// What a CRL fetch brought.
struct CrlFetch {
    /// The CRL number to poll after next.
    after: u128,
    /// Whether a newer CRL was loaded.
    news: bool,
    /// The bundle's sequence, if the CA named it.
    bundle_sequence: Option<u64>,
}

/// The bundle sequence a CA answer names.
fn bundle_sequence(answer: &CaResponse) -> Option<u64> {
    answer
        .headers
        .get(BUNDLE_SEQUENCE_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

/// The first wait after a failed fetch; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between failed fetches.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The shortest time between two polls that bring nothing new.
const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Accepts any server certificate. Used only for the first bundle fetch
/// from a fingerprint: what that fetch returns is trusted only if its hash
/// matches the pinned fingerprint, so the connection needs no
/// authentication.
#[derive(Debug)]
struct UnauthenticatedBootstrap {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl Default for UnauthenticatedBootstrap {
    fn default() -> Self {
        Self {
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for UnauthenticatedBootstrap {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_must_be_sha256_and_64_hex_digits() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert!(parse_fingerprint(&good).is_ok());
        assert!(parse_fingerprint(&good.to_uppercase().replace("SHA256", "sha256")).is_ok());
        for bad in [
            "ab".repeat(32),
            format!("sha1:{}", "ab".repeat(32)),
            format!("sha256:{}", "ab".repeat(31)),
            format!("sha256:{}zz", "ab".repeat(31)),
            format!("sha256:{}é", "ab".repeat(31)),
        ] {
            assert!(
                matches!(parse_fingerprint(&bad), Err(Error::Fingerprint(_))),
                "{bad}"
            );
        }
    }
}
