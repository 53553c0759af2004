//! Trust material: the bundle and the newest CRL of each issuer, swapped
//! atomically as one snapshot, with a watch channel that ticks on every
//! swap.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use sigil_core::TrustDomain;
use tokio::sync::watch;

use crate::Error;
use crate::bundle::Bundle;
use crate::crl::{Crl, crls_from_pem};
use crate::identity::PeerIdentity;

/// One consistent view of the trust material.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) bundle: Bundle,
    /// The newest CRL per issuer name.
    pub(crate) crls: HashMap<Box<[u8]>, Arc<Crl>>,
}

impl Snapshot {
    /// Whether any link of `identity`'s chain is on its issuer's CRL.
    pub(crate) fn revokes(&self, identity: &PeerIdentity) -> bool {
        identity.links().any(|(issuer, serial)| {
            self.crls
                .get(issuer)
                .is_some_and(|crl| crl.contains(serial))
        })
    }
}

/// Where a verifier gets its roots and CRLs: fixed material, or a Sigil CA
/// kept fresh in the background (see [`crate::LiveSource`]). Cloning is
/// cheap and every clone sees the same material.
///
/// ```no_run
/// use sigil_verifier::TrustSource;
///
/// let source = TrustSource::from_pem(&std::fs::read("bundle.pem")?)?
///     .with_crls_pem(&std::fs::read("crls.pem")?)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TrustSource {
    shared: Arc<Shared>,
}

/// Public keys (SPKI, DER) by subject name (DER).
type KeysByIssuer = HashMap<Box<[u8]>, Box<[u8]>>;

struct Shared {
    snapshot: ArcSwap<Snapshot>,
    updates: watch::Sender<u64>,
    /// Issuing-CA keys seen in verified paths, by subject name, so that
    /// later CRLs from those issuers are checked when they are loaded.
    issuer_keys: Mutex<KeysByIssuer>,
    /// Serialises writers, so that two updates never lose each other's CRLs.
    writer: Mutex<()>,
}

impl std::fmt::Debug for TrustSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snapshot = self.shared.snapshot.load();
        f.debug_struct("TrustSource")
            .field("trust_domain", &snapshot.bundle.trust_domain)
            .field("roots", &snapshot.bundle.roots.len())
            .field("crls", &snapshot.crls.len())
            .finish()
    }
}

impl TrustSource {
    pub(crate) fn from_bundle(bundle: Bundle) -> Self {
        Self {
            shared: Arc::new(Shared {
                snapshot: ArcSwap::from_pointee(Snapshot {
                    bundle,
                    crls: HashMap::new(),
                }),
                updates: watch::Sender::new(0),
                issuer_keys: Mutex::new(HashMap::new()),
                writer: Mutex::new(()),
            }),
        }
    }

    /// Trusts the roots in a PEM bundle (Sigil's `GET /v1/bundle`). The
    /// trust domain is the one the roots name (`spiffe://<td>` URI SAN).
    ///
    /// # Errors
    ///
    /// The PEM holds no certificate, a certificate is not a CA, or no root
    /// names a trust domain.
    pub fn from_pem(bundle_pem: &[u8]) -> Result<Self, Error> {
        Ok(Self::from_bundle(Bundle::from_pem(bundle_pem, None)?))
    }

    /// Trusts the roots in a PEM bundle for the given trust domain, for
    /// roots that do not name one themselves.
    ///
    /// # Errors
    ///
    /// As [`TrustSource::from_pem`].
    pub fn from_pem_for(bundle_pem: &[u8], trust_domain: TrustDomain) -> Result<Self, Error> {
        Ok(Self::from_bundle(Bundle::from_pem(
            bundle_pem,
            Some(trust_domain),
        )?))
    }

    /// Reads a bundle file and CRL files (PEM), for tests and air-gapped
    /// use.
    ///
    /// # Errors
    ///
    /// A file cannot be read, or its content is refused as in
    /// [`TrustSource::from_pem`] and [`TrustSource::update_crls_pem`].
    pub fn from_files(bundle: &Path, crls: &[&Path]) -> Result<Self, Error> {
        let source = Self::from_pem(&read(bundle)?)?;
        for path in crls {
            source.update_crls_pem(&read(path)?)?;
        }
        Ok(source)
    }

    /// Adds the CRLs of a PEM text, builder style.
    ///
    /// # Errors
    ///
    /// As [`TrustSource::update_crls_pem`].
    pub fn with_crls_pem(self, crls_pem: &[u8]) -> Result<Self, Error> {
        self.update_crls_pem(crls_pem)?;
        Ok(self)
    }

    /// Loads the CRLs of a PEM text (blocks `X509 CRL`), keeping for each
    /// issuer only the CRL with the highest number. A CRL signed by a root,
    /// or by an issuing CA this source has already seen in a verified
    /// chain, has its signature checked now; any other is checked once, at
    /// the first handshake whose verified chain reaches its issuer.
    ///
    /// All or nothing: if one CRL is refused, nothing changes. Returns how
    /// many CRLs replaced older ones.
    ///
    /// # Errors
    ///
    /// A CRL does not parse, or its signature does not verify.
    pub fn update_crls_pem(&self, crls_pem: &[u8]) -> Result<usize, Error> {
        self.update_crls(crls_from_pem(crls_pem)?)
    }

