//! rustls configurations with the verifiers installed and TLS session
//! resumption turned off, so that every connection runs the full check.

use std::sync::Arc;

use rustls::client::{ResolvesClientCert, Resumption};
use rustls::server::{NoServerSessionStorage, ResolvesServerCert};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;
use crate::bundle::certificates_from_pem;
use crate::verifier::{SpiffeClientVerifier, SpiffeServerVerifier};

/// An X509-SVID chain (leaf first) and its private key.
pub struct Credentials {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads a PEM chain (leaf first) and a PEM private key (PKCS#8, SEC1
    /// or PKCS#1).
    ///
    /// # Errors
    ///
    /// Either text is not PEM, the chain is empty, or no key is found.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, Error> {
        let chain = certificates_from_pem(chain_pem)?;
        if chain.is_empty() {
            return Err(Error::Pem("the certificate chain is empty".to_owned()));
        }
        let key = pem::parse_many(key_pem)
            .map_err(|e| Error::Pem(format!("private key: {e}")))?
            .into_iter()
            .find_map(|block| match block.tag() {
                "PRIVATE KEY" | "EC PRIVATE KEY" | "RSA PRIVATE KEY" => {
                    PrivateKeyDer::try_from(block.into_contents()).ok()
                }
                _ => None,
            })
            .ok_or_else(|| Error::Pem("no private key found".to_owned()))?;
        Ok(Self { chain, key })
    }

    /// Reads a chain file and a key file.
    ///
    /// # Errors
    ///
    /// A file cannot be read, or as [`Credentials::from_pem`].
    pub fn from_files(chain: &std::path::Path, key: &std::path::Path) -> Result<Self, Error> {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|source| Error::Io {
                path: path.display().to_string(),
                source,
            })
        };
        Self::from_pem(&read(chain)?, &read(key)?)
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration that requires and verifies client SVIDs with
/// `verifier`, presents `credentials`, offers HTTP/2 and HTTP/1.1 by ALPN,
/// and issues no session tickets and keeps no session cache: resumption
/// would skip client verification (and so revocation).
///
/// # Errors
///
/// The key does not match a supported algorithm or the chain.
pub fn server_config(
    verifier: Arc<SpiffeClientVerifier>,
    credentials: Credentials,
) -> Result<ServerConfig, Error> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(credentials.chain, credentials.key)?;
    Ok(without_resumption(config))
}

/// As [`server_config`], but the server's own certificate comes from
/// `resolver` at each handshake, so that a renewed SVID is presented
/// without a restart (see the `sigil-agent` crate).
///
/// # Errors
///
/// The protocol versions cannot be set up.
pub fn server_config_with_resolver(
    verifier: Arc<SpiffeClientVerifier>,
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<ServerConfig, Error> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    Ok(without_resumption(config))
}

fn without_resumption(mut config: ServerConfig) -> ServerConfig {
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// A client configuration that checks the server with `verifier` (by
/// SPIFFE ID), presents `credentials` if given, and never resumes a
/// session (which would skip the server's verification).
///
/// # Errors
///
/// The key does not match a supported algorithm or the chain.
pub fn client_config(
    verifier: Arc<SpiffeServerVerifier>,
    credentials: Option<Credentials>,
) -> Result<ClientConfig, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match credentials {
        Some(credentials) => builder.with_client_auth_cert(credentials.chain, credentials.key)?,
        None => builder.with_no_client_auth(),
    };
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// As [`client_config`], but the client's certificate comes from
/// `resolver` at each handshake, so that a renewed SVID is presented
/// without a restart.
///
/// # Errors
///
/// The protocol versions cannot be set up.
pub fn client_config_with_resolver(
    verifier: Arc<SpiffeServerVerifier>,
    resolver: Arc<dyn ResolvesClientCert>,
) -> Result<ClientConfig, Error> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(resolver);
    config.resumption = Resumption::disabled();
    Ok(config)
}
