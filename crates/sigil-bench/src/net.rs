//! One keep-alive HTTP/1.1 connection, over TLS or plain TCP.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;

/// Where requests go.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) tls: bool,
    host: String,
    port: u16,
    authority: String,
    pub(crate) path: String,
    server_name: ServerName<'static>,
}

/// An answer, read in full.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

/// One open connection.
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Endpoint {
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: http::Uri = url.parse().with_context(|| format!("not a URL: {url}"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("{url}: expected http:// or https://"),
        };
        let authority = uri.authority().ok_or_else(|| anyhow!("{url}: no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| anyhow!("{url}: the host is not a DNS name or IP address"))?;
        Ok(Self {
            tls,
            host,
            port,
            authority: authority.as_str().to_owned(),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            server_name,
        })
    }

    /// Opens a connection (TLS when `tls` is given).
    pub(crate) async fn connect(
        &self,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> anyhow::Result<Conn> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("connecting to {}", self.authority))?;
        tcp.set_nodelay(true)?;
        let sender = match (self.tls, tls) {
            (true, Some(config)) => {
                let stream = tokio_rustls::TlsConnector::from(config)
                    .connect(self.server_name.clone(), tcp)
                    .await
                    .context("TLS handshake")?;
                let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                sender
            }
            (false, _) => {
                let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await?;
                tokio::spawn(conn);
                sender
            }
            (true, None) => bail!("https:// needs a TLS configuration"),
        };
        Ok(Conn { sender })
    }
}

impl Conn {
    /// POSTs a JSON body and reads the answer in full.
    pub(crate) async fn post(&mut self, endpoint: &Endpoint, body: Bytes) -> anyhow::Result<Reply> {
        let request = http::Request::post(endpoint.path.as_str())
            .header(http::header::HOST, endpoint.authority.as_str())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }

    /// Whether the connection can take another request.
    pub(crate) fn is_ready(&self) -> bool {
        !self.sender.is_closed()
    }
}

/// A plain rustls client configuration trusting the PEM roots in `bundle`.
pub(crate) fn webpki_config(bundle: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_file_iter(bundle)
        .with_context(|| format!("reading {}", bundle.display()))?
    {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}
