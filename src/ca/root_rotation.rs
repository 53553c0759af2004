//! Rotating the root of a data dir, in three steps:
//!
//! 1. [`add_root`]: a new root joins the bundle beside the active one, and
//!    the bundle's sequence grows. It signs nothing yet, so that relying
//!    parties and agents learn it (they re-fetch the bundle) before any
//!    leaf chains to it.
//! 2. [`activate_root`]: once its time has come, it signs a new issuing
//!    CA, which takes over; the old issuing CA is retired as in any
//!    rotation. The bundle does not change: the previous root stays
//!    trusted while leaves chain to it.
//! 3. [`drop_root`]: once no live leaf chains to the previous root, it
//!    leaves the bundle (and the sequence grows again), taking the issuing
//!    CAs it signed with it.
//!
//! Root files never move; `ca/roots.json` says what they are (see
//! [`super::roots`]). Each step writes its files first and the state last,
//! and loading finishes what a crash interrupted: a new issuing CA signed
//! by the next root completes step 2
//! ([`super::recovery::finish_activation`]), and a root
//! file the state does not know of (step 1 cut short) is ignored.

use anyhow::{Context, anyhow, bail, ensure};
use rcgen::{KeyPair, PublicKeyData};
use time::OffsetDateTime;

use super::ca_key::CaKey;
use super::files::{CA_BACKDATE, ROOT_LIFETIME};
use super::key_encryption::{self, Passphrase};
use super::roots::{NextRoot, RootsState, roots_dir};
use super::rotation::rotate_issuing_under;
use super::{CaCertificate, CaFiles, Rotation, profile};
use crate::datadir::{self, DataDir};
use crate::serial::Serial;

/// What adding a root did.
#[derive(Debug, Clone)]
pub struct RootAddition {
    /// The new root.
    pub root: CaCertificate,
    /// When it takes over.
    pub activate_at: OffsetDateTime,
    /// The bundle's sequence number now.
    pub sequence: u64,
}

/// What activating the next root did.
#[derive(Debug, Clone)]
pub struct RootActivation {
    /// The key id of the root now active.
    pub root_key_id: String,
    /// The key id of the root it replaces, trusted until nothing chains to
    /// it.
    pub previous_root_key_id: String,
    /// The issuing CA it signed, which took over.
    pub rotation: Rotation,
}

/// Adds a new root (same key type as the active one, living
/// [`ROOT_LIFETIME`]) beside the active root of `dir`, to take over at
/// `activate_at`. Its key is encrypted with `passphrase` when one is
/// given.
///
/// # Errors
///
/// A root rotation is already under way (a next root waits, or a
/// previous root is still trusted), or a key, certificate or file cannot
/// be made.
pub fn add_root(
    dir: &DataDir,
    files: &CaFiles,
    passphrase: Option<&Passphrase>,
    activate_at: OffsetDateTime,
    now: OffsetDateTime,
) -> anyhow::Result<RootAddition> {
    let state = files.roots_state();
    if let Some(next) = &state.next {
        bail!(
            "a root rotation is under way: root {} takes over at {}",
            next.key_id,
            crate::rfc3339::format(next.activate_at)
        );
    }
    if let Some((previous, _)) = files.other_roots().next() {
        let previous = CaCertificate::from_pem(previous)?;
        bail!(
            "a root rotation is under way: the previous root {} stays trusted until no leaf \
             chains to it",
            previous.key_id()
        );
    }
    let now = profile::whole_seconds(now);
    let active = CaCertificate::from_pem(&files.root_pem).context("root CA certificate")?;
    let trust_domain =
        crate::svid::trust_domain_of_root(active.der()).map_err(anyhow::Error::msg)?;
    // The same algorithm as the root it replaces.
    // (Read as a `CaKey`, whose key bytes are wiped when it drops.)
    let algorithm =
        CaKey::new(KeyPair::from_pem(files.root_key_pem()).context("root CA key")?).algorithm();
    let key = CaKey::new(KeyPair::generate_for(algorithm).map_err(|e| anyhow!("root key: {e}"))?);
    let serial = Serial::generate_at(now).map_err(|_| anyhow!("the random source failed"))?;
    let params = profile::root_params(
        &trust_domain,
        &key,
        serial,
        now - CA_BACKDATE,
        now + ROOT_LIFETIME,
    )?;
    let certificate = params
        .self_signed(&key)
        .map_err(|e| anyhow!("signing the root: {e}"))?;
    let root = CaCertificate::from_pem(&certificate.pem())?;
    let key_text = match passphrase {
        Some(passphrase) => key_encryption::encrypt(&key.pem(), passphrase)?,
        None => key.pem(),
    };

    // Files first (the key creates the directory owner-only), the state
    // last: until it is written, the new root is ignored.
    let stem = roots_dir(dir).join(root.key_id());
    datadir::write_secret(&stem.with_extension("key"), key_text.as_bytes())?;
    datadir::write_public(&stem.with_extension("pem"), root.pem().as_bytes())?;
    let state = RootsState {
        sequence: state.sequence + 1,
        active: Some(active.key_id().to_owned()),
        next: Some(NextRoot {
            key_id: root.key_id().to_owned(),
            activate_at,
        }),
        dropped: state.dropped.clone(),
    };
    state.write(dir)?;
    write_bundle(dir, &format!("{}{}", files.bundle_pem(), root.pem()))?;
    Ok(RootAddition {
        root,
        activate_at,
        sequence: state.sequence,
    })
}

