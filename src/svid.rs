//! Reading SPIFFE IDs out of certificates: an X509-SVID names its identity
//! in exactly one URI SAN, and a Sigil root names its trust domain the same
//! way (`spiffe://<td>`, no path).

use sigil_core::{SpiffeId, TrustDomain};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::serial::Serial;

/// The one SPIFFE ID a certificate names (exactly one URI SAN).
pub use sigil_verifier::spiffe_id_of;

/// The SPIFFE ID and serial of an X509-SVID, DER.
///
/// # Errors
///
/// As [`spiffe_id_of`], or the serial is not one Sigil issues.
pub fn read_svid(der: &[u8]) -> Result<(SpiffeId, Serial), String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("certificate does not parse: {e}"))?;
    let serial = Serial::from_der_bytes(cert.raw_serial())
        .ok_or_else(|| "certificate serial is not one this CA issues".to_owned())?;
    Ok((spiffe_id_of(&cert)?, serial))
}

/// The DNS and IP SANs of a certificate, DER: the names an admin bound to
/// the identity, which a renewal carries over.
///
/// # Errors
///
/// The certificate does not parse, or its SAN extension does not.
pub fn bound_names(der: &[u8]) -> Result<(Vec<String>, Vec<std::net::IpAddr>), String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("certificate does not parse: {e}"))?;
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("subject alternative name: {e}"))?;
    for name in san.iter().flat_map(|san| san.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(name) => dns.push((*name).to_owned()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => ips.push(std::net::IpAddr::from(
                    <[u8; 4]>::try_from(*bytes).map_err(|_| "IP SAN".to_owned())?,
                )),
                16 => ips.push(std::net::IpAddr::from(
                    <[u8; 16]>::try_from(*bytes).map_err(|_| "IP SAN".to_owned())?,
                )),
                _ => return Err("an IP SAN of unexpected length".to_owned()),
            },
            _ => {}
        }
    }
    Ok((dns, ips))
}

/// The trust domain a root CA certificate, DER, names.
///
/// # Errors
///
/// The certificate does not parse or names no trust domain.
pub fn trust_domain_of_root(der: &[u8]) -> Result<TrustDomain, String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| format!("root certificate does not parse: {e}"))?;
    let id = spiffe_id_of(&cert).map_err(|e| format!("root CA: {e}"))?;
    if !id.path().is_empty() {
        return Err(format!("root CA names {id}, not a trust domain"));
    }
    Ok(id.trust_domain().clone())
}
