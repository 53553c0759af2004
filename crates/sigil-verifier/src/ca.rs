//! A small HTTPS client for a Sigil CA's API. It knows the CA by its own
//! SVID, `spiffe://<td>/sigil/server`, chained to the roots of a
//! [`TrustSource`], and can present an SVID of its own.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use sigil_core::wire::{ErrorBody, ErrorDetail};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::Error;
use crate::check::StaleCrls;
use crate::config::{Credentials, client_config};
use crate::policy::Policy;
use crate::trust::TrustSource;
use crate::verifier::SpiffeServerVerifier;

/// How long a request may take by default, connection and TLS included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read: a CRL of a million entries is about 50 MB.
const MAX_BODY: usize = 128 * 1024 * 1024;

/// A CA's `https://host:port` address.
#[derive(Debug, Clone)]
struct CaUrl {
    text: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
}

/// An answer from the CA.
#[derive(Debug, Clone)]
pub struct CaResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// Every header.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl CaResponse {
    /// The content type, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
    }

    /// Parses a JSON body.
    ///
    /// # Errors
    ///
    /// The body is not JSON of that shape.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Answer {
            status: self.status.as_u16(),
            message: format!(
                "unexpected body ({e}): {}",
                // Enough to recognise it; a body can be large.
                String::from_utf8_lossy(&self.body[..self.body.len().min(512)])
            ),
        })
    }

    /// The CA's error, when the status is not a success.
    ///
    /// # Errors
    ///
    /// [`Error::Answer`] with the CA's code and message (or the bare
    /// status when the body is not a Sigil error).
    pub fn success(self) -> Result<Self, Error> {
        if self.status.is_success() {
            return Ok(self);
        }
        let message = match self.error() {
            Some(error) => format!("{}: {}", error.code, error.message),
            None => format!("answered {}", self.status),
        };
        Err(Error::Answer {
            status: self.status.as_u16(),
            message,
        })
    }

    /// The CA's error (its code, such as `revoked` or `banned`, and its
    /// message) when the body is a Sigil error.
    pub fn error(&self) -> Option<ErrorDetail> {
        serde_json::from_slice::<ErrorBody>(&self.body)
            .ok()
            .map(|body| body.error)
    }
}

/// A client of one Sigil CA.
///
/// ```no_run
/// # async fn run(source: sigil_verifier::TrustSource) -> Result<(), sigil_verifier::Error> {
/// use sigil_verifier::ca::CaClient;
///
/// let ca = CaClient::new("https://ca.internal:8443", &source, None)?;
/// let bundle = ca.get("/v1/bundle").await?.success()?;
/// # let _ = bundle;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct CaClient {
    url: CaUrl,
    config: Arc<ClientConfig>,
    timeout: Duration,
}

