//! The rustls configurations an agent builds present each renewal on new
//! handshakes, with no restart: a TLS server built once with
//! `server_config` keeps running while both ends renew.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use sigil_agent::Agent;
use sigil_verifier::{PeerIdentity, Policy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::common::DataDir;
use crate::library::{AGENT_ID, runtime, short_lived_ca};

const SERVER_ID: &str = "spiffe://example.org/tools/echo";

#[test]
fn a_server_built_once_sees_and_presents_each_renewal() {
    let dir = DataDir::init();
    let ca = short_lived_ca(&dir);
    let server_token = ca.token(SERVER_ID);
    let client_token = ca.token(AGENT_ID);
    runtime().block_on(async {
        let server_agent = Agent::builder(&ca.url)
            .fingerprint(&dir.fingerprint)
            .join_token(&server_token)
            .start()
            .await
            .unwrap();
        let client_agent = Agent::builder(&ca.url)
            .fingerprint(&dir.fingerprint)
            .join_token(&client_token)
            .start()
            .await
            .unwrap();

        // The server: one configuration for its whole life.
        let config = server_agent
            .server_config(
                Policy::deny_all()
                    .allow("spiffe://example.org/agents/*")
                    .unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (seen_by_server, mut client_serials) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let peer = PeerIdentity::from_connection(tls.get_ref().1).unwrap();
                let _ = seen_by_server.send(peer.serial_hex());
                let _ = tls.write_all(b"hello").await;
                let _ = tls.shutdown().await;
            }
        });

        let client_config = Arc::new(
            client_agent
                .client_config(Policy::deny_all().allow(SERVER_ID).unwrap())
                .unwrap(),
        );
        let mut server_serials = HashSet::new();
        let mut seen_clients = HashSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while server_serials.len() < 3 || seen_clients.len() < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "saw server serials {server_serials:?} and client serials {seen_clients:?}"
            );
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(&client_config))
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            let mut hello = [0u8; 5];
            tls.read_exact(&mut hello).await.unwrap();
            let presented = PeerIdentity::from_connection(tls.get_ref().1).unwrap();
            assert_eq!(presented.spiffe_id().as_str(), SERVER_ID);
            server_serials.insert(presented.serial_hex());
            seen_clients.insert(client_serials.recv().await.unwrap());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
}
