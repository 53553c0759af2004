//! The trust bundle: the roots a chain must end at, and the trust domain
//! they speak for.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, TrustAnchor};
use sigil_core::TrustDomain;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::Error;
use crate::svid::spiffe_id_of;

/// One root: its certificate, as a webpki trust anchor, and its key.
#[derive(Debug)]
pub(crate) struct Root {
    pub(crate) der: CertificateDer<'static>,
    pub(crate) anchor: TrustAnchor<'static>,
    /// The subject name, DER with its SEQUENCE header.
    pub(crate) subject: Box<[u8]>,
    /// The public key, SPKI DER.
    pub(crate) spki: Box<[u8]>,
}

/// The roots of one trust domain.
#[derive(Debug, Clone)]
pub(crate) struct Bundle {
    pub(crate) roots: Arc<[Root]>,
    pub(crate) anchors: Arc<[TrustAnchor<'static>]>,
    pub(crate) trust_domain: TrustDomain,
}

impl Bundle {
    /// Reads roots from DER certificates. The trust domain is the one the
    /// roots name in their URI SAN (`spiffe://<td>`), or the one given. A
    /// bundle speaks for one trust domain: roots that name different ones,
    /// or another than the one given, are refused, since any root could
    /// otherwise sign IDs of the trust domain the verifier checks.
    pub(crate) fn new(
        ders: Vec<CertificateDer<'static>>,
        trust_domain: Option<TrustDomain>,
    ) -> Result<Self, Error> {
        if ders.is_empty() {
            return Err(Error::Certificate(
                "the trust bundle holds no certificate".to_owned(),
            ));
        }
        let mut named: Option<TrustDomain> = trust_domain;
        let mut roots = Vec::with_capacity(ders.len());
        for der in ders {
            let (_, cert) = X509Certificate::from_der(&der)
                .map_err(|e| Error::Certificate(format!("bundle root does not parse: {e}")))?;
            if !cert.is_ca() {
                return Err(Error::Certificate(
                    "a bundle certificate is not a CA".to_owned(),
                ));
            }
            if let Ok(id) = spiffe_id_of(&cert) {
                match &named {
                    Some(td) if td != id.trust_domain() => {
                        return Err(Error::Certificate(format!(
                            "the bundle mixes trust domains: a root names {}, not {td}",
                            id.trust_domain()
                        )));
                    }
                    Some(_) => {}
                    None => named = Some(id.trust_domain().clone()),
                }
            }
            let subject = Box::from(cert.subject().as_raw());
            let spki = Box::from(cert.public_key().raw);
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| Error::Certificate(format!("bundle root: {e}")))?
                .to_owned();
            roots.push(Root {
                der,
                anchor,
                subject,
                spki,
            });
        }
        let trust_domain = named.ok_or_else(|| {
            Error::Certificate(
                "the bundle's roots name no trust domain (URI SAN spiffe://<td>); set one"
                    .to_owned(),
            )
        })?;
        let anchors = roots.iter().map(|root| root.anchor.clone()).collect();
        Ok(Self {
            roots: roots.into(),
            anchors,
            trust_domain,
        })
    }

    /// Reads roots from PEM.
    pub(crate) fn from_pem(text: &[u8], trust_domain: Option<TrustDomain>) -> Result<Self, Error> {
        Self::new(certificates_from_pem(text)?, trust_domain)
    }

    /// The root with this subject name, if any.
    pub(crate) fn root_named(&self, subject: &[u8]) -> Option<&Root> {
        self.roots.iter().find(|root| *root.subject == *subject)
    }

    /// The root behind a trust anchor webpki ended a path at.
    pub(crate) fn root_of(&self, anchor: &TrustAnchor<'_>) -> Option<&Root> {
        self.roots.iter().find(|root| {
            root.anchor.subject_public_key_info == anchor.subject_public_key_info
                && root.anchor.subject == anchor.subject
        })
    }

    /// The roots, PEM.
    pub(crate) fn ders(&self) -> impl Iterator<Item = &CertificateDer<'static>> {
        self.roots.iter().map(|root| &root.der)
    }
}

/// Every CERTIFICATE block of a PEM text.
pub(crate) fn certificates_from_pem(text: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    Ok(pem::parse_many(text)
        .map_err(|e| Error::Pem(format!("{e}")))?
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(|block| CertificateDer::from(block.into_contents()))
        .collect())
}

/// `sha256:<64 hex digits>` of a certificate's DER.
pub(crate) fn fingerprint(der: &[u8]) -> String {
    fingerprint_text(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

/// `sha256:<lowercase hex>` of a SHA-256 digest, as `sigil fingerprint`
/// prints it.
pub(crate) fn fingerprint_text(digest: &[u8]) -> String {
    let mut text = String::from("sha256:");
    for byte in digest {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}
