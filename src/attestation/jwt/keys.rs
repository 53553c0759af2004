//! Where an attestor's keys come from: a JWKS file read at start-up, or a
//! JWKS URL fetched over HTTPS now and then, and again (at most once a
//! second) when a token names a key the set lacks, so that a rotated key
//! is picked up at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::sync::Mutex;

use super::config::JwksConfig;
use super::jwk::{Jwks, MAX_JWKS_LEN};

/// The shortest time between two fetches caused by unknown key ids.
const MIN_REFETCH: Duration = Duration::from_secs(1);
/// The shortest `refresh` an attestor may ask for.
const MIN_REFRESH: Duration = Duration::from_secs(30);
/// How often a JWKS URL is fetched by default.
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// An attestor's keys.
#[derive(Debug)]
pub(crate) enum KeySource {
    Fixed(Arc<Jwks>),
    Remote(RemoteJwks),
}

/// A JWKS served over HTTPS.
pub(crate) struct RemoteJwks {
    url: http::Uri,
    host: String,
    port: u16,
    connector: tokio_rustls::TlsConnector,
    refresh: Duration,
    keys: ArcSwap<Jwks>,
    /// When the last fetch started; serialises fetches.
    last_fetch: Mutex<Option<Instant>>,
}

impl KeySource {
    /// Reads a `jwks = { … }` table; relative paths are read from `dir`.
    pub(crate) async fn load(config: &JwksConfig, dir: &Path) -> Result<Self, String> {
        match (&config.file, &config.url) {
            (Some(file), None) => {
                if config.refresh.is_some() || config.ca_file.is_some() {
                    return Err("`refresh` and `ca_file` go with `url`, not `file`".to_owned());
                }
                let path = dir.join(file);
                let document = std::fs::read(&path)
                    .map_err(|e| format!("JWKS file {}: {e}", path.display()))?;
                let jwks = Jwks::parse(&document)
                    .map_err(|e| format!("JWKS file {}: {e}", path.display()))?;
                if jwks.len() == 0 {
                    return Err(format!(
                        "JWKS file {} holds no signing key this CA can use",
                        path.display()
                    ));
                }
                Ok(Self::Fixed(Arc::new(jwks)))
            }
            (None, Some(url)) => Ok(Self::Remote(RemoteJwks::new(url, config, dir).await?)),
            _ => Err("give the JWKS as `file` or as `url`, exactly one".to_owned()),
        }
    }

    /// The current set.
    pub(crate) fn current(&self) -> Arc<Jwks> {
        match self {
            Self::Fixed(jwks) => Arc::clone(jwks),
            Self::Remote(remote) => remote.keys.load_full(),
        }
    }

    /// After a token named a key the set lacks: fetches again, unless a
    /// fetch started less than a second ago. Returns the set to try again
    /// with, if it changed.
    pub(crate) async fn refresh_for_unknown_key(&self) -> Option<Arc<Jwks>> {
        match self {
            Self::Fixed(_) => None,
            Self::Remote(remote) => remote.try_fetch(MIN_REFETCH).await,
        }
    }

    /// Fetches a remote set every `refresh`, for as long as `self` lives.
    pub(crate) fn spawn_refresh(self: &Arc<Self>) {
        if let Self::Remote(remote) = self.as_ref() {
            let every = remote.refresh;
            let source = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(source) = source.upgrade() else {
                        return;
                    };
                    if let Self::Remote(remote) = source.as_ref() {
                        remote.fetch_unless_recent(every / 2).await;
                    }
                }
            });
        }
    }
}

impl std::fmt::Debug for RemoteJwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("url", &self.url)
            .field("refresh", &self.refresh)
            .finish_non_exhaustive()
    }
}

