//! The agent: bootstrap, first SVID, renewal in the background, and rustls
//! configurations that always present the current SVID.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::{ClientConfig, ServerConfig};
use sigil_verifier::{LiveSource, Policy, SpiffeClientVerifier, SpiffeServerVerifier, TrustSource};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::Error;
use crate::attestation::{Attestor, JoinToken};
use crate::event::Event;
use crate::files::SvidFiles;
use crate::key::KeyType;
use crate::requests::Requests;
use crate::resolver::SvidResolver;
use crate::svid::Svid;

/// How the CA's root is trusted at first.
enum Anchor {
    Fingerprint(String),
    BundlePem(Vec<u8>),
}

/// Configures an [`Agent`]. Start with [`Agent::builder`].
pub struct AgentBuilder {
    url: String,
    anchor: Option<Anchor>,
    attestor: Option<Arc<dyn Attestor>>,
    key_type: KeyType,
    ttl: Option<Duration>,
    files: Option<SvidFiles>,
    events: broadcast::Sender<Event>,
}

impl std::fmt::Debug for AgentBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentBuilder")
            .field("url", &self.url)
            .field("key_type", &self.key_type)
            .field("ttl", &self.ttl)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl AgentBuilder {
    /// Trusts at first only the CA root with this SHA-256 fingerprint
    /// (`sha256:<hex>`, as `sigil init` and `sigil fingerprint` print it).
    pub fn fingerprint(mut self, fingerprint: &str) -> Self {
        self.anchor = Some(Anchor::Fingerprint(fingerprint.to_owned()));
        self
    }

    /// Trusts at first the roots of this bundle (PEM).
    pub fn bundle_pem(mut self, bundle_pem: &[u8]) -> Self {
        self.anchor = Some(Anchor::BundlePem(bundle_pem.to_vec()));
        self
    }

    /// Attests with a join token when there is no valid SVID to renew.
    pub fn join_token(self, token: &str) -> Self {
        self.attestor(Arc::new(JoinToken::new(token)))
    }

    /// Attests this way when there is no valid SVID to renew.
    pub fn attestor(mut self, attestor: Arc<dyn Attestor>) -> Self {
        self.attestor = Some(attestor);
        self
    }

    /// The algorithm of the agent's keys (P-256 by default).
    pub fn key_type(mut self, key_type: KeyType) -> Self {
        self.key_type = key_type;
        self
    }

    /// The lifetime to ask for (the CA's default otherwise).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Keeps the SVID, key, bundle and CRLs in these files, and starts from
    /// the SVID there if it is still valid (renewing it over mTLS, so that
    /// a restart needs no new join token).
    pub fn files(mut self, files: SvidFiles) -> Self {
        self.files = Some(files);
        self
    }

    /// Events from the start on, including the first SVID.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Bootstraps trust, gets an SVID (renewing the one on disk if it is
    /// valid, else attesting), and starts renewing in the background on the
    /// current tokio runtime.
    ///
    /// # Errors
    ///
    /// - [`Error::Trust`]: the CA cannot be reached, or no root it serves
    ///   matches the fingerprint (fail closed);
    /// - [`Error::Refused`]: the CA refused the attestation (a spent or
    ///   unknown join token answers `invalid_attestation`);
    /// - [`Error::Revoked`]: the identity on disk is revoked or banned;
    /// - [`Error::NoIdentity`]: no valid SVID on disk and no attestation.
    pub async fn start(self) -> Result<Agent, Error> {
        let trust = match &self.anchor {
            Some(Anchor::Fingerprint(fingerprint)) => {
                LiveSource::from_fingerprint(&self.url, fingerprint)?
            }
            Some(Anchor::BundlePem(pem)) => LiveSource::from_bundle_pem(&self.url, pem)?,
            None => {
                return Err(Error::NoIdentity(
                    "give the CA's root fingerprint or a trust bundle".to_owned(),
                ));
            }
        }
        .start()
        .await?;
        let requests = Requests {
            url: &self.url,
            trust: &trust,
            key_type: self.key_type,
            ttl: self.ttl,
        };
        let (svid, event, retry_soon) = first_svid(&self, &requests).await?;
        let inner = Arc::new(Inner {
            url: self.url,
            trust,
            current: Arc::new(ArcSwap::from_pointee(svid)),
            key_type: self.key_type,
            ttl: self.ttl,
            files: self.files,
            events: self.events,
            finished: OnceLock::new(),
        });
        inner.save()?;
        let _ = inner.events.send(event);
        let renewal = tokio::spawn(Arc::clone(&inner).renew_forever(retry_soon));
        let files = inner
            .files
            .clone()
            .map(|files| tokio::spawn(keep_trust_files(Arc::clone(&inner), files)));
        Ok(Agent {
            inner,
            tasks: [Some(renewal), files].into_iter().flatten().collect(),
        })
    }
}

