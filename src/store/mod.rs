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
use std::sync::Arc;

use sigil_core::SpiffeId;
use time::OffsetDateTime;

pub use sqlite::SqliteStore;

use crate::audit::{AuditEvent, AuditRecord, Checkpoint};
use crate::join_token::TokenHash;
use crate::revocation::{CrlSigner, ReasonCode, SignedCrl};
use crate::serial::Serial;

/// Builds an operation's audit records from its outcome. The store calls
/// it inside the operation's transaction and appends what it returns, so a
/// change and its audit records commit together or not at all.
pub type AuditFn<T> = Box<dyn FnOnce(&T) -> Vec<AuditEvent> + Send>;

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
    /// Signing a CRL failed; the change that needed it was not committed.
    #[error("signing a CRL: {0}")]
    Signing(String),
    /// The identity is banned; no certificate was recorded.
    #[error("{0} is banned")]
    Banned(SpiffeId),
}

/// How a certificate's subject proved what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttestationKind {
    /// Redeemed a join token.
    JoinToken,
    /// Minted locally from the data dir (admin credentials, the server's
    /// own identity).
    Local,
    /// Renewed from a certificate of the same identity.
    Renewal,
    /// Presented a JWT from a trusted issuer.
    Jwt,
    /// An issuing CA, signed by the root: recorded so that the root's CRL
    /// can list it once revoked.
    IssuingCa,
}

impl AttestationKind {
    /// The name stored for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JoinToken => "join_token",
            Self::Local => "local",
            Self::Renewal => "renewal",
            Self::Jwt => "jwt",
            Self::IssuingCa => "issuing_ca",
        }
    }
}

impl std::str::FromStr for AttestationKind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "join_token" => Ok(Self::JoinToken),
            "local" => Ok(Self::Local),
            "renewal" => Ok(Self::Renewal),
            "jwt" => Ok(Self::Jwt),
            "issuing_ca" => Ok(Self::IssuingCa),
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
    /// The identity it grants is banned.
    Banned(SpiffeId),
}

/// The outcome of redeeming a JWT (see [`Store::redeem_jwt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtRedemption {
    /// The certificate and its audit records are recorded, and the token's
    /// `jti` (if it has one) is marked used for its issuer until the
    /// token expires.
    Granted,
    /// The issuer's token with this `jti` was already redeemed and has not
    /// yet expired; nothing was recorded.
    Replayed,
    /// The identity is banned; nothing was recorded (and the `jti` stays
    /// unused).
    Banned(SpiffeId),
}

/// A certificate and what has happened to it since.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCertificate {
    /// The certificate as issued.
    pub record: CertificateRecord,
    /// Its revocation, if revoked.
    pub revocation: Option<Revocation>,
    /// Whether its identity is banned now.
    pub banned: bool,
}

/// When and why a certificate was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// When.
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: ReasonCode,
}

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationTarget {
    /// One certificate.
    Serial(Serial),
    /// Every live certificate of an identity, which is banned from then on.
    Identity(SpiffeId),
}

/// A revocation an admin asked for.
#[derive(Debug, Clone)]
pub struct RevocationRequest {
    /// What.
    pub target: RevocationTarget,
    /// Why.
    pub reason: ReasonCode,
    /// Who asked.
    pub by: SpiffeId,
    /// When.
    pub now: OffsetDateTime,
}

/// The outcome of a revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationOutcome {
    /// No certificate has that serial.
    UnknownSerial,
    /// These certificates are revoked (including any that already were),
    /// and these CRLs were published in the same transaction.
    Revoked {
        /// The revoked serials.
        serials: Vec<Serial>,
        /// The CRLs that now list them.
        crls: Vec<SignedCrl>,
        /// Whether anything changed: a certificate newly revoked or an
        /// identity newly banned. Repeating a revocation changes nothing
        /// (the first reason stands).
        changed: bool,
    },
}