impl RemoteJwks {
    async fn new(url: &str, config: &JwksConfig, dir: &Path) -> Result<Self, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| format!("JWKS url {url:?} is not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("JWKS url {url:?} must be https"));
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("JWKS url {url:?} has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let mut roots = rustls::RootCertStore::empty();
        match &config.ca_file {
            Some(ca_file) => {
                let path = dir.join(ca_file);
                let text = std::fs::read(&path)
                    .map_err(|e| format!("JWKS ca_file {}: {e}", path.display()))?;
                let certs = pem::parse_many(&text)
                    .map_err(|e| format!("JWKS ca_file {}: {e}", path.display()))?;
                for cert in certs
                    .into_iter()
                    .filter(|block| block.tag() == "CERTIFICATE")
                {
                    roots
                        .add(cert.into_contents().into())
                        .map_err(|e| format!("JWKS ca_file {}: {e}", path.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!(
                        "JWKS ca_file {} holds no certificate",
                        path.display()
                    ));
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        let tls =
            rustls::ClientConfig::builder_with_provider(crate::crypto_provider::crypto_provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let remote = Self {
            url: uri,
            host,
            port,
            connector: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            refresh: match config.refresh.map(|refresh| refresh.get()) {
                None => DEFAULT_REFRESH,
                Some(refresh) if refresh >= MIN_REFRESH => refresh,
                Some(_) => {
                    return Err(format!(
                        "`refresh` must be at least {}s",
                        MIN_REFRESH.as_secs()
                    ));
                }
            },
            keys: ArcSwap::from_pointee(Jwks::default()),
            last_fetch: Mutex::new(None),
        };
        // An identity provider that is down at start-up is not fatal:
        // tokens are refused until a fetch succeeds.
        if remote.fetch_unless_recent(Duration::ZERO).await.is_none() {
            tracing::warn!(url, "could not fetch the JWKS; will try again");
        }
        Ok(remote)
    }

    /// Fetches now, waiting for a fetch already running, unless the last
    /// one finished less than `recent` ago (the scheduled refresh).
    async fn fetch_unless_recent(&self, recent: Duration) -> Option<Arc<Jwks>> {
        let mut last = self.last_fetch.lock().await;
        self.fetch_locked(&mut last, recent).await
    }

    /// For a request that named an unknown key: fetches unless a fetch is
    /// running (the request does not wait for it) or one finished less
    /// than `recent` ago. Anyone can send such requests, so they must
    /// neither queue nor multiply fetches.
    async fn try_fetch(&self, recent: Duration) -> Option<Arc<Jwks>> {
        let mut last = self.last_fetch.try_lock().ok()?;
        self.fetch_locked(&mut last, recent).await
    }

    async fn fetch_locked(
        &self,
        last: &mut Option<Instant>,
        recent: Duration,
    ) -> Option<Arc<Jwks>> {
        if last.is_some_and(|at| at.elapsed() < recent) {
            return None;
        }
        let outcome = tokio::time::timeout(FETCH_TIMEOUT, self.fetch()).await;
        // Counted from the end: a slow identity provider is not asked again
        // at once.
        *last = Some(Instant::now());
        match outcome {
            Ok(Ok(jwks)) => {
                let jwks = Arc::new(jwks);
                self.keys.store(Arc::clone(&jwks));
                Some(jwks)
            }
            Ok(Err(error)) => {
                tracing::warn!(url = %self.url, %error, "JWKS fetch failed; keeping the keys held");
                None
            }
            Err(_) => {
                tracing::warn!(url = %self.url, "JWKS fetch timed out; keeping the keys held");
                None
            }
        }
    }

    async fn fetch(&self) -> Result<Jwks, String> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        let name = ServerName::try_from(self.host.clone()).map_err(|e| format!("{e}"))?;
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let path = self
            .url
            .path_and_query()
            .map_or("/", |path| path.as_str())
            .to_owned();
        let authority = self
            .url
            .authority()
            .map_or_else(String::new, |a| a.to_string());
        let request = hyper::Request::get(path)
            .header(http::header::HOST, authority)
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_LEN)
            .collect()
            .await
            .map_err(|e| format!("reading: {e}"))?
            .to_bytes();
        let jwks = Jwks::parse(&body)?;
        if jwks.len() == 0 {
            return Err("the JWKS holds no signing key this CA can use".to_owned());
        }
        Ok(jwks)
    }
}
