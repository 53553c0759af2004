//! The verifier against trust material built here with rcgen: chain and
//! SVID rules, CRL loading (newest per issuer, signatures checked once),
//! stale and missing CRLs, revoked intermediates, and the live-connection
//! query.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pki;

use pki::{Pki, certificate_error, verifier, verify};
use rustls::{CertRevocationListError, CertificateError};
use sigil_verifier::{Error, Policy, SpiffeClientVerifier, StaleCrls, TrustSource};
use time::Duration;

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

#[test]
fn a_bundle_speaks_for_one_trust_domain() {
    let ours = Pki::new("td.test");
    let partner = Pki::new("partner.test");
    let mixed = ours.root.pem() + &partner.root.pem();
    assert!(matches!(
        TrustSource::from_pem(mixed.as_bytes()),
        Err(Error::Certificate(_))
    ));
    // Nor may a root naming another domain be claimed for ours.
    assert!(matches!(
        TrustSource::from_pem_for(partner.root.pem().as_bytes(), "td.test".parse().unwrap()),
        Err(Error::Certificate(_))
    ));
}

#[test]
fn a_wrong_issuer_key_never_poisons_the_right_one() {
    // Two CAs of one trust domain whose issuing CAs share a name: the
    // first handshake through the impostor must not make the CRL refuse
    // the genuine issuer's peers.
    let pki = Pki::new("td.test");
    let twin = Pki::new("td.test");
    let bundle = pki.root.pem() + &twin.root.pem();
    let crls =
        pki.root.crl(1, &[], Duration::hours(1)) + &pki.issuing.crl(2, &[], Duration::hours(1));
    let source = TrustSource::from_pem(bundle.as_bytes())
        .unwrap()
        .with_crls_pem(crls.as_bytes())
        .unwrap();
    let verifier = verifier(&source, "spiffe://td.test/*");
    let (twin_chain, _) = twin.leaf("spiffe://td.test/twin");
    assert!(verify(&verifier, &twin_chain).is_err());
    let (chain, _) = pki.leaf("spiffe://td.test/a");
    verify(&verifier, &chain).unwrap();
}

#[test]
fn a_crl_scoped_by_an_issuing_distribution_point_is_refused() {
    let pki = Pki::new("td.test");
    let now = time::OffsetDateTime::now_utc();
    let scoped = rcgen::CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::hours(1),
        crl_number: rcgen::SerialNumber::from(3u64),
        issuing_distribution_point: Some(rcgen::CrlIssuingDistributionPoint {
            distribution_point: rcgen::CrlDistributionPoint {
                uris: vec!["https://elsewhere.test/crl".to_owned()],
            },
            scope: None,
        }),
        revoked_certs: Vec::new(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&pki.issuing.issuer())
    .unwrap()
    .pem()
    .unwrap();
    let source = pki.source_with_crls();
    assert!(matches!(
        source.update_crls_pem(scoped.as_bytes()),
        Err(Error::Crl(_))
    ));
}

#[test]
fn a_leaf_naming_only_the_trust_domain_is_refused() {
    let pki = Pki::new("td.test");
    let (chain, _) = pki.leaf("spiffe://td.test");
    let lenient = SpiffeClientVerifier::builder(
        pki.source_with_crls(),
        sigil_verifier::danger::allow_any_spiffe_id(),
    )
    .client_verifier();
    assert!(matches!(
        certificate_error(verify(&lenient, &chain)),
        CertificateError::Other(_)
    ));
}

#[test]
fn an_endless_grace_never_expires_and_never_panics() {
    let pki = Pki::new("td.test");
    let (chain, _) = pki.leaf("spiffe://td.test/a");
    let crls = pki.root.crl(1, &[], -Duration::minutes(10))
        + &pki.issuing.crl(2, &[], -Duration::minutes(10));
    let source = pki.source().with_crls_pem(crls.as_bytes()).unwrap();
    let verifier = SpiffeClientVerifier::builder(
        source,
        Policy::deny_all().allow("spiffe://td.test/*").unwrap(),
    )
    .stale_crl_grace(std::time::Duration::MAX)
    .client_verifier();
    verify(&verifier, &chain).unwrap();
}

#[test]
fn credentials_never_show_their_private_key() {
    let pki = Pki::new("td.test");
    let (chain, key) = pki.leaf_with_key(&["spiffe://td.test/a"], Duration::hours(1));
    let chain_pem: String = chain
        .iter()
        .map(|der| pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec())))
        .collect();
    let key_pem = key.serialize_pem();
    let credentials =
        sigil_verifier::Credentials::from_pem(chain_pem.as_bytes(), key_pem.as_bytes()).unwrap();
    let shown = format!("{credentials:?}");
    let body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(
        !shown.contains(&body[..20]) && !shown.contains("PRIVATE"),
        "{shown}"
    );
}
