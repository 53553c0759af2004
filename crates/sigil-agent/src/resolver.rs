//! Presents the current SVID on every new handshake: rustls asks the
//! resolver each time, and the resolver reads an atomic swap that renewal
//! replaces.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::svid::Svid;

/// The agent's current SVID as rustls asks for it.
#[derive(Debug)]
pub(crate) struct SvidResolver {
    current: Arc<ArcSwap<Svid>>,
}

impl SvidResolver {
    pub(crate) fn new(current: Arc<ArcSwap<Svid>>) -> Self {
        Self { current }
    }
}

impl ResolvesClientCert for SvidResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().certified_key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for SvidResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().certified_key())
    }
}