impl std::fmt::Debug for CaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaClient")
            .field("url", &self.url.text)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl CaClient {
    /// A client of the CA at `url` (`https://host:port`) that accepts only
    /// the CA's own SVID, `spiffe://<td>/sigil/server`, chained to the
    /// roots `source` holds (checked against its CRLs when it has them),
    /// and presents `credentials` if given. The name dialled is not
    /// checked: an agent's SVID bound to the CA's address is not the CA.
    ///
    /// # Errors
    ///
    /// The URL is not `https://host:port`, or the credentials do not fit.
    pub fn new(
        url: &str,
        source: &TrustSource,
        credentials: Option<Credentials>,
    ) -> Result<Self, Error> {
        let url = CaUrl::parse(url)?;
        let server_id = source
            .trust_domain()
            .spiffe_id("/sigil/server")
            .map_err(|e| Error::Certificate(format!("{e}")))?;
        let verifier =
            SpiffeServerVerifier::builder(source.clone(), Policy::deny_all().allow_id(server_id))
                // At bootstrap there are no CRLs yet, and after an outage
                // they are stale: refusing the CA then would keep them so.
                .allow_missing_crls()
                .stale_crls(StaleCrls::UseLastKnown)
                .server_verifier();
        Ok(Self {
            url,
            config: Arc::new(client_config(verifier, credentials)?),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// A client that trusts any server: only for fetching a bundle that is
    /// then checked against a pinned fingerprint.
    pub(crate) fn unauthenticated(url: &str, config: ClientConfig) -> Result<Self, Error> {
        Ok(Self {
            url: CaUrl::parse(url)?,
            config: Arc::new(config),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// How long one request may take, connection and TLS included
    /// (default 30 s). A long poll needs its wait on top.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The CA's URL.
    pub fn url(&self) -> &str {
        &self.url.text
    }

    /// `GET path`.
    ///
    /// # Errors
    ///
    /// See [`CaClient::request`].
    pub async fn get(&self, path: &str) -> Result<CaResponse, Error> {
        self.request(Method::GET, path, None, Vec::new(), &[]).await
    }

    /// `GET path` with extra headers.
    ///
    /// # Errors
    ///
    /// See [`CaClient::request`].
    pub async fn get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<CaResponse, Error> {
        self.request(Method::GET, path, None, Vec::new(), headers)
            .await
    }

    /// `POST path` with a JSON body.
    ///
    /// # Errors
    ///
    /// See [`CaClient::request`].
    pub async fn post_json(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<CaResponse, Error> {
        let body = serde_json::to_vec(body).map_err(|e| self.url.error(format!("request: {e}")))?;
        self.request(Method::POST, path, Some("application/json"), body, &[])
            .await
    }

    /// Sends one request on a fresh connection, within the timeout.
    ///
    /// # Errors
    ///
    /// [`Error::Fetch`]: the connection or the TLS handshake failed, so
    /// nothing was sent; [`Error::UntrustedCa`]: the handshake refused the
    /// CA's certificate, which does not chain to a trusted root, so nothing
    /// was sent; [`Error::NoAnswer`]: the request was (or may have been)
    /// sent but no answer came, in time or at all. An answer of any status
    /// is `Ok`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<CaResponse, Error> {
        let exchange = self.url.exchange(
            Arc::clone(&self.config),
            method,
            path,
            content_type,
            body,
            headers,
        );
        tokio::time::timeout(self.timeout, exchange)
            .await
            // The request may have gone out before the time ran out.
            .map_err(|_| {
                self.url
                    .no_answer(format!("no answer within {}s", self.timeout.as_secs()))
            })?
    }
}

impl CaUrl {
    fn parse(text: &str) -> Result<Self, Error> {
        let invalid = |message: &str| Error::Fetch {
            url: text.to_owned(),
            message: message.to_owned(),
        };
        let uri: http::Uri = text
            .parse()
            .map_err(|_| invalid("not a URL; expected https://host:port"))?;
        if uri.scheme_str() != Some("https") {
            return Err(invalid("the CA URL must start with https://"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid(
                "the CA URL has no path or query: https://host:port",
            ));
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| invalid("the host is not a DNS name or IP address"))?;
        Ok(Self {
            text: text.trim_end_matches('/').to_owned(),
            host,
            port,
            server_name,
        })
    }

    fn no_answer(&self, message: String) -> Error {
        Error::NoAnswer {
            url: self.text.clone(),
            message,
        }
    }

    fn error(&self, message: String) -> Error {
        Error::Fetch {
            url: self.text.clone(),
            message,
        }
    }

    async fn exchange(
        &self,
        config: Arc<ClientConfig>,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<CaResponse, Error> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.error(format!("connecting: {e}")))?;
        let tls = TlsConnector::from(config)
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                if is_unknown_issuer(&e) {
                    Error::UntrustedCa {
                        url: self.text.clone(),
                        message: e.to_string(),
                    }
                } else {
                    self.error(format!("TLS handshake: {e}"))
                }
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.error(format!("HTTP: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let authority = match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        };
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, authority);
        if let Some(content_type) = content_type {
            request = request.header(http::header::CONTENT_TYPE, content_type);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.error(format!("request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.no_answer(format!("sending the request: {e}")))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| self.no_answer(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok(CaResponse {
            status,
            headers,
            body,
        })
    }
}

/// Whether a failed handshake refused the CA's certificate for not chaining
/// to a trusted root.
fn is_unknown_issuer(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| {
            matches!(
                tls,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
            )
        })
}
