//! The two rustls verifiers: one for servers checking clients, one for
//! clients (agents) checking servers by SPIFFE ID instead of DNS name.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::check::{Checker, RevocationSettings, StaleCrls};
use crate::identity::PeerIdentity;
use crate::policy::Policy;
use crate::trust::TrustSource;

/// Builds a [`SpiffeClientVerifier`] or a [`SpiffeServerVerifier`].
/// Defaults: ring's signature algorithms, a CRL required for every issuer
/// in the chain, and stale CRLs refused after [`crate::DEFAULT_STALE_GRACE`].
#[derive(Debug)]
pub struct VerifierBuilder {
    source: TrustSource,
    policy: Policy,
    revocation: RevocationSettings,
    provider: Option<Arc<CryptoProvider>>,
}

impl VerifierBuilder {
    fn new(source: TrustSource, policy: Policy) -> Self {
        Self {
            source,
            policy,
            revocation: RevocationSettings::default(),
            provider: None,
        }
    }

    /// What to do with a CRL past its nextUpdate.
    pub fn stale_crls(mut self, stale: StaleCrls) -> Self {
        self.revocation.stale = stale;
        self
    }

    /// Refuse a CRL only once it is this long past nextUpdate.
    pub fn stale_crl_grace(self, grace: Duration) -> Self {
        self.stale_crls(StaleCrls::Refuse { grace })
    }

    /// Accepts a chain through an issuer this source has no CRL for
    /// (by default such a peer is refused with `UnknownRevocationStatus`).
    /// For trust material that comes without CRLs only.
    pub fn allow_missing_crls(mut self) -> Self {
        self.revocation.allow_missing = true;
        self
    }

    /// Uses this provider's signature algorithms instead of ring's.
    pub fn with_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    fn checker(self) -> Checker {
        let provider = self
            .provider
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        Checker {
            source: self.source,
            policy: self.policy,
            revocation: self.revocation,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    /// A verifier for servers to check clients.
    pub fn client_verifier(self) -> Arc<SpiffeClientVerifier> {
        Arc::new(SpiffeClientVerifier {
            checker: self.checker(),
        })
    }

    /// A verifier for clients to check servers.
    pub fn server_verifier(self) -> Arc<SpiffeServerVerifier> {
        Arc::new(SpiffeServerVerifier {
            checker: self.checker(),
        })
    }
}

/// A rustls [`ClientCertVerifier`] that accepts a client only if, inside
/// the handshake: its chain verifies to the bundle; its leaf follows the
/// X509-SVID rules (one SPIFFE ID URI SAN, not a CA, no certificate or CRL
/// signing); it is in the bundle's trust domain; neither the leaf nor any
/// CA certificate under the root is on its issuer's CRL; and the policy
/// allows its SPIFFE ID.
///
/// A client certificate is required. Refusals map to TLS alerts:
/// `certificate_revoked`, `certificate_expired`, `unknown_ca`,
/// `access_denied` (policy), `certificate_unknown` (SVID rules and trust
/// domain, with the reason in the server-side error).
///
/// TLS session resumption skips client verification, so a revoked client
/// could come back on an old session: the configs this crate builds
/// ([`crate::server_config`]) turn resumption off.
#[derive(Debug)]
pub struct SpiffeClientVerifier {
    checker: Checker,
}

impl SpiffeClientVerifier {
    /// Starts a builder over `source` and `policy`.
    pub fn builder(source: TrustSource, policy: Policy) -> VerifierBuilder {
        VerifierBuilder::new(source, policy)
    }

    /// Runs every check, and returns who the client is.
    ///
    /// # Errors
    ///
    /// The error the handshake would fail with.
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<PeerIdentity, rustls::Error> {
        self.checker.check(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
        )
    }

    /// The trust material this verifier reads.
    pub fn source(&self) -> &TrustSource {
        &self.checker.source
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The roots live in a swappable snapshot this cannot borrow from.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verify(end_entity, intermediates, now)
            .map(|_| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.checker.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.checker.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.checker.algorithms.supported_schemes()
    }
}

/// A rustls [`ServerCertVerifier`] that checks a server by SPIFFE ID (the
/// policy) instead of by DNS name, with every check of
/// [`SpiffeClientVerifier`]. The name the client dialled is not checked:
/// the SPIFFE ID is the server's identity.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    checker: Checker,
}

impl SpiffeServerVerifier {
    /// Starts a builder over `source` and `policy` (usually one exact ID).
    pub fn builder(source: TrustSource, policy: Policy) -> VerifierBuilder {
        VerifierBuilder::new(source, policy)
    }

    /// Runs every check, and returns who the server is.
    ///
    /// # Errors
    ///
    /// The error the handshake would fail with.
    pub fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<PeerIdentity, rustls::Error> {
        self.checker.check(
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
        )
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify(end_entity, intermediates, now)
            .map(|_| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.checker.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.checker.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.checker.algorithms.supported_schemes()
    }
}
