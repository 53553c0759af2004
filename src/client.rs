//! The admin commands' client of the CA: `sigil_verifier::ca::CaClient`
//! (which knows the CA by its own SVID) with `anyhow` errors and the trust
//! bundle and credential read from PEM.

use anyhow::Context;
use http::{Method, StatusCode};
use hyper::body::Bytes;
use sigil_core::wire::ErrorBody;
use sigil_verifier::{Credentials, TrustSource};

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

impl From<sigil_verifier::ca::CaResponse> for Response {
    fn from(response: sigil_verifier::ca::CaResponse) -> Self {
        Self {
            status: response.status,
            content_type: response.content_type().map(str::to_owned),
            headers: response.headers,
            body: response.body,
        }
    }
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
            Ok(error) => anyhow::bail!(
                "the CA refused ({} {}): {}",
                self.status.as_u16(),
                error.error.code,
                error.error.message
            ),
            Err(_) => anyhow::bail!("the CA answered {}", self.status),
        }
    }
}

/// A client of one CA.
#[derive(Debug, Clone)]
pub struct CaClient(sigil_verifier::ca::CaClient);

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
        let source = TrustSource::from_pem(bundle_pem.as_bytes()).context("trust bundle")?;
        let credentials = identity
            .map(|identity| {
                Credentials::from_pem(identity.chain_pem.as_bytes(), identity.key_pem.as_bytes())
            })
            .transpose()
            .context("client certificate")?;
        let client = sigil_verifier::ca::CaClient::new(url, &source, credentials)?
            .with_timeout(REQUEST_TIMEOUT);
        Ok(Self(client))
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
        Ok(self
            .0
            .request(method, path, content_type, body, &[])
            .await?
            .into())
    }

    /// `GET path` with extra headers.
    ///
    /// # Errors
    ///
    /// See [`CaClient::request`].
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Response> {
        Ok(self.0.get_with(path, headers).await?.into())
    }

    /// `GET path`.
    ///
    /// # Errors
    ///
    /// See [`CaClient::request`].
    pub async fn get(&self, path: &str) -> anyhow::Result<Response> {
        Ok(self.0.get(path).await?.into())
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
        Ok(self.0.post_json(path, body).await?.into())
    }
}