/// Puts the next root of `dir` in force: it signs a new issuing CA living
/// `lifetime` (see [`super::rotate_issuing`]), and becomes the active root.
///
/// # Errors
///
/// No root waits to take over, or the rotation of the issuing CA fails.
pub fn activate_root(
    dir: &DataDir,
    files: &CaFiles,
    passphrase: Option<&Passphrase>,
    lifetime: std::time::Duration,
    now: OffsetDateTime,
) -> anyhow::Result<RootActivation> {
    let state = files.roots_state();
    let next = state
        .next
        .as_ref()
        .context("no root is waiting to take over")?;
    let next_root = files
        .other_roots()
        .find(|(cert, _)| {
            CaCertificate::from_pem(cert).is_ok_and(|root| root.key_id() == next.key_id)
        })
        .with_context(|| format!("the next root {} is not in ca/roots/", next.key_id))?;
    let previous = CaCertificate::from_pem(&files.root_pem).context("root CA certificate")?;
    let rotation = rotate_issuing_under(dir, files, next_root, passphrase, lifetime, now)?;
    let state = RootsState {
        sequence: state.sequence,
        active: Some(next.key_id.clone()),
        next: None,
        dropped: state.dropped.clone(),
    };
    state.write(dir)?;
    Ok(RootActivation {
        root_key_id: next.key_id.clone(),
        previous_root_key_id: previous.key_id().to_owned(),
        rotation,
    })
}

/// Stops trusting the previous root `key_id` of `dir`: it leaves the
/// bundle, whose sequence grows. Returns the new sequence.
///
/// # Errors
///
/// `key_id` is not a previous root (the active or next root cannot be
/// dropped), or a file cannot be written.
pub fn drop_root(dir: &DataDir, files: &CaFiles, key_id: &str) -> anyhow::Result<u64> {
    let state = files.roots_state();
    ensure!(
        state.next.as_ref().is_none_or(|next| next.key_id != key_id),
        "root {key_id} is the next root, which cannot be dropped"
    );
    let mut bundle = files.root_pem.clone();
    let mut found = false;
    for (cert, _) in files.other_roots() {
        if CaCertificate::from_pem(cert)?.key_id() == key_id {
            found = true;
        } else {
            bundle.push_str(cert);
        }
    }
    ensure!(found, "root {key_id} is not a previous root of this CA");
    let mut state = state.clone();
    state.sequence += 1;
    state.dropped.push(key_id.to_owned());
    state.write(dir)?;
    write_bundle(dir, &bundle)?;
    Ok(state.sequence)
}

