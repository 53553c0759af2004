//! `sigil_verifier::axum::serve` on loopback: an open keep-alive
//! connection is closed when its peer's certificate expires, or when the
//! peer stops passing after the trust material changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pki;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pki::Pki;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sigil_verifier::{
    Credentials, PeerIdentity, Policy, SpiffeClientVerifier, SpiffeServerVerifier, TrustSource,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SERVER_ID: &str = "spiffe://td.test/server";

fn credentials(chain: &[CertificateDer<'static>], key: &rcgen::KeyPair) -> Credentials {
    let chain_pem: String = chain
        .iter()
        .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec())))
        .collect();
    Credentials::from_pem(chain_pem.as_bytes(), key.serialize_pem().as_bytes()).unwrap()
}

/// Starts an echo server over `source`; returns its address.
async fn echo(pki: &Pki, source: &TrustSource) -> SocketAddr {
    let (chain, key) = pki.leaf_with_key(&[SERVER_ID], time::Duration::hours(1));
    let verifier = SpiffeClientVerifier::builder(
        source.clone(),
        Policy::deny_all().allow("spiffe://td.test/*").unwrap(),
    )
    .client_verifier();
    let config =
        sigil_verifier::server_config(Arc::clone(&verifier), credentials(&chain, &key)).unwrap();
    let app = axum::Router::new()
        .fallback(|peer: PeerIdentity| async move { peer.spiffe_id().to_string() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(sigil_verifier::axum::serve(
        listener,
        Arc::new(config),
        verifier,
        app,
    ));
    addr
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(
    source: &TrustSource,
    addr: SocketAddr,
    chain: Vec<CertificateDer<'static>>,
    key: &rcgen::KeyPair,
) -> Tls {
    let verifier =
        SpiffeServerVerifier::builder(source.clone(), Policy::deny_all().allow(SERVER_ID).unwrap())
            .server_verifier();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(verifier)
    .with_client_auth_cert(chain, PrivateKeyDer::try_from(key.serialize_der()).unwrap())
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// One keep-alive request; `None` when the connection is gone.
async fn get(tls: &mut Tls) -> Option<String> {
    tls.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .ok()?;
    let mut buffer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buffer))
        .await
        .ok()?
        .ok()?;
    (read > 0).then(|| String::from_utf8_lossy(&buffer[..read]).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_connection_is_closed_when_the_peer_certificate_expires() {
    let pki = Pki::new("td.test");
    let source = pki.source_with_crls();
    let addr = echo(&pki, &source).await;
    let (chain, key) = pki.leaf_with_key(&["spiffe://td.test/short"], time::Duration::seconds(2));
    let mut tls = connect(&source, addr, chain, &key).await;
    let first = get(&mut tls).await.unwrap();
    assert!(first.contains("spiffe://td.test/short"), "{first}");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(get(&mut tls).await, None, "served past its expiry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_connection_is_closed_when_its_peer_is_revoked() {
    let pki = Pki::new("td.test");
    let source = pki.source_with_crls();
    let addr = echo(&pki, &source).await;
    let (chain, key) = pki.leaf_with_key(&["spiffe://td.test/a"], time::Duration::hours(1));
    let (other_chain, other_key) =
        pki.leaf_with_key(&["spiffe://td.test/b"], time::Duration::hours(1));
    let serial = pki::serial_of(&chain[0]);
    let mut revoked = connect(&source, addr, chain, &key).await;
    let mut bystander = connect(&source, addr, other_chain, &other_key).await;
    assert!(get(&mut revoked).await.is_some());
    assert!(get(&mut bystander).await.is_some());

    source
        .update_crls_pem(
            pki.issuing
                .crl(3, &[&serial], time::Duration::hours(1))
                .as_bytes(),
        )
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if get(&mut revoked).await.is_none() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(get(&mut bystander).await.is_some(), "the other peer stays");
}
