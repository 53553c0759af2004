//! Run with: cargo run -p sigil-verifier --example client -- --url https://127.0.0.1:8444/ --cert svid.pem --key svid.key --ca https://localhost:8443 --fingerprint sha256:<hex> --server-id spiffe://example.org/tools/echo
//!
//! Calls an mTLS server with this agent's SVID, and accepts the server only
//! if it proves the expected SPIFFE ID (not a DNS name). Prints the body.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use sigil_verifier::{Credentials, LiveSource, Policy, SpiffeServerVerifier, TrustSource};

#[derive(Parser)]
#[command(about = "Calls an mTLS server, verifying it by SPIFFE ID")]
struct Args {
    /// The server's URL, such as https://127.0.0.1:8444/.
    #[arg(long)]
    url: http::Uri,
    /// This client's certificate chain, PEM, leaf first.
    #[arg(long)]
    cert: std::path::PathBuf,
    /// This client's private key, PEM.
    #[arg(long)]
    key: std::path::PathBuf,
    /// A trust bundle file (PEM). Without CRLs, the server's certificate is
    /// not checked for revocation; prefer --ca.
    #[arg(long, conflicts_with_all = ["ca", "fingerprint"], required_unless_present = "ca")]
    bundle: Option<std::path::PathBuf>,
    /// The Sigil CA's URL, for a live bundle and CRLs.
    #[arg(long, requires = "fingerprint")]
    ca: Option<String>,
    /// The CA's root fingerprint, sha256:<64 hex digits>.
    #[arg(long)]
    fingerprint: Option<String>,
    /// The SPIFFE ID the server must present.
    #[arg(long)]
    server_id: sigil_core::SpiffeId,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let policy = Policy::deny_all().allow_id(args.server_id.clone());
    let verifier = match (&args.bundle, &args.ca, &args.fingerprint) {
        (Some(bundle), _, _) => {
            let pem = std::fs::read(bundle).with_context(|| bundle.display().to_string())?;
            SpiffeServerVerifier::builder(TrustSource::from_pem(&pem)?, policy)
                .allow_missing_crls()
                .server_verifier()
        }
        (None, Some(ca), Some(fingerprint)) => {
            let source = LiveSource::from_fingerprint(ca, fingerprint)?
                .start()
                .await?;
            SpiffeServerVerifier::builder(source, policy).server_verifier()
        }
        _ => bail!("give --bundle, or --ca with --fingerprint"),
    };
    let credentials = Credentials::from_files(&args.cert, &args.key)?;
    let config = sigil_verifier::client_config(verifier, Some(credentials))?;

    let host = args.url.host().context("the URL has no host")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = args.url.port_u16().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let server_name = rustls::pki_types::ServerName::try_from(host.clone())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .context("TLS handshake")?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    // The connection's own error (such as the server's TLS alert) says more
    // than the request's "connection closed".
    let connection = tokio::spawn(connection);
    let path = args
        .url
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    let request = hyper::Request::get(path)
        .header(
            http::header::HOST,
            args.url.authority().map_or("", |a| a.as_str()),
        )
        .body(Empty::<Bytes>::new())?;
    let response = match sender.send_request(request).await {
        Ok(response) => response,
        Err(error) => {
            let error = anyhow::Error::new(error);
            return Err(match connection.await {
                Ok(Err(cause)) => anyhow::Error::new(cause).context(format!("{error:#}")),
                _ => error,
            }
            .context("the server refused the request"));
        }
    };
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    print!("{}", String::from_utf8_lossy(&body));
    if !status.is_success() {
        bail!("the server answered {status}");
    }
    Ok(())
}