/// Rewrites the data dir's `bundle.pem`, which local clients trust.
fn write_bundle(dir: &DataDir, bundle_pem: &str) -> anyhow::Result<()> {
    datadir::write_public(&dir.bundle(), bundle_pem.as_bytes()).context("writing the trust bundle")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use rustls_pki_types::UnixTime;

    use super::*;
    use crate::ca::{CertificateAuthority, KeyType, LeafRequest, SubjectKey};
    use crate::csr::VerifiedPublicKey;

    const YEAR: Duration = Duration::from_secs(365 * 86_400);

    fn initialised() -> (tempfile::TempDir, DataDir) {
        let temp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(temp.path().join("ca"));
        dir.create_empty().unwrap();
        let files = CaFiles::generate(
            &"example.org".parse().unwrap(),
            KeyType::P256,
            YEAR,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        files.write(&dir, None).unwrap();
        (temp, dir)
    }

    fn load(dir: &DataDir) -> CertificateAuthority {
        CertificateAuthority::load(&CaFiles::read(dir, None).unwrap(), "https://localhost").unwrap()
    }

    /// Signs a leaf with the CA's issuing CA.
    fn leaf(ca: &CertificateAuthority) -> rustls_pki_types::CertificateDer<'static> {
        let key = KeyType::P256.generate().unwrap();
        let id = "spiffe://example.org/agent".parse().unwrap();
        let subject = SubjectKey::Verified(VerifiedPublicKey::from_own_key(&key).unwrap());
        let request = LeafRequest {
            spiffe_id: &id,
            key: &subject,
            dns_names: &[],
            ip_addresses: &[],
            ttl: Duration::from_secs(600),
        };
        ca.issue(&request, OffsetDateTime::now_utc()).unwrap().der
    }

    /// Whether `leaf` chains to one of `ca`'s roots through its issuing CAs.
    fn verifies(ca: &CertificateAuthority, leaf: &rustls_pki_types::CertificateDer<'_>) -> bool {
        webpki::EndEntityCert::try_from(leaf)
            .unwrap()
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                ca.anchors(),
                ca.intermediates(),
                UnixTime::now(),
                webpki::KeyUsage::client_auth(),
                None,
                None,
            )
            .is_ok()
    }

    fn pem_count(text: &str) -> usize {
        text.matches("BEGIN CERTIFICATE").count()
    }

    #[test]
    fn a_root_rotation_adds_then_activates_then_drops_and_leaves_keep_verifying() {
        let (_temp, dir) = initialised();
        let first = load(&dir);
        let old_leaf = leaf(&first);
        let now = OffsetDateTime::now_utc();

        // Step 1: in the bundle, signing nothing.
        let files = CaFiles::read(&dir, None).unwrap();
        let added = add_root(&dir, &files, None, now + Duration::from_secs(60), now).unwrap();
        let ca = load(&dir);
        assert_eq!(ca.bundle_sequence(), 2);
        assert_eq!(ca.root().key_id(), first.root().key_id());
        assert_eq!(ca.next_root().unwrap().0.key_id(), added.root.key_id());
        assert_eq!(ca.previous_roots().count(), 0);
        assert_eq!(pem_count(&ca.bundle_pem()), 2);
        // What issuance answers carry, escaped once at load.
        let unescaped: String =
            serde_json::from_str(&format!("\"{}\"", ca.bundle_pem_json())).unwrap();
        assert_eq!(unescaped, ca.bundle_pem());
        assert_eq!(
            pem_count(&std::fs::read_to_string(dir.bundle()).unwrap()),
            2
        );
        assert_eq!(ca.issuing().key_id(), first.issuing().key_id());
        assert!(verifies(&ca, &old_leaf));
        // The new root's key is owner-only, in an owner-only directory,
        // and no Debug output shows any key (invariant 5).
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let key_path = roots_dir(&dir).join(format!("{}.key", added.root.key_id()));
        assert_eq!(mode(&key_path), 0o600);
        assert_eq!(mode(&roots_dir(&dir)), 0o700);
        let files = CaFiles::read(&dir, None).unwrap();
        let key_text = std::fs::read_to_string(&key_path).unwrap();
        let key_body: String = key_text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        for debug in [format!("{files:?}"), format!("{ca:?}")] {
            assert!(!debug.contains("PRIVATE KEY"), "{debug}");
            assert!(!debug.contains(&key_body[..32]), "{debug}");
        }
        // One rotation at a time.
        let error = add_root(&dir, &files, None, now, now).unwrap_err();
        assert!(error.to_string().contains("under way"), "{error}");

        // Step 2: the new root signs the issuing CA; the old root stays.
        let activated = activate_root(&dir, &files, None, YEAR, now).unwrap();
        assert_eq!(activated.root_key_id, added.root.key_id());
        assert_eq!(activated.previous_root_key_id, first.root().key_id());
        let ca = load(&dir);
        assert_eq!(ca.bundle_sequence(), 2, "the roots did not change");
        assert_eq!(ca.root().key_id(), added.root.key_id());
        assert!(ca.next_root().is_none());
        let previous: Vec<&str> = ca.previous_roots().map(CaCertificate::key_id).collect();
        assert_eq!(previous, [first.root().key_id()]);
        assert_eq!(
            ca.issuing().authority_key_id(),
            Some(added.root.key_id()),
            "the new issuing CA is the new root's"
        );
        assert_eq!(
            ca.issuing_cas_under(first.root().key_id()),
            [first.issuing().key_id()]
        );
        let new_leaf = leaf(&ca);
        assert!(verifies(&ca, &old_leaf) && verifies(&ca, &new_leaf));
        // A root rotation is still under way while the old root is kept.
        let files = CaFiles::read(&dir, None).unwrap();
        let error = add_root(&dir, &files, None, now, now).unwrap_err();
        assert!(error.to_string().contains("under way"), "{error}");
        let error = drop_root(&dir, &files, added.root.key_id()).unwrap_err();
        assert!(error.to_string().contains("not a previous root"), "{error}");

        // Step 3: the old root leaves, with the issuing CAs it signed.
        assert_eq!(drop_root(&dir, &files, first.root().key_id()).unwrap(), 3);
        let ca = load(&dir);
        assert_eq!(ca.bundle_sequence(), 3);
        assert_eq!(ca.roots().count(), 1);
        assert_eq!(ca.retired().count(), 0);
        assert_eq!(
            pem_count(&std::fs::read_to_string(dir.bundle()).unwrap()),
            1
        );
        assert!(verifies(&ca, &new_leaf));
        assert!(
            !verifies(&ca, &old_leaf),
            "the old root is no longer trusted"
        );
        // And the next rotation may begin.
        let files = CaFiles::read(&dir, None).unwrap();
        add_root(&dir, &files, None, now, now).unwrap();
        assert_eq!(load(&dir).bundle_sequence(), 4);
    }

    #[test]
    fn loading_finishes_an_activation_and_ignores_a_root_whose_addition_was_cut_short() {
        let (_temp, dir) = initialised();
        let now = OffsetDateTime::now_utc();
        let files = CaFiles::read(&dir, None).unwrap();
        let added = add_root(&dir, &files, None, now, now).unwrap();
        // A crash after the issuing CA changed, before the state did.
        let files = CaFiles::read(&dir, None).unwrap();
        let next = files.other_roots().next().unwrap();
        rotate_issuing_under(&dir, &files, next, None, YEAR, now).unwrap();
        let ca = load(&dir);
        assert_eq!(ca.root().key_id(), added.root.key_id());
        assert!(ca.next_root().is_none());
        assert_eq!(ca.previous_roots().count(), 1);
        assert_eq!(
            RootsState::read(&dir).unwrap().active.as_deref(),
            Some(added.root.key_id())
        );

        // A root file the state does not know of is not trusted.
        let (_temp, dir) = initialised();
        let files = CaFiles::read(&dir, None).unwrap();
        add_root(&dir, &files, None, now, now).unwrap();
        std::fs::remove_file(dir.ca_dir().join("roots.json")).unwrap();
        let ca = load(&dir);
        assert_eq!(ca.roots().count(), 1);
        assert_eq!(ca.bundle_sequence(), 1);
        // And the bundle local clients trust says so again.
        assert_eq!(
            std::fs::read_to_string(dir.bundle()).unwrap(),
            ca.bundle_pem()
        );
    }

    #[test]
    fn loading_mends_a_bundle_file_that_a_crash_left_behind_the_state() {
        let (_temp, dir) = initialised();
        let before = std::fs::read_to_string(dir.bundle()).unwrap();
        let now = OffsetDateTime::now_utc();
        let files = CaFiles::read(&dir, None).unwrap();
        add_root(&dir, &files, None, now, now).unwrap();
        // The state written, the bundle not.
        std::fs::write(dir.bundle(), &before).unwrap();
        let ca = load(&dir);
        assert_eq!(ca.roots().count(), 2);
        assert_eq!(
            std::fs::read_to_string(dir.bundle()).unwrap(),
            ca.bundle_pem()
        );
    }
}