/// The outcome of a renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalOutcome {
    /// The new certificate is recorded and heads the line. A retry
    /// (the parent of the head renewing again) revoked the unused head.
    Renewed {
        /// The head the retry revoked, if this was a retry.
        superseded: Option<Serial>,
        /// CRLs published for that revocation.
        crls: Vec<SignedCrl>,
    },
    /// The line had moved on: two parties hold the identity. It is banned
    /// and every live certificate of it revoked; nothing new was recorded.
    Fork {
        /// The certificates revoked.
        revoked: Vec<Serial>,
        /// The CRLs that now list them.
        crls: Vec<SignedCrl>,
    },
    /// The presented certificate is revoked.
    Revoked,
    /// The identity is banned.
    Banned,
    /// The presented certificate is not in the store.
    Unknown,
}

/// Which certificates to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusFilter {
    /// Not revoked and not expired.
    #[default]
    Live,
    /// Revoked.
    Revoked,
    /// All.
    All,
}

/// A page of certificates, ordered by serial.
#[derive(Debug, Clone)]
pub struct CertificateQuery {
    /// Only this identity.
    pub spiffe_id: Option<SpiffeId>,
    /// Which states.
    pub status: StatusFilter,
    /// At most this many.
    pub limit: u32,
    /// Only serials after this one.
    pub after: Option<Serial>,
    /// "Live" means unexpired at this time.
    pub now: OffsetDateTime,
}

