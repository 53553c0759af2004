//! A small HTTPS GET client for a Sigil CA's public routes.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::Error;

/// The largest answer read: a CRL of a million entries is about 50 MB.
const MAX_BODY: usize = 128 * 1024 * 1024;

/// A CA's `https://host:port` address.
#[derive(Debug, Clone)]
pub(crate) struct CaUrl {
    text: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
}

/// An answer.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl CaUrl {
    pub(crate) fn parse(text: &str) -> Result<Self, Error> {
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

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// `GET path_and_query` on a fresh connection, within `timeout`.
    pub(crate) async fn get(
        &self,
        config: Arc<ClientConfig>,
        path_and_query: &str,
        timeout: Duration,
    ) -> Result<Fetched, Error> {
        tokio::time::timeout(timeout, self.exchange(config, path_and_query))
            .await
            .map_err(|_| self.error(format!("no answer within {}s", timeout.as_secs())))?
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
        path_and_query: &str,
    ) -> Result<Fetched, Error> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.error(format!("connecting: {e}")))?;
        let tls = TlsConnector::from(config)
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| self.error(format!("TLS handshake: {e}")))?;
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
        let request = hyper::Request::get(path_and_query)
            .header(http::header::HOST, authority)
            .body(Empty::<Bytes>::new())
            .map_err(|e| self.error(format!("request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.error(format!("sending the request: {e}")))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| self.error(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok(Fetched {
            status,
            headers,
            body,
        })
    }
}
