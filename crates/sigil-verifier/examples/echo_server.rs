//! Run with: cargo run -p sigil-verifier --example echo_server -- --ca https://localhost:8443 --fingerprint sha256:<hex> --allow 'spiffe://example.org/agents/*' --cert svid.pem --key svid.key
//!
//! An HTTPS server that accepts only callers whose SVID the policy allows,
//! and answers every request with `200` and the caller's SPIFFE ID. Its
//! trust material follows the CA: a revoked caller is refused on its next
//! handshake, and its open connections are closed.

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use sigil_verifier::{Credentials, LiveSource, PeerIdentity, Policy, SpiffeClientVerifier};

#[derive(Parser)]
#[command(about = "An mTLS echo server that answers with the caller's SPIFFE ID")]
struct Args {
    /// The Sigil CA's URL, such as https://localhost:8443.
    #[arg(long)]
    ca: String,
    /// The CA's root fingerprint, sha256:<64 hex digits> (`sigil fingerprint`).
    #[arg(long)]
    fingerprint: String,
    /// A SPIFFE ID pattern to accept: spiffe://td/path, spiffe://td/path/*
    /// or spiffe://td/*. Repeatable; nothing is accepted without one.
    #[arg(long = "allow", required = true)]
    allow: Vec<String>,
    /// This server's certificate chain, PEM, leaf first.
    #[arg(long)]
    cert: std::path::PathBuf,
    /// This server's private key, PEM.
    #[arg(long)]
    key: std::path::PathBuf,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:8444")]
    listen: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let policy = Policy::from_patterns(&args.allow)?;
    let credentials = Credentials::from_files(&args.cert, &args.key)?;
    let source = LiveSource::from_fingerprint(&args.ca, &args.fingerprint)?
        .start()
        .await
        .context("fetching the trust bundle and CRLs")?;
    let verifier = SpiffeClientVerifier::builder(source, policy).client_verifier();
    let config = sigil_verifier::server_config(Arc::clone(&verifier), credentials)?;

    let app = axum::Router::new()
        .fallback(|peer: PeerIdentity| async move { format!("{}\n", peer.spiffe_id()) });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    println!("listening on https://{}", listener.local_addr()?);
    sigil_verifier::axum::serve(listener, Arc::new(config), verifier, app).await?;
    Ok(())
}