/// The SVID to start from, the event that says where it came from, and
/// whether to retry renewal soon (the CA was unreachable).
async fn first_svid(
    builder: &AgentBuilder,
    requests: &Requests<'_>,
) -> Result<(Svid, Event, bool), Error> {
    let stored = match &builder.files {
        Some(files) => files.load()?,
        None => None,
    };
    let why_no_svid = match &stored {
        Some(svid) if svid.is_expired_at(SystemTime::now()) => format!(
            "the SVID in {} ({}) has expired",
            dir_of(builder),
            svid.serial()
        ),
        Some(_) => String::new(),
        None => format!("there is no SVID in {}", dir_of(builder)),
    };
    if let Some(stored) = stored.filter(|svid| !svid.is_expired_at(SystemTime::now())) {
        match requests.renew(&stored).await {
            Ok(renewed) => {
                let event = renewed_event(&stored, &renewed);
                return Ok((renewed, event, false));
            }
            Err(error) if error.is_transient() => {
                // Still valid: use it, and renew as soon as the CA answers.
                let event = Event::RenewalFailed {
                    error: error.to_string(),
                    retry_in: Duration::from_secs(1),
                };
                return Ok((stored, event, true));
            }
            Err(error @ Error::Revoked { .. }) => return Err(error),
            Err(error) if builder.attestor.is_none() => return Err(error),
            Err(error) => {
                tracing::warn!(%error, "the CA refused to renew the SVID on disk; attesting again");
            }
        }
    }
    let attestor = builder.attestor.as_ref().ok_or_else(|| {
        Error::NoIdentity(format!(
            "{why_no_svid}, and no join token was given: create one with \
             `sigil token create --spiffe-id <id>` and pass it with --token"
        ))
    })?;
    let svid = requests.issue(attestor.as_ref()).await?;
    let event = Event::Issued {
        spiffe_id: svid.spiffe_id().clone(),
        serial: svid.serial().to_owned(),
        not_after: svid.not_after(),
    };
    Ok((svid, event, false))
}

fn dir_of(builder: &AgentBuilder) -> String {
    builder.files.as_ref().map_or_else(
        || "memory".to_owned(),
        |files| files.dir().display().to_string(),
    )
}

fn renewed_event(previous: &Svid, renewed: &Svid) -> Event {
    Event::Renewed {
        spiffe_id: renewed.spiffe_id().clone(),
        serial: renewed.serial().to_owned(),
        previous_serial: previous.serial().to_owned(),
        not_after: renewed.not_after(),
    }
}