/// The store interface. Every method is one atomic operation.
pub trait Store: Send + Sync + 'static {
    /// Records an issued certificate, and its audit records. Called before
    /// the certificate leaves the CA; a repeated serial is a
    /// [`StoreError::Conflict`], a banned identity [`StoreError::Banned`].
    fn record_certificate(
        &self,
        record: CertificateRecord,
        audit: Vec<AuditEvent>,
    ) -> StoreFuture<'_, ()>;

    /// Finds a certificate, and its state, by serial.
    fn find_certificate(&self, serial: Serial) -> StoreFuture<'_, Option<StoredCertificate>>;

    /// Lists certificates, ordered by serial.
    fn list_certificates(&self, query: CertificateQuery)
    -> StoreFuture<'_, Vec<StoredCertificate>>;

    /// Revokes a certificate, or every live certificate of an identity and
    /// bans it; then, in the same transaction, publishes a new CRL for each
    /// CA whose certificates it revoked. Revoking a revoked certificate
    /// again changes nothing and reports it revoked.
    fn revoke(
        &self,
        request: RevocationRequest,
        signer: Arc<dyn CrlSigner>,
        audit: AuditFn<RevocationOutcome>,
    ) -> StoreFuture<'_, RevocationOutcome>;

    /// Renews the presented certificate: records `certificate` (whose
    /// `parent_serial` is the presented one) as the new head of its line if
    /// the presented certificate heads the line, or is its head's parent
    /// renewing once more as a retry (which revokes the unused head).
    /// Anything else is a fork: the identity is banned and its live
    /// certificates revoked. One transaction; the line's head moves by
    /// compare-and-set, so of concurrent renewals only one continues it.
    fn renew(
        &self,
        certificate: CertificateRecord,
        now: OffsetDateTime,
        signer: Arc<dyn CrlSigner>,
        audit: AuditFn<RenewalOutcome>,
    ) -> StoreFuture<'_, RenewalOutcome>;

    /// Appends events to the audit log, chaining each to the one before, in
    /// one transaction; returns the records written.
    fn append_audit(&self, events: Vec<AuditEvent>) -> StoreFuture<'_, Vec<AuditRecord>>;

    /// Up to `limit` audit records after `after`, in order.
    fn audit_page(&self, after: u64, limit: u32) -> StoreFuture<'_, Vec<AuditRecord>>;

    /// The newest `limit` audit records, in order.
    fn audit_tail(&self, limit: u32) -> StoreFuture<'_, Vec<AuditRecord>>;

    /// Stores a signed checkpoint of the log's head.
    fn record_checkpoint(&self, checkpoint: Checkpoint) -> StoreFuture<'_, ()>;

    /// The newest checkpoint, if any.
    fn latest_checkpoint(&self) -> StoreFuture<'_, Option<Checkpoint>>;

    /// Every checkpoint, oldest first.
    fn checkpoints(&self) -> StoreFuture<'_, Vec<Checkpoint>>;

    /// Lifts a ban (recording `audit` with it); false if the identity was
    /// not banned.
    fn lift_ban(&self, spiffe_id: SpiffeId, audit: Vec<AuditEvent>) -> StoreFuture<'_, bool>;

    /// Whether an identity is banned.
    fn is_banned(&self, spiffe_id: SpiffeId) -> StoreFuture<'_, bool>;

    /// Signs and stores a fresh CRL for one CA (at start-up, and before the
    /// current one's nextUpdate), with the next global CRL number.
    fn publish_crl(
        &self,
        issuer_key_id: String,
        now: OffsetDateTime,
        signer: Arc<dyn CrlSigner>,
    ) -> StoreFuture<'_, SignedCrl>;

    /// The newest CRL of every CA that has one.
    fn current_crls(&self) -> StoreFuture<'_, Vec<SignedCrl>>;

    /// Stores a new join token.
    fn create_join_token(&self, token: NewJoinToken, audit: Vec<AuditEvent>)
    -> StoreFuture<'_, ()>;

    /// What a join token would grant now, without taking a use: the
    /// presented hash must match (compared in constant time), the token must
    /// not have expired, a use must be left, and its identity must not be
    /// banned.
    fn peek_join_token(
        &self,
        id: String,
        presented: TokenHash,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Redemption>;

    /// Takes one use of a join token and records the certificate issued for
    /// it and `audit`, in one transaction: all of it happens or none. Concurrent
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
        audit: Vec<AuditEvent>,
    ) -> StoreFuture<'_, Redemption>;

    /// Redeems a verified JWT: marks its `jti` used for `issuer` and records
    /// the certificate issued for it and `audit`, in one transaction: all of
    /// it happens or none. A `jti` already used with the same issuer is
    /// [`JwtRedemption::Replayed`]; of concurrent redemptions of one
    /// (issuer, jti) exactly one wins, and the losers' certificates are not
    /// recorded (and must not be handed out). A banned identity is
    /// [`JwtRedemption::Banned`]. A repeated serial is a
    /// [`StoreError::Conflict`], and leaves the `jti` unused.
    ///
    /// A used `jti` is remembered until `expires_at`, after which it is
    /// forgotten (rows past it are purged as `now` passes them): pass the
    /// last instant the verifier would still accept the token, i.e. its
    /// `exp` plus any clock-skew leeway. `jti = None` (an issuer whose
    /// tokens need not carry one) skips replay protection.
    fn redeem_jwt(
        &self,
        issuer: String,
        jti: Option<String>,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
        certificate: CertificateRecord,
        audit: Vec<AuditEvent>,
    ) -> StoreFuture<'_, JwtRedemption>;

    /// Succeeds when the store can be read and written.
    fn check_ready(&self) -> StoreFuture<'_, ()>;

    /// What the store holds at `now`, for `GET /admin/v1/status`.
    fn summary(&self, now: OffsetDateTime) -> StoreFuture<'_, StoreSummary>;

    /// The latest expiry among the certificates of these issuers that are
    /// live at `now` (unexpired and unrevoked), leaving out those of
    /// `excluded`; `None` when there is none. A root rotation keeps the
    /// previous root until then.
    fn latest_live_expiry(
        &self,
        issuer_key_ids: Vec<String>,
        excluded: SpiffeId,
        now: OffsetDateTime,
    ) -> StoreFuture<'_, Option<OffsetDateTime>>;
}

/// Told of every batch the store's writer commits that wrote something
/// (readiness checks write nothing), and of every batch that failed.
pub trait CommitObserver: Send + Sync {
    /// A commit took `took` and carried `operations` operations.
    fn committed(&self, took: std::time::Duration, operations: usize);

    /// A batch could not be committed; nothing of it was stored.
    fn commit_failed(&self);
}

/// How many certificates the store holds, by state, and how far its audit
/// log goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreSummary {
    /// Certificates neither revoked nor expired.
    pub live: u64,
    /// Revoked certificates not yet expired: the entries of the CRLs.
    pub revoked: u64,
    /// Every certificate ever issued.
    pub issued: u64,
    /// The sequence number of the newest audit record (0 for none).
    pub last_audit_seq: u64,
}