    pub(crate) fn update_crls(&self, crls: Vec<Crl>) -> Result<usize, Error> {
        let (replaced, mut refused) = self.merge_crls(crls, Merge::AllOrNothing);
        match refused.pop() {
            Some(error) => Err(error),
            None => Ok(replaced),
        }
    }

    /// Loads each CRL on its own: a refused one leaves the others in.
    /// Returns how many replaced older ones, and why the others were
    /// refused.
    pub(crate) fn update_crls_leniently(&self, crls: Vec<Crl>) -> (usize, Vec<Error>) {
        self.merge_crls(crls, Merge::EachOnItsOwn)
    }

    fn merge_crls(&self, crls: Vec<Crl>, mode: Merge) -> (usize, Vec<Error>) {
        let _writer = lock(&self.shared.writer);
        let current = self.shared.snapshot.load_full();
        let mut merged = current.crls.clone();
        let mut replaced = 0;
        let mut refused = Vec::new();
        for crl in crls {
            if merged
                .get(&crl.issuer)
                .is_some_and(|held| held.number >= crl.number)
            {
                continue;
            }
            if let Err(error) = self.verify_if_issuer_known(&current, &crl) {
                refused.push(error);
                if mode == Merge::AllOrNothing {
                    return (0, refused);
                }
                continue;
            }
            merged.insert(crl.issuer.clone(), Arc::new(crl));
            replaced += 1;
        }
        if replaced > 0 {
            self.publish(Snapshot {
                bundle: current.bundle.clone(),
                crls: merged,
            });
        }
        (replaced, refused)
    }

    fn verify_if_issuer_known(&self, current: &Snapshot, crl: &Crl) -> Result<(), Error> {
        let key = match current.bundle.root_named(&crl.issuer) {
            Some(root) => Some(root.spki.clone()),
            None => lock(&self.shared.issuer_keys).get(&crl.issuer).cloned(),
        };
        match key {
            Some(key) => crl.verify_with(&key).map_err(Error::Crl),
            None => Ok(()),
        }
    }

    /// Replaces the roots, keeping the CRLs.
    pub(crate) fn replace_bundle(&self, bundle: Bundle) {
        let _writer = lock(&self.shared.writer);
        let current = self.shared.snapshot.load_full();
        self.publish(Snapshot {
            bundle,
            crls: current.crls.clone(),
        });
    }

    fn publish(&self, snapshot: Snapshot) {
        self.shared.snapshot.store(Arc::new(snapshot));
        self.shared
            .updates
            .send_modify(|generation| *generation += 1);
    }

    /// Records an issuing CA's key seen in a verified chain.
    pub(crate) fn learn_issuer_key(&self, subject: &[u8], spki: &[u8]) {
        lock(&self.shared.issuer_keys)
            .entry(Box::from(subject))
            .or_insert_with(|| Box::from(spki));
    }

    pub(crate) fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.shared.snapshot.load()
    }

    /// A handle that does not keep the material alive: the live refresh
    /// task holds one, and stops once every `TrustSource` is gone.
    pub(crate) fn downgrade(&self) -> WeakTrustSource {
        WeakTrustSource(Arc::downgrade(&self.shared))
    }

    /// Whether `identity`'s certificate, or a CA certificate in its chain,
    /// is on a CRL this source holds now. Servers ask this for connections
    /// that were verified earlier (keep-alive, HTTP/2) when
    /// [`TrustSource::subscribe`] ticks.
    pub fn is_revoked(&self, identity: &PeerIdentity) -> bool {
        self.snapshot().revokes(identity)
    }

    /// A channel that ticks each time the roots or CRLs change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.updates.subscribe()
    }

    /// The trust domain the roots speak for.
    pub fn trust_domain(&self) -> TrustDomain {
        self.snapshot().bundle.trust_domain.clone()
    }

    /// The highest CRL number held, if any CRL is.
    pub fn crl_number(&self) -> Option<u128> {
        self.snapshot().crls.values().map(|crl| crl.number).max()
    }

    /// How many serials the held CRLs list, all issuers together.
    pub fn revoked_count(&self) -> usize {
        self.snapshot().crls.values().map(|crl| crl.len()).sum()
    }

    /// The CRLs held (the newest per issuer), PEM, for tools that read
    /// files: `openssl verify -crl_check_all -CRLfile`, nginx, curl.
    pub fn crls_pem(&self) -> String {
        let snapshot = self.snapshot();
        let mut crls: Vec<_> = snapshot.crls.values().collect();
        crls.sort_by_key(|crl| crl.number);
        crls.iter()
            .map(|crl| {
                pem::encode_config(
                    &pem::Pem::new("X509 CRL", crl.der().to_vec()),
                    pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
                )
            })
            .collect()
    }

    /// The roots, PEM.
    pub fn bundle_pem(&self) -> String {
        self.snapshot()
            .bundle
            .ders()
            .map(|der| {
                pem::encode_config(
                    &pem::Pem::new("CERTIFICATE", der.to_vec()),
                    pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
                )
            })
            .collect()
    }
}

/// How a batch of CRLs is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    AllOrNothing,
    EachOnItsOwn,
}

/// See [`TrustSource::downgrade`].
pub(crate) struct WeakTrustSource(std::sync::Weak<Shared>);

impl WeakTrustSource {
    pub(crate) fn upgrade(&self) -> Option<TrustSource> {
        self.0.upgrade().map(|shared| TrustSource { shared })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Locks a mutex; a panic elsewhere while holding it leaves plain data
/// (maps of keys, a unit), which stays usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
