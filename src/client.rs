//! A small HTTPS client for the CA's API, used by the admin commands: it
//! verifies the CA against the trust bundle and can present an SVID.

use std::sync::Arc;

use anyhow::{Context, bail};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use sigil_core::wire::ErrorBody;
use sigil_verifier::{Credentials, Policy, SpiffeServerVerifier, TrustSource};

use crate::hostname::{Host, HttpsUrl};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long one request may take, connection and TLS included. Long polls
/// wait at most 60 s on the server.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// An answer from the CA.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: StatusCode,
    /// Content type, if any.
    pub content_type: Option<String>,
    /// Every header.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Response {
    /// Parses a JSON body.
    ///
    /// # Errors
    ///
    /// The body is not JSON of that shape.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "the CA answered {} with an unexpected body: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body if the status is a success, else the CA's error as an error.
    ///
    /// # Errors
    ///
    /// The status is not a success.
    pub fn success(self) -> anyhow::Result<Self> {
        if self.status.is_success() {
            return Ok(self);
        }
        match serde_json::from_slice::<ErrorBody>(&self.body) {
            Ok(error) => bail!(
                "the CA refused ({} {}): {}",
                self.status.as_u16(),
                error.error.code,
                error.error.message
            ),
            Err(_) => bail!("the CA answered {}", self.status),
        }
    }
}

/// A client of one CA.
#[derive(Clone)]
pub struct CaClient {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    connector: TlsConnector,
}

impl std::fmt::Debug for CaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaClient")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

/// A client certificate chain and its key, both PEM.
pub struct ClientIdentity<'a> {
    /// Leaf first.
    pub chain_pem: &'a str,
    /// PKCS#8 private key.
    pub key_pem: &'a str,
}

impl CaClient {
    /// A client of the CA at `url` (`https://host:port`), trusting the roots
    /// in `bundle_pem`, presenting `identity` if given. The server must
    /// present the CA's own SVID, `spiffe://<td>/sigil/server`, where `<td>`
    /// is the trust domain the bundle's root names.
    ///
    /// # Errors
    ///
    /// The URL, bundle or identity does not parse.
    pub fn new(
        url: &str,
        bundle_pem: &str,
        identity: Option<ClientIdentity<'_>>,
    ) -> anyhow::Result<Self> {
        let url = HttpsUrl::parse(url)?;
        let host = url.host.to_string();
        let port = url.port;
        let server_name = match url.host {
            Host::Ip(ip) => ServerName::IpAddress(ip.into()),
            Host::Dns(name) => ServerName::try_from(name)
                .with_context(|| format!("'{host}' is not a server name"))?,
        };

        let source = TrustSource::from_pem(bundle_pem.as_bytes()).context("trust bundle")?;
        let server_id = source.trust_domain().spiffe_id("/sigil/server")?;
        // The CA is known by its own SVID, not by the name dialled: an
        // agent's SVID that an admin bound to `localhost` or to the CA's
        // address would pass a DNS-name check, but is not the CA. The
        // bundle comes without CRLs; the admin's connection is short.
        let verifier =
            SpiffeServerVerifier::builder(source, Policy::deny_all().allow_id(server_id))
                .allow_missing_crls()
                .server_verifier();
        let credentials = identity
            .map(|identity| {
                Credentials::from_pem(identity.chain_pem.as_bytes(), identity.key_pem.as_bytes())
            })
            .transpose()
            .context("client certificate")?;
        let config = sigil_verifier::client_config(verifier, credentials)?;
        Ok(Self {
            host,
            port,
            server_name,
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Sends one request on a fresh connection.
    ///
    /// # Errors
    ///
    /// The connection or TLS handshake failed.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> anyhow::Result<Response> {
        self.send(method, path, content_type, body, &[]).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.exchange(method, path, content_type, body, headers),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the CA at {}:{} did not answer within {}s",
                self.host,
                self.port,
                REQUEST_TIMEOUT.as_secs()
            )
        })?
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Response> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("connecting to {}:{}", self.host, self.port))?;
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .context("TLS handshake with the CA")?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
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
        let response = sender
            .send_request(request.body(Full::new(Bytes::from(body)))?)
            .await
            .context("sending the request")?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Response {
            status,
            content_type,
            headers,
            body,
        })
    }

    /// `GET path` with extra headers.
    ///
    /// # Errors
    ///
    /// See [`CaClient::request`].
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Response> {
        self.send(Method::GET, path, None, Vec::new(), headers)
            .await
    }

    /// `GET path`.
    ///
    /// # Errors
    ///
    /// See [`CaClient::request`].
    pub async fn get(&self, path: &str) -> anyhow::Result<Response> {
        self.request(Method::GET, path, None, Vec::new()).await
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
    ) -> anyhow::Result<Response> {
        let body = serde_json::to_vec(body)?;
        self.request(Method::POST, path, Some("application/json"), body)
            .await
    }
}

/// Every CERTIFICATE block of a PEM text.
///
/// # Errors
///
/// The text is not PEM.
pub fn pem_certificates(text: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    Ok(pem::parse_many(text)?
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(|block| CertificateDer::from(block.into_contents()))
        .collect())
}
