//! TLS for the CA's own listener: the server presents its own SVID (renewed
//! in the background) and requests, but does not require, a client
//! certificate. The handshake checks only that the client holds the key of
//! the certificate it presents; each route then judges the certificate
//! itself (`crate::api::authenticate`), so every refusal is a JSON answer
//! instead of a TLS alert.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

use crate::crypto_provider::crypto_provider;

/// Requests a client certificate and checks proof of possession of its
/// key; judges nothing else (see the module documentation).
#[derive(Debug)]
struct PossessionOnly {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PossessionOnly {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Chain, identity and state are checked per route, where a refusal
        // can be answered in JSON.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server's current certificate and key, swapped atomically on renewal.
#[derive(Debug)]
pub(super) struct ServerIdentity {
    current: ArcSwap<CertifiedKey>,
}

impl ServerIdentity {
    /// Starts with this chain and PKCS#8 key.
    ///
    /// # Errors
    ///
    /// The key cannot be loaded.
    pub(super) fn new(
        chain: Vec<CertificateDer<'static>>,
        pkcs8_key: Vec<u8>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            current: ArcSwap::from(certified_key(chain, pkcs8_key)?),
        })
    }

    /// Replaces the certificate and key for new handshakes.
    ///
    /// # Errors
    ///
    /// The key cannot be loaded; the old identity stays.
    pub(super) fn replace(
        &self,
        chain: Vec<CertificateDer<'static>>,
        pkcs8_key: Vec<u8>,
    ) -> anyhow::Result<()> {
        self.current.store(certified_key(chain, pkcs8_key)?);
        Ok(())
    }
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    pkcs8_key: Vec<u8>,
) -> anyhow::Result<Arc<CertifiedKey>> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8_key));
    let certified = CertifiedKey::from_der(chain, key, &crypto_provider())
        .map_err(|e| anyhow::anyhow!("loading the server key: {e}"))?;
    Ok(Arc::new(certified))
}

impl ResolvesServerCert for ServerIdentity {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The listener's TLS configuration: TLS 1.3 and 1.2, ALPN h2 and
/// http/1.1.
///
/// # Errors
///
/// The provider refuses the protocol versions.
pub(super) fn server_config(identity: Arc<ServerIdentity>) -> anyhow::Result<ServerConfig> {
    let provider = crypto_provider();
    let verifier = Arc::new(PossessionOnly {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(identity);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    Ok(config)
}