/// An agent with a current SVID, renewing it in the background. Dropping
/// it stops renewal.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use sigil_agent::Agent;
/// use sigil_verifier::Policy;
///
/// let agent = Agent::builder("https://ca.internal:8443")
///     .fingerprint("sha256:…")
///     .join_token(&std::env::var("SIGIL_JOIN_TOKEN")?)
///     .start()
///     .await?;
/// // Calls the CRM, which must prove it is spiffe://example.org/tools/crm;
/// // every new connection presents the SVID current at that moment.
/// let tls = agent.client_config(
///     Policy::deny_all().allow("spiffe://example.org/tools/crm")?,
/// )?;
/// # let _ = tls;
/// # Ok(())
/// # }
/// ```
pub struct Agent {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("url", &self.inner.url)
            .field("svid", &self.inner.current.load())
            .finish_non_exhaustive()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Agent {
    /// Starts configuring an agent of the CA at `url` (`https://host:port`).
    pub fn builder(url: &str) -> AgentBuilder {
        AgentBuilder {
            url: url.to_owned(),
            anchor: None,
            attestor: None,
            key_type: KeyType::default(),
            ttl: None,
            files: None,
            events: broadcast::channel(64).0,
        }
    }

    /// The current SVID.
    pub fn svid(&self) -> Arc<Svid> {
        self.inner.current.load_full()
    }

    /// The CA's trust material, kept fresh (bundle and CRLs).
    pub fn trust_source(&self) -> &TrustSource {
        &self.inner.trust
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// A client configuration that presents the current SVID on each new
    /// connection and accepts only a server whose SPIFFE ID `policy`
    /// allows, checked by `sigil-verifier` against the live bundle and
    /// CRLs.
    ///
    /// # Errors
    ///
    /// The TLS configuration cannot be built.
    pub fn client_config(&self, policy: Policy) -> Result<ClientConfig, Error> {
        let verifier =
            SpiffeServerVerifier::builder(self.inner.trust.clone(), policy).server_verifier();
        Ok(sigil_verifier::client_config_with_resolver(
            verifier,
            Arc::new(SvidResolver::new(Arc::clone(&self.inner.current))),
        )?)
    }

    /// A server configuration that presents the current SVID on each new
    /// connection and accepts only clients whose SPIFFE ID `policy` allows.
    ///
    /// # Errors
    ///
    /// The TLS configuration cannot be built.
    pub fn server_config(&self, policy: Policy) -> Result<ServerConfig, Error> {
        let verifier =
            SpiffeClientVerifier::builder(self.inner.trust.clone(), policy).client_verifier();
        Ok(sigil_verifier::server_config_with_resolver(
            verifier,
            Arc::new(SvidResolver::new(Arc::clone(&self.inner.current))),
        )?)
    }

    /// Renews now, outside the schedule.
    ///
    /// # Errors
    ///
    /// As a scheduled renewal; the current SVID stays in use.
    pub async fn renew_now(&self) -> Result<Arc<Svid>, Error> {
        self.inner.renew_once().await
    }

    /// Waits until renewal stops for good (revoked, banned or expired) and
    /// returns the event that stopped it (at once if it already has).
    pub async fn stopped(&self) -> Event {
        let mut events = self.events();
        if let Some(event) = self.inner.finished.get() {
            return event.clone();
        }
        loop {
            match events.recv().await {
                Ok(event) if event.is_final() => return event,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}

/// What the agent and its background tasks share.
struct Inner {
    url: String,
    trust: TrustSource,
    current: Arc<ArcSwap<Svid>>,
    key_type: KeyType,
    ttl: Option<Duration>,
    files: Option<SvidFiles>,
    events: broadcast::Sender<Event>,
    /// The event that ended renewal for good, sent once.
    finished: OnceLock<Event>,
}

/// The first wait after a failed renewal; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between failed renewals.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Inner {
    fn requests(&self) -> Requests<'_> {
        Requests {
            url: &self.url,
            trust: &self.trust,
            key_type: self.key_type,
            ttl: self.ttl,
        }
    }

    fn save(&self) -> Result<(), Error> {
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
    fn finish(&self, event: Event) {
        if self.finished.set(event.clone()).is_ok() {
            let _ = self.events.send(event);
        }
    }

    async fn renew_once(&self) -> Result<Arc<Svid>, Error> {
        let previous = self.current.load_full();
        let renewed = match self.requests().renew(&previous).await {
            Ok(renewed) => Arc::new(renewed),
            Err(Error::Revoked { code, message }) => {
                self.finish(Event::Revoked {
                    code: code.clone(),
                    message: message.clone(),
                });
                return Err(Error::Revoked { code, message });
            }
            Err(error) => return Err(error),
        };
        self.current.store(Arc::clone(&renewed));
        if let Err(error) = self.save() {
            tracing::warn!(%error, "could not write the renewed SVID to its files");
        }
        let _ = self.events.send(renewed_event(&previous, &renewed));
        Ok(renewed)
    }

    /// Renews at about half of each SVID's remaining life (40–60 %, so that
    /// a fleet started together does not renew together), retrying with
    /// backoff while the CA is unreachable, until a final refusal or expiry.
    async fn renew_forever(self: Arc<Self>, retry_soon: bool) {
        let mut backoff = MIN_BACKOFF;
        // Set after a failure: the wait before the next attempt.
        let mut retry_in = retry_soon.then_some(MIN_BACKOFF);
        loop {
            let current = self.current.load_full();
            let due = match retry_in.take() {
                Some(wait) => SystemTime::now() + wait,
                None => current.renewal_time(0.4 + 0.2 * jitter()),
            };
            sleep_until(due).await;
            if self.finished.get().is_some() {
                return;
            }
            match self.renew_once().await {
                Ok(_) => backoff = MIN_BACKOFF,
                // `renew_once` has sent the final event.
                Err(Error::Revoked { .. }) => return,
                Err(error) if error.is_transient() => {
                    let left = current
                        .not_after()
                        .duration_since(SystemTime::now())
                        .unwrap_or_default();
                    if left.is_zero() {
                        self.finish(Event::Expired {
                            serial: current.serial().to_owned(),
                        });
                        return;
                    }
                    let wait = backoff.min(left);
                    let _ = self.events.send(Event::RenewalFailed {
                        error: error.to_string(),
                        retry_in: wait,
                    });
                    retry_in = Some(wait);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(error) => {
                    let (code, message) = match error {
                        Error::Refused { code, message, .. } => (code, message),
                        other => ("error".to_owned(), other.to_string()),
                    };
                    self.finish(Event::Revoked { code, message });
                    return;
                }
            }
        }
    }
}

/// Rewrites `bundle.pem` and `crls.pem` whenever the trust material
/// changes.
async fn keep_trust_files(inner: Arc<Inner>, files: SvidFiles) {
    let mut updates = inner.trust.subscribe();
    while updates.changed().await.is_ok() {
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
