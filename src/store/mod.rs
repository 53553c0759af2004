//! The store: every certificate issued and every join token, behind one
//! interface of intent-level operations.
//!
//! Each operation is one transaction with a single winner under concurrency,
//! so the same operations can later stand on PostgreSQL for several active
//! CA replicas. SQLite ([`SqliteStore`]) is the embedded default.

mod schema;
mod sqlite;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use sigil_core::SpiffeId;
use time::OffsetDateTime;

pub use sqlite::SqliteStore;

use crate::ca::Serial;
use crate::join_token::TokenHash;

/// What every store operation returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule refused the write (a repeated serial or token id).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The store holds something this version cannot read.
    #[error("store content is not understood: {0}")]
    Corrupt(String),
}

/// How a certificate's subject proved what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationKind {
    /// Redeemed a join token.
    JoinToken,
    /// Minted locally from the data dir (admin credentials, the server's
    /// own identity).
    Local,
}

impl AttestationKind {
    /// The name stored for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JoinToken => "join_token",
            Self::Local => "local",
        }
    }
}

impl std::str::FromStr for AttestationKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "join_token" => Ok(Self::JoinToken),
            "local" => Ok(Self::Local),
            other => Err(format!("unknown attestation kind {other}")),
        }
    }
}

/// A certificate as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Its serial (unique).
    pub serial: Serial,
    /// Its identity.
    pub spiffe_id: SpiffeId,
    /// The key id of the CA that signed it.
    pub issuer_key_id: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// How the subject proved what it is.
    pub attestation: AttestationKind,
    /// The certificate it was renewed from, if any.
    pub parent_serial: Option<Serial>,
    /// The certificate, DER: renewal and admin routes compare it exactly.
    pub der: Vec<u8>,
    /// When it was recorded.
    pub created_at: OffsetDateTime,
}

/// A join token to be stored: its hash and what it grants.
#[derive(Debug, Clone)]
pub struct NewJoinToken {
    /// Public lookup key.
    pub id: String,
    /// SHA-256 of the whole token.
    pub hash: TokenHash,
    /// What redeeming it grants.
    pub grant: TokenGrant,
    /// How many certificates it may yield.
    pub uses: u32,
    /// When it stops being redeemable.
    pub expires_at: OffsetDateTime,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// The admin who created it.
    pub created_by: SpiffeId,
}

/// What a join token grants: set by the admin, never by the CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// The identity.
    pub spiffe_id: SpiffeId,
    /// DNS SANs for agents that also serve.
    pub dns_names: Vec<String>,
    /// IP SANs for agents that also serve.
    pub ip_addresses: Vec<IpAddr>,
}

/// The outcome of redeeming a join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// The token grants this (and, from `redeem_join_token`, one use was
    /// taken).
    Granted(TokenGrant),
    /// No use is left.
    UsedUp,
    /// The token expired.
    Expired,
    /// No such token (or the secret does not match its id).
    Unknown,
}

/// The store interface. Every method is one atomic operation.
pub trait Store: Send + Sync + 'static {
    /// Records an issued certificate. Called before the certificate leaves
    /// the CA; a repeated serial is a [`StoreError::Conflict`].
    fn record_certificate(&self, record: CertificateRecord) -> StoreFuture<'_, ()>;

    /// Finds a certificate by serial.
    fn find_certificate(&self, serial: Serial) -> StoreFuture<'_, Option<CertificateRecord>>;

    /// Stores a new join token.
    fn create_join_token(&self, token: NewJoinToken) -> StoreFuture<'_, ()>;

    /// What a join token would grant now, without taking a use: the
    /// presented hash must match (compared in constant time), the token must
    /// not have expired and a use must be left.
    fn peek_join_token(
        &self,
        id: String,
        presented: TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Redemption>;

    /// Takes one use of a join token and records the certificate issued for
    /// it, in one transaction: either both happen or neither. Concurrent
    /// redemptions of the last use have exactly one winner; the losers'
    /// certificates are not recorded (and must not be handed out). A
    /// certificate for another identity than the token grants is a
    /// [`StoreError::Conflict`].
    fn redeem_join_token(
        &self,
        id: String,
        presented: TokenHash,
        now: OffsetDateTime,
        certificate: CertificateRecord,
    ) -> StoreFuture<'_, Redemption>;

    /// Succeeds when the store can be read and written.
    fn check_ready(&self) -> StoreFuture<'_, ()>;
}
