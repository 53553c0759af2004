//! The CA certificate profile and the limits of leaf validity.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;

fn der(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).unwrap().into_contents()
}

/// (critical, ca, pathlen) of basicConstraints.
type BasicConstraintsSeen = (bool, bool, Option<u32>);
/// (critical, flags) of keyUsage.
type KeyUsageSeen = (bool, u16);

/// The CA-relevant extensions of a certificate, and whether it has an EKU.
fn ca_extensions(cert: &X509Certificate<'_>) -> (BasicConstraintsSeen, KeyUsageSeen, bool) {
    let mut bc = None;
    let mut ku = None;
    let mut has_eku = false;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(b) => {
                bc = Some((ext.critical, b.ca, b.path_len_constraint))
            }
            ParsedExtension::KeyUsage(k) => ku = Some((ext.critical, k.flags)),
            ParsedExtension::ExtendedKeyUsage(_) => has_eku = true,
            _ => {}
        }
    }
    (bc.unwrap(), ku.unwrap(), has_eku)
}

/// keyCertSign (bit 5) and cRLSign (bit 6), as x509-parser numbers them.
const CERT_AND_CRL_SIGN: u16 = (1 << 5) | (1 << 6);

#[test]
fn the_root_and_issuing_ca_follow_the_ca_profile() {
    let files = example_files();
    let root_der = der(&files.root_pem);
    let issuing_der = der(&files.issuing_pem);
    let (_, root) = X509Certificate::from_der(&root_der).unwrap();
    let (_, issuing) = X509Certificate::from_der(&issuing_der).unwrap();

    assert_eq!(
        ca_extensions(&root),
        ((true, true, None), (true, CERT_AND_CRL_SIGN), false)
    );
    assert_eq!(
        ca_extensions(&issuing),
        ((true, true, Some(0)), (true, CERT_AND_CRL_SIGN), false)
    );
    assert_eq!(root.subject(), root.issuer(), "the root is self-signed");
    assert_eq!(issuing.issuer(), root.subject());
    assert_ne!(
        issuing.subject(),
        root.subject(),
        "each CA has its own subject DN"
    );
    root.verify_signature(None).unwrap();
    issuing.verify_signature(Some(root.public_key())).unwrap();
    assert!(issuing.validity().not_after <= root.validity().not_after);
    assert_eq!(
        crate::svid::trust_domain_of_root(&root_der)
            .unwrap()
            .as_str(),
        "example.org"
    );
    assert!(
        issuing.subject_alternative_name().unwrap().is_none(),
        "no SAN, no name constraints on the issuing CA"
    );

    let other = example_files();
    let (other_root_der, other_issuing_der) = (der(&other.root_pem), der(&other.issuing_pem));
    let (_, other_root) = X509Certificate::from_der(&other_root_der).unwrap();
    let (_, other_issuing) = X509Certificate::from_der(&other_issuing_der).unwrap();
    assert_ne!(other_root.subject(), root.subject());
    assert_ne!(other_issuing.subject(), issuing.subject());
}

/// The example CA, an agent's SPIFFE ID, and a key of the agent's.
fn example_ca_agent_and_key() -> (CertificateAuthority, sigil_core::SpiffeId, SubjectKey) {
    let ca = CertificateAuthority::load(&example_files(), "https://localhost:8443").unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let public_key = crate::csr::VerifiedPublicKey::from_own_key(&key).unwrap();
    let id = "spiffe://example.org/agent".parse().unwrap();
    (ca, id, SubjectKey::Verified(public_key))
}

/// A request for an hour-long leaf, no DNS or IP names.
fn one_hour_leaf<'a>(id: &'a sigil_core::SpiffeId, key: &'a SubjectKey) -> LeafRequest<'a> {
    LeafRequest {
        spiffe_id: id,
        key,
        dns_names: &[],
        ip_addresses: &[],
        ttl: Duration::from_secs(3600),
    }
}

#[test]
fn a_leaf_never_outlives_its_issuer_and_none_is_signed_after_the_issuer_expired() {
    let (ca, id, key) = example_ca_agent_and_key();
    let request = one_hour_leaf(&id, &key);
    let issuer_end = ca.issuing().not_after();
    let near_the_end = issuer_end - Duration::from_secs(600);
    let issued = ca.issue(&request, near_the_end).unwrap();
    assert_eq!(
        issued.not_after, issuer_end,
        "cut at the issuer's end, not past it"
    );
    assert!(
        ca.issue(&request, issuer_end + Duration::from_secs(1))
            .is_err()
    );

    let foreign: sigil_core::SpiffeId = "spiffe://other.org/agent".parse().unwrap();
    let refused = LeafRequest {
        spiffe_id: &foreign,
        ..request
    };
    assert!(
        ca.issue(&refused, OffsetDateTime::now_utc()).is_err(),
        "no foreign trust domain"
    );
}

#[test]
fn leaf_serials_carry_their_issuance_time_so_they_sort_in_issuance_order() {
    let (ca, id, key) = example_ca_agent_and_key();
    let request = one_hour_leaf(&id, &key);
    // Not the clock: the time the CA is told it issues at, to the
    // millisecond, though the certificate's own times are whole seconds.
    let start = ca.issuing().not_after() - time::Duration::days(30);
    let mut serials = Vec::new();
    for step in [0, 1, 999, 1_000, 86_400_000] {
        let now = start + time::Duration::milliseconds(step);
        let issued = ca.issue(&request, now).unwrap();
        let (_, cert) = X509Certificate::from_der(&issued.der).unwrap();
        let serial = Serial::from_der_bytes(cert.raw_serial()).unwrap();
        assert_eq!(serial, issued.serial);
        let milliseconds = i128::from_be_bytes({
            let mut wide = [0u8; 16];
            wide[10..].copy_from_slice(&serial.as_bytes()[..6]);
            wide
        });
        assert_eq!(milliseconds, now.unix_timestamp_nanos() / 1_000_000);
        serials.push(serial);
    }
    assert!(serials.is_sorted(), "{serials:?}");
}
