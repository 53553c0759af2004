//! The agent: bootstrap, first SVID, renewal in the background, and rustls
//! configurations that always present the current SVID.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::{ClientConfig, ServerConfig};
use sigil_verifier::{LiveSource, Policy, SpiffeClientVerifier, SpiffeServerVerifier, TrustSource};
use tokio::sync::{Mutex, broadcast};
use tokio::task::JoinHandle;

use crate::Error;
use crate::attestation::{Attestor, JoinToken, JwtFile};
use crate::event::Event;
use crate::files::SvidFiles;
use crate::key::KeyType;
use crate::renewal::{Inner, RenewalState, keep_trust_files, renewed_event};
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

    /// Attests with a join token when there is no valid SVID to renew. An
    /// empty token is no token.
    pub fn join_token(self, token: &str) -> Self {
        match token.trim().is_empty() {
            true => self,
            false => self.attestor(Arc::new(JoinToken::new(token))),
        }
    }

    /// Attests with the JWT in `path` (a Kubernetes projected
    /// service-account token, a CI OIDC token), judged by the CA's attestor
    /// named `attestor`, when there is no valid SVID to renew. The file is
    /// read again at each attestation, because platforms rotate these
    /// tokens; see [`JwtFile`]. Once the agent has an SVID it renews over
    /// mTLS rather than attesting again: Kubernetes reuses a pod's token
    /// until it rotates.
    pub fn jwt_file(self, attestor: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.attestor(Arc::new(JwtFile::new(attestor, path)))
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
            files: self.files.as_ref(),
        };
        let (svid, event, unanswered) = first_svid(&self, &requests).await?;
        let inner = Arc::new(Inner {
            url: self.url,
            trust,
            current: Arc::new(ArcSwap::from_pointee(svid)),
            key_type: self.key_type,
            ttl: self.ttl,
            files: self.files,
            events: self.events,
            finished: OnceLock::new(),
            state: Mutex::new(RenewalState {
                unanswered,
                ..RenewalState::default()
            }),
            attestor: self.attestor.clone(),
        });
        // A renewal made just now that cannot be saved is spent: the files
        // keep its parent, whose one retry the CA allows.
        inner.save()?;
        let retry_soon = matches!(event, Event::RenewalFailed { .. });
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
/// how many renewals of it went unanswered.
async fn first_svid(
    builder: &AgentBuilder,
    requests: &Requests<'_>,
) -> Result<(Svid, Event, u8), Error> {
    let stored = match builder.files.as_ref().map(SvidFiles::load) {
        Some(Ok(stored)) => stored,
        // A torn pair (a crash between the two writes) or a damaged file:
        // as good as none, and an attestation can still replace it.
        Some(Err(error)) => {
            tracing::warn!(%error, "the files hold no usable SVID");
            None
        }
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
                return Ok((renewed, event, 0));
            }
            Err(error) if error.is_transient() => {
                // Still valid: use it, and renew as soon as the CA answers.
                let unanswered = u8::from(error.may_have_been_acted_on());
                let event = Event::RenewalFailed {
                    error: error.to_string(),
                    retry_in: Duration::from_secs(1),
                };
                return Ok((stored, event, unanswered));
            }
            // Revoked, banned or unknown to the CA: without an attestation
            // that is the end; with one (an operator's new token after an
            // unban), attest afresh.
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
    Ok((svid, event, 0))
}

fn dir_of(builder: &AgentBuilder) -> String {
    builder.files.as_ref().map_or_else(
        || "memory".to_owned(),
        |files| files.dir().display().to_string(),
    )
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
#[must_use = "dropping the Agent stops renewal"]
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
        // In a task of its own: cancelling the caller must not drop an
        // answer the CA has committed.
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move { inner.renew_once(None).await })
            .await
            .map_err(|e| Error::Stopped(format!("renewal task: {e}")))?
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
