//! Who is on the other end of a verified connection.

use std::sync::Arc;
use std::time::SystemTime;

use rustls_pki_types::CertificateDer;
use sigil_core::SpiffeId;

use crate::svid::{Link, Svid};

/// A certificate as a CRL names it: its issuer's name (DER) and its serial.
type IssuerAndSerial = (Box<[u8]>, Box<[u8]>);

/// The identity a peer proved in the handshake: its SPIFFE ID, the serial
/// and expiry of its X509-SVID, and (privately) its chain's issuers, so
/// that [`crate::TrustSource::is_revoked`] can answer later.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    spiffe_id: SpiffeId,
    serial: Box<[u8]>,
    not_after: SystemTime,
    /// The leaf and each CA certificate above it.
    links: Arc<[IssuerAndSerial]>,
}

impl std::fmt::Debug for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerIdentity")
            .field("spiffe_id", &self.spiffe_id.as_str())
            .field("serial", &self.serial_hex())
            .field("not_after", &self.not_after)
            .finish()
    }
}

impl PeerIdentity {
    pub(crate) fn new(svid: Svid, intermediates: &[Link]) -> Self {
        let mut links = Vec::with_capacity(1 + intermediates.len());
        links.push((svid.issuer, svid.serial.clone()));
        links.extend(
            intermediates
                .iter()
                .map(|link| (link.issuer.clone(), link.serial.clone())),
        );
        Self {
            spiffe_id: svid.spiffe_id,
            serial: svid.serial,
            not_after: svid.not_after,
            links: links.into(),
        }
    }

    /// Reads the identity from a chain a verifier of this crate has
    /// already accepted (leaf first), such as
    /// `rustls::ServerConnection::peer_certificates()`. It does not verify
    /// anything itself.
    ///
    /// Returns `None` when the chain is empty or the leaf is not an
    /// X509-SVID.
    pub fn from_verified_chain(chain: &[CertificateDer<'_>]) -> Option<Self> {
        let (leaf, rest) = chain.split_first()?;
        let svid = Svid::parse(leaf).ok()?;
        let links: Vec<Link> = rest
            .iter()
            .filter_map(|der| Link::parse(der).ok())
            .collect();
        Some(Self::new(svid, &links))
    }

    /// Reads the identity of a finished rustls connection's peer (server
    /// or client side).
    pub fn from_connection(connection: &rustls::CommonState) -> Option<Self> {
        Self::from_verified_chain(connection.peer_certificates()?)
    }

    /// The peer's SPIFFE ID.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The serial of the peer's certificate, as big-endian bytes.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The serial as lowercase hex (Sigil writes serials this way).
    pub fn serial_hex(&self) -> String {
        self.serial
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// When the peer's certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    pub(crate) fn links(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.links
            .iter()
            .map(|(issuer, serial)| (&**issuer, &**serial))
    }
}
