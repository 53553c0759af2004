//! The demo's echo server, a tool that embeds `sigil-verifier` the way a
//! real one would, and the one-request HTTP/1.1 client the agent calls it
//! with.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, ClientConfig};
use sigil_agent::Svid;
use sigil_verifier::{Credentials, LiveSource, PeerIdentity, Policy, SpiffeClientVerifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// An mTLS echo server on 127.0.0.1: it trusts the CA through a live
/// trust source (pinned root, CRLs by long poll), accepts callers whose
/// SPIFFE ID its policy allows, and answers with who called. Stops when
/// dropped.
pub(super) struct EchoServer {
    pub(super) addr: SocketAddr,
    verifier: Arc<SpiffeClientVerifier>,
    task: JoinHandle<io::Result<()>>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoServer {
    /// Starts the server on 127.0.0.1:0, presenting `own` and allowing
    /// callers that match `allow`.
    pub(super) async fn start(
        ca_url: &str,
        fingerprint: &str,
        own: &Svid,
        allow: &str,
    ) -> anyhow::Result<Self> {
        let source = LiveSource::from_fingerprint(ca_url, fingerprint)?
            .start()
            .await
            .context("the echo server's live trust source")?;
        let policy = Policy::deny_all().allow(allow)?;
        let verifier = SpiffeClientVerifier::builder(source, policy).client_verifier();
        let credentials =
            Credentials::from_pem(own.chain_pem().as_bytes(), own.private_key_pem().as_bytes())?;
        let config = sigil_verifier::server_config(Arc::clone(&verifier), credentials)?;
        let app = axum::Router::new().fallback(|peer: PeerIdentity| async move {
            format!("hello {}, serial {}", peer.spiffe_id(), peer.serial_hex())
        });
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(sigil_verifier::axum::serve(
            listener,
            Arc::new(config),
            Arc::clone(&verifier),
            app,
        ));
        Ok(Self {
            addr,
            verifier,
            task,
        })
    }

    /// Whether the server's trust source holds a CRL that revokes
    /// `identity` (its certificate or a CA above it).
    pub(super) fn knows_revoked(&self, identity: &PeerIdentity) -> bool {
        self.verifier.source().is_revoked(identity)
    }
}

/// `GET /` on a new TLS connection made with `config`: the status and body.
///
/// # Errors
///
/// The connection, the handshake or the exchange failed; a refusal by the
/// server carries its TLS alert (see [`alert_of`]).
pub(super) async fn get(config: Arc<ClientConfig>, addr: SocketAddr) -> io::Result<(u16, String)> {
    let tcp = TcpStream::connect(addr).await?;
    // The request follows the handshake's last flight at once: without
    // this, Nagle's algorithm holds it for the server's delayed ACK.
    tcp.set_nodelay(true)?;
    // The server is checked by SPIFFE ID, not by this name.
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = TlsConnector::from(config).connect(name, tcp).await?;
    // Under TLS 1.3 the client's handshake ends before the server has
    // checked the client's certificate: a refusal arrives as an alert on
    // the first read, and the write may already have failed.
    let written = async {
        tls.write_all(b"GET / HTTP/1.1\r\nhost: echo\r\nconnection: close\r\n\r\n")
            .await?;
        tls.flush().await
    }
    .await;
    let mut received = Vec::new();
    loop {
        if let Some(answer) = parse_response(&received) {
            return answer;
        }
        let mut chunk = [0u8; 4096];
        match tls.read(&mut chunk).await {
            Ok(0) => {
                return Err(written.err().unwrap_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection without an answer",
                    )
                }));
            }
            Ok(read) => received.extend_from_slice(&chunk[..read]),
            Err(error) => {
                return Err(match written {
                    Err(first) if alert_of(&error).is_none() && alert_of(&first).is_some() => first,
                    _ => error,
                });
            }
        }
    }
}

/// The status and body of a complete HTTP/1.1 response with a
/// content-length; `None` while more bytes are needed.
fn parse_response(received: &[u8]) -> Option<io::Result<(u16, String)>> {
    let end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&received[..end]);
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, format!("not HTTP: {head}"));
    let Some(status) = head.split(' ').nth(1).and_then(|s| s.parse().ok()) else {
        return Some(Err(invalid()));
    };
    let Some(length) = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    }) else {
        return Some(Err(invalid()));
    };
    let body = received.get(end + 4..end + 4 + length)?;
    Some(Ok((status, String::from_utf8_lossy(body).into_owned())))
}

/// The TLS alert the peer sent, if that is why `error` happened.
pub(super) fn alert_of(error: &io::Error) -> Option<AlertDescription> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_complete_only_with_their_whole_body() {
        let full = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(
            parse_response(full).unwrap().unwrap(),
            (200, "hello".to_owned())
        );
        assert!(parse_response(&full[..full.len() - 1]).is_none());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_none());
        assert!(parse_response(b"garbage\r\n\r\n").unwrap().is_err());
    }
}
