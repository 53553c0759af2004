//! The verifier against trust material built here with rcgen: chain and
//! SVID rules, CRL loading (newest per issuer, signatures checked once),
//! stale and missing CRLs, revoked intermediates, and the live-connection
//! query.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::{CertRevocationListError, CertificateError};
use sigil_verifier::{Error, PeerIdentity, Policy, SpiffeClientVerifier, StaleCrls, TrustSource};
use time::{Duration, OffsetDateTime};

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
}

impl Ca {
    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    fn pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.der.to_vec()))
    }

    /// A CRL listing `serials`, numbered `number`, current for `valid`.
    fn crl(&self, number: u64, serials: &[&[u8]], valid: Duration) -> String {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - Duration::days(1),
            next_update: now + valid,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|serial| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: now - Duration::minutes(1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer()).unwrap().pem().unwrap()
    }
}

fn ca_params(name: &str, uri: Option<&str>, pathlen: Option<u8>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(match pathlen {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    if let Some(uri) = uri {
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    }
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(30);
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params
}

fn random_serial() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    bytes[0] = 0x01 + bytes[0] % 0x7f;
    bytes
}

/// A root (`spiffe://<td>`) and an issuing CA under it.
struct Pki {
    root: Ca,
    issuing: Ca,
}

impl Pki {
    fn new(td: &str) -> Self {
        let root_params = ca_params(&format!("{td} root"), Some(&format!("spiffe://{td}")), None);
        let root_key = KeyPair::generate().unwrap();
        let root_der = root_params.self_signed(&root_key).unwrap().der().clone();
        let root = Ca {
            params: root_params,
            key: root_key,
            der: root_der,
        };
        let issuing_params = ca_params(&format!("{td} issuing"), None, Some(0));
        let issuing_key = KeyPair::generate().unwrap();
        let issuing_der = issuing_params
            .signed_by(&issuing_key, &root.issuer())
            .unwrap()
            .der()
            .clone();
        let issuing = Ca {
            params: issuing_params,
            key: issuing_key,
            der: issuing_der,
        };
        Self { root, issuing }
    }

    /// A leaf signed by the issuing CA, valid from `from` to `until`
    /// relative to now, naming `uris`; returns the chain and serial.
    fn leaf_with(
        &self,
        uris: &[&str],
        from: Duration,
        until: Duration,
        ca: bool,
    ) -> (Vec<CertificateDer<'static>>, [u8; 16]) {
        let serial = random_serial();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = uris
            .iter()
            .map(|uri| SanType::URI((*uri).try_into().unwrap()))
            .collect();
        params.is_ca = match ca {
            true => IsCa::Ca(BasicConstraints::Unconstrained),
            false => IsCa::ExplicitNoCa,
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now + from;
        params.not_after = now + until;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let key = KeyPair::generate().unwrap();
        let der = params
            .signed_by(&key, &self.issuing.issuer())
            .unwrap()
            .der()
            .clone();
        (vec![der, self.issuing.der.clone()], serial)
    }

    fn leaf(&self, uri: &str) -> (Vec<CertificateDer<'static>>, [u8; 16]) {
        self.leaf_with(&[uri], -Duration::minutes(5), Duration::hours(1), false)
    }

    fn source(&self) -> TrustSource {
        TrustSource::from_pem(self.root.pem().as_bytes()).unwrap()
    }

    /// A source holding empty, current CRLs of both CAs.
    fn source_with_crls(&self) -> TrustSource {
        let crls = self.root.crl(1, &[], Duration::hours(1))
            + &self.issuing.crl(2, &[], Duration::hours(1));
        self.source().with_crls_pem(crls.as_bytes()).unwrap()
    }
}

fn verifier(source: &TrustSource, policy: &str) -> std::sync::Arc<SpiffeClientVerifier> {
    SpiffeClientVerifier::builder(source.clone(), Policy::deny_all().allow(policy).unwrap())
        .client_verifier()
}

fn verify(
    verifier: &SpiffeClientVerifier,
    chain: &[CertificateDer<'static>],
) -> Result<PeerIdentity, rustls::Error> {
    verifier.verify(&chain[0], &chain[1..], UnixTime::now())
}

fn certificate_error(result: Result<PeerIdentity, rustls::Error>) -> CertificateError {
    match result {
        Err(rustls::Error::InvalidCertificate(error)) => error,
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

#[test]
fn an_allowed_svid_passes_and_names_its_identity() {
    let pki = Pki::new("td.test");
    let (chain, serial) = pki.leaf("spiffe://td.test/agents/a");
    let identity = verify(
        &verifier(&pki.source_with_crls(), "spiffe://td.test/agents/*"),
        &chain,
    )
    .unwrap();
    assert_eq!(identity.spiffe_id().as_str(), "spiffe://td.test/agents/a");
    assert_eq!(identity.serial(), serial);
}

#[test]
fn an_id_outside_the_policy_is_denied_access() {
    let pki = Pki::new("td.test");
    let (chain, _) = pki.leaf("spiffe://td.test/agents/a");
    let error = certificate_error(verify(
        &verifier(&pki.source_with_crls(), "spiffe://td.test/tools/*"),
        &chain,
    ));
    assert_eq!(error, CertificateError::ApplicationVerificationFailure);
    assert_eq!(
        rustls::AlertDescription::from(error),
        rustls::AlertDescription::AccessDenied
    );
}

#[test]
fn a_revoked_leaf_is_refused_and_is_revoked_answers_for_open_connections() {
    let pki = Pki::new("td.test");
    let (chain, serial) = pki.leaf("spiffe://td.test/a");
    let source = pki.source_with_crls();
    let verifier = verifier(&source, "spiffe://td.test/*");
    let identity = verify(&verifier, &chain).unwrap();
    let mut updates = source.subscribe();
    assert!(!source.is_revoked(&identity));

    let replaced = source
        .update_crls_pem(
            pki.issuing
                .crl(3, &[&serial], Duration::hours(1))
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(replaced, 1);
    assert!(updates.has_changed().unwrap(), "the watch channel ticks");
    updates.mark_unchanged();
    assert!(source.is_revoked(&identity));
    assert_eq!(
        certificate_error(verify(&verifier, &chain)),
        CertificateError::Revoked
    );
}

#[test]
fn an_older_crl_never_replaces_a_newer_one() {
    let pki = Pki::new("td.test");
    let (chain, serial) = pki.leaf("spiffe://td.test/a");
    let source = pki.source_with_crls();
    source
        .update_crls_pem(
            pki.issuing
                .crl(5, &[&serial], Duration::hours(1))
                .as_bytes(),
        )
        .unwrap();
    // A stale copy arriving late (number 4, without the serial) is ignored.
    let replaced = source
        .update_crls_pem(pki.issuing.crl(4, &[], Duration::hours(1)).as_bytes())
        .unwrap();
    assert_eq!(replaced, 0);
    assert_eq!(source.crl_number(), Some(5));
    assert_eq!(
        certificate_error(verify(&verifier(&source, "spiffe://td.test/*"), &chain)),
        CertificateError::Revoked
    );
}

#[test]
fn a_crl_with_a_bad_signature_is_refused_at_load_once_its_issuer_is_known() {
    let pki = Pki::new("td.test");
    let impostor = Pki::new("td.test");
    let (chain, serial) = pki.leaf("spiffe://td.test/a");
    let source = pki.source_with_crls();
    let verifier = verifier(&source, "spiffe://td.test/*");
    // The first handshake through the issuing CA checks its CRL and learns
    // its key.
    verify(&verifier, &chain).unwrap();

    // Same issuer name, other key: refused, and nothing changes.
    let forged = impostor.issuing.crl(9, &[], Duration::hours(1));
    let error = source.update_crls_pem(forged.as_bytes()).unwrap_err();
    assert!(matches!(error, Error::Crl(_)), "{error}");
    assert_eq!(source.crl_number(), Some(2));
    // And a forged root CRL is refused at once: roots are always known.
    let forged_root = impostor.root.crl(10, &[], Duration::hours(1));
    assert!(source.update_crls_pem(forged_root.as_bytes()).is_err());
    source
        .update_crls_pem(
            pki.issuing
                .crl(11, &[&serial], Duration::hours(1))
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(
        certificate_error(verify(&verifier, &chain)),
        CertificateError::Revoked
    );
}

#[test]
fn a_crl_whose_issuer_is_not_yet_known_is_checked_at_the_first_handshake() {
    let pki = Pki::new("td.test");
    let impostor = Pki::new("td.test");
    let (chain, _) = pki.leaf("spiffe://td.test/a");
    let crls = pki.root.crl(1, &[], Duration::hours(1))
        + &impostor.issuing.crl(2, &[], Duration::hours(1));
    let source = pki.source().with_crls_pem(crls.as_bytes()).unwrap();
    let result = verify(&verifier(&source, "spiffe://td.test/*"), &chain);
    assert!(
        matches!(
            result,
            Err(rustls::Error::InvalidCertRevocationList(
                CertRevocationListError::BadSignature
            ))
        ),
        "{result:?}"
    );
}

#[test]
fn a_revoked_intermediate_revokes_its_leaves() {
    let pki = Pki::new("td.test");
    let (chain, _) = pki.leaf("spiffe://td.test/a");
    let source = pki.source_with_crls();
    let verifier = verifier(&source, "spiffe://td.test/*");
    let identity = verify(&verifier, &chain).unwrap();
    let intermediate_serial = pki.issuing.params.serial_number.clone().unwrap();
    source
        .update_crls_pem(
            pki.root
                .crl(7, &[intermediate_serial.as_ref()], Duration::hours(1))
                .as_bytes(),
        )
        .unwrap();
    assert!(source.is_revoked(&identity));
    assert_eq!(
        certificate_error(verify(&verifier, &chain)),
        CertificateError::Revoked
    );
}

#[test]
fn an_issuer_without_a_crl_is_refused_unless_allowed() {
    let pki = Pki::new("td.test");
    let (chain, _) = pki.leaf("spiffe://td.test/a");
    let source = pki.source();
    assert_eq!(
        certificate_error(verify(&verifier(&source, "spiffe://td.test/*"), &chain)),
        CertificateError::UnknownRevocationStatus
    );
    let lenient = SpiffeClientVerifier::builder(
        source,
        Policy::deny_all().allow("spiffe://td.test/*").unwrap(),
    )
    .allow_missing_crls()
    .client_verifier();
    verify(&lenient, &chain).unwrap();
}

#[test]
fn a_stale_crl_is_refused_after_the_grace_unless_told_otherwise() {
    let pki = Pki::new("td.test");
    let (chain, _) = pki.leaf("spiffe://td.test/a");
    // Both CRLs went past nextUpdate 10 minutes ago.
    let crls = pki.root.crl(1, &[], -Duration::minutes(10))
        + &pki.issuing.crl(2, &[], -Duration::minutes(10));
    let source = pki.source().with_crls_pem(crls.as_bytes()).unwrap();
    let policy = Policy::deny_all().allow("spiffe://td.test/*").unwrap();
    let strict = SpiffeClientVerifier::builder(source.clone(), policy.clone()).client_verifier();
    assert_eq!(
        certificate_error(verify(&strict, &chain)),
        CertificateError::ExpiredRevocationList
    );
    let patient = SpiffeClientVerifier::builder(source.clone(), policy.clone())
        .stale_crl_grace(std::time::Duration::from_secs(3600))
        .client_verifier();
    verify(&patient, &chain).unwrap();
    let tolerant = SpiffeClientVerifier::builder(source, policy)
        .stale_crls(StaleCrls::UseLastKnown)
        .client_verifier();
    verify(&tolerant, &chain).unwrap();
}

#[test]
fn svid_rules_are_enforced() {
    let pki = Pki::new("td.test");
    let source = pki.source_with_crls();
    let verifier = verifier(&source, "spiffe://td.test/*");
    let (two_uris, _) = pki.leaf_with(
        &["spiffe://td.test/a", "spiffe://td.test/b"],
        -Duration::minutes(5),
        Duration::hours(1),
        false,
    );
    assert!(matches!(
        certificate_error(verify(&verifier, &two_uris)),
        CertificateError::Other(_)
    ));
    let (not_spiffe, _) = pki.leaf_with(
        &["https://td.test/a"],
        -Duration::minutes(5),
        Duration::hours(1),
        false,
    );
    assert!(matches!(
        certificate_error(verify(&verifier, &not_spiffe)),
        CertificateError::Other(_)
    ));
    let (expired, _) = pki.leaf_with(
        &["spiffe://td.test/a"],
        -Duration::hours(2),
        -Duration::hours(1),
        false,
    );
    assert_eq!(
        certificate_error(verify(&verifier, &expired)),
        CertificateError::Expired
    );
}

#[test]
fn a_foreign_trust_domain_or_ca_is_refused() {
    let pki = Pki::new("td.test");
    let other = Pki::new("other.test");
    let source = pki.source_with_crls();
    let verifier = verifier(&source, "spiffe://td.test/*");
    let (foreign, _) = other.leaf("spiffe://other.test/a");
    assert_eq!(
        certificate_error(verify(&verifier, &foreign)),
        CertificateError::UnknownIssuer
    );
    // Our own CA signing a name in another trust domain.
    let (misnamed, _) = pki.leaf("spiffe://other.test/a");
    assert!(matches!(
        certificate_error(verify(&verifier, &misnamed)),
        CertificateError::Other(_)
    ));
}

#[test]
fn malformed_trust_material_is_refused_with_a_clear_error() {
    assert!(matches!(
        TrustSource::from_pem(b"not pem at all"),
        Err(Error::Certificate(_) | Error::Pem(_))
    ));
    let pki = Pki::new("td.test");
    let source = pki.source_with_crls();
    let garbage_crl = pem::encode(&pem::Pem::new(
        "X509 CRL",
        vec![0x30, 0x03, 0x02, 0x01, 0x01],
    ));
    assert!(matches!(
        source.update_crls_pem(garbage_crl.as_bytes()),
        Err(Error::Crl(_))
    ));
    assert_eq!(source.crl_number(), Some(2), "nothing changed");
}
