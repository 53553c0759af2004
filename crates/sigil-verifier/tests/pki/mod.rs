//! A PKI built with rcgen for the tests: a root naming a trust domain, an
//! issuing CA, leaves and CRLs.
#![allow(dead_code, unreachable_pub)]

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType, SerialNumber,
};
use rustls::CertificateError;
use rustls::pki_types::{CertificateDer, UnixTime};
use sigil_verifier::{PeerIdentity, Policy, SpiffeClientVerifier, TrustSource};
use time::{Duration, OffsetDateTime};

pub struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub der: CertificateDer<'static>,
}

impl Ca {
    pub fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    pub fn pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.der.to_vec()))
    }

    /// A CRL listing `serials`, numbered `number`, current for `valid`.
    pub fn crl(&self, number: u64, serials: &[&[u8]], valid: Duration) -> String {
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

pub fn ca_params(name: &str, uri: Option<&str>, pathlen: Option<u8>) -> CertificateParams {
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

pub fn random_serial() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    bytes[0] = 0x01 + bytes[0] % 0x7f;
    bytes
}

/// A root (`spiffe://<td>`) and an issuing CA under it.
pub struct Pki {
    pub root: Ca,
    pub issuing: Ca,
}

impl Pki {
    pub fn new(td: &str) -> Self {
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
    pub fn leaf_with(
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

    pub fn leaf(&self, uri: &str) -> (Vec<CertificateDer<'static>>, [u8; 16]) {
        self.leaf_with(&[uri], -Duration::minutes(5), Duration::hours(1), false)
    }

    pub fn source(&self) -> TrustSource {
        TrustSource::from_pem(self.root.pem().as_bytes()).unwrap()
    }

    /// A source holding empty, current CRLs of both CAs.
    pub fn source_with_crls(&self) -> TrustSource {
        let crls = self.root.crl(1, &[], Duration::hours(1))
            + &self.issuing.crl(2, &[], Duration::hours(1));
        self.source().with_crls_pem(crls.as_bytes()).unwrap()
    }
}

pub fn verifier(source: &TrustSource, policy: &str) -> std::sync::Arc<SpiffeClientVerifier> {
    SpiffeClientVerifier::builder(source.clone(), Policy::deny_all().allow(policy).unwrap())
        .client_verifier()
}

pub fn verify(
    verifier: &SpiffeClientVerifier,
    chain: &[CertificateDer<'static>],
) -> Result<PeerIdentity, rustls::Error> {
    verifier.verify(&chain[0], &chain[1..], UnixTime::now())
}

pub fn certificate_error(result: Result<PeerIdentity, rustls::Error>) -> CertificateError {
    match result {
        Err(rustls::Error::InvalidCertificate(error)) => error,
        other => panic!("expected a certificate error, got {other:?}"),
    }
}

impl Pki {
    /// A leaf valid from 5 minutes ago for `valid`, and its key.
    pub fn leaf_with_key(
        &self,
        uris: &[&str],
        valid: Duration,
    ) -> (Vec<CertificateDer<'static>>, KeyPair) {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = uris
            .iter()
            .map(|uri| SanType::URI((*uri).try_into().unwrap()))
            .collect();
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + valid;
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        let key = KeyPair::generate().unwrap();
        let der = params
            .signed_by(&key, &self.issuing.issuer())
            .unwrap()
            .der()
            .clone();
        (vec![der, self.issuing.der.clone()], key)
    }
}

/// The serial of a certificate, as its INTEGER's bytes.
pub fn serial_of(der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial().to_vec()
}
