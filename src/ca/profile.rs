//! The certificate profile: what every root, issuing CA and X509-SVID says.
//! See DESIGN.md, "Trust hierarchy and certificate profile".

use std::time::Duration;

use anyhow::anyhow;
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use sigil_core::TrustDomain;
use time::OffsetDateTime;

use super::LeafRequest;
use crate::serial::Serial;

/// How far before "now" a leaf's validity starts, so that a relying party
/// whose clock is a little behind accepts it at once.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(30);

/// Certificates carry whole seconds; so do the records about them.
pub(crate) fn whole_seconds(time: OffsetDateTime) -> OffsetDateTime {
    time.replace_nanosecond(0).unwrap_or(time)
}

/// The first 8 hex digits of a key's identifier, so that each CA
/// certificate gets its own subject DN (verifiers pick issuers and CRLs by
/// name).
fn short_key_id(key: &impl PublicKeyData) -> String {
    // rcgen derives the SKI with its default method (truncated SHA-256).
    let key_id = CertificateParams::default().key_identifier(key);
    hex::encode(key_id.get(..4).unwrap_or(&key_id))
}

fn ca_params(
    common_name: &str,
    serial: Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    is_ca: IsCa,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Sigil");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = is_ca;
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // No EKU on CA certificates (webpki checks it on intermediates), and no
    // name constraints (webpki fails closed on URI constraints).
    params
}

/// The root: self-signed, CA without path length limit, its SPIFFE ID
/// `spiffe://<td>` as the only SAN.
pub(crate) fn root_params(
    trust_domain: &TrustDomain,
    key: &impl PublicKeyData,
    serial: Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> anyhow::Result<CertificateParams> {
    let name = format!("Sigil root CA {}", short_key_id(key));
    let mut params = ca_params(
        &name,
        serial,
        not_before,
        not_after,
        IsCa::Ca(BasicConstraints::Unconstrained),
    );
    let uri = trust_domain.id().to_string();
    params.subject_alt_names = vec![SanType::URI(
        uri.try_into().map_err(|e| anyhow!("root SAN: {e}"))?,
    )];
    Ok(params)
}

/// An issuing CA: signed by the root, path length 0.
pub(crate) fn issuing_params(
    key: &impl PublicKeyData,
    serial: Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let name = format!("Sigil issuing CA {}", short_key_id(key));
    let mut params = ca_params(
        &name,
        serial,
        not_before,
        not_after,
        IsCa::Ca(BasicConstraints::Constrained(0)),
    );
    params.use_authority_key_identifier_extension = true;
    params
}

/// Everything a leaf needs beyond the request.
pub(crate) struct LeafFields<'a> {
    pub(crate) request: &'a LeafRequest<'a>,
    pub(crate) serial: Serial,
    pub(crate) now: OffsetDateTime,
    pub(crate) issuer_not_before: OffsetDateTime,
    pub(crate) issuer_not_after: OffsetDateTime,
    pub(crate) crl_url: &'a str,
}

/// An X509-SVID: empty subject (so the SAN is critical), exactly one URI SAN,
/// CA:false and digitalSignature (both critical), serverAuth + clientAuth,
/// SKI/AKI, and the issuer's CRL distribution point.
pub(crate) fn leaf_params(fields: LeafFields<'_>) -> anyhow::Result<CertificateParams> {
    let LeafFields {
        request,
        serial,
        now,
        issuer_not_before,
        issuer_not_after,
        crl_url,
    } = fields;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
    params.not_before = (now - CLOCK_SKEW_ALLOWANCE).max(issuer_not_before);
    let ttl = time::Duration::try_from(request.ttl).map_err(|_| anyhow!("TTL out of range"))?;
    let until = now
        .checked_add(ttl)
        .ok_or_else(|| anyhow!("TTL out of range"))?;
    params.not_after = until.min(issuer_not_after);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.crl_distribution_points = vec![CrlDistributionPoint {
        uris: vec![crl_url.to_owned()],
    }];
    let mut sans = Vec::with_capacity(1 + request.dns_names.len() + request.ip_addresses.len());
    sans.push(SanType::URI(
        request
            .spiffe_id
            .to_string()
            .try_into()
            .map_err(|e| anyhow!("URI SAN: {e}"))?,
    ));
    for name in request.dns_names {
        sans.push(SanType::DnsName(
            name.clone()
                .try_into()
                .map_err(|e| anyhow!("DNS SAN: {e}"))?,
        ));
    }
    sans.extend(request.ip_addresses.iter().copied().map(SanType::IpAddress));
    params.subject_alt_names = sans;
    Ok(params)
}
