//! The CA and the SVIDs it issues (or that are forged with its issuing key).

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use sigil_verifier::{Credentials, LiveSource, PeerIdentity, TrustSource};

use crate::common::{DataDir, Server, chain_der, p256_csr, sigil, stderr, stdout};

/// A running CA with its data dir.
pub(crate) struct Ca {
    pub(crate) dir: DataDir,
    pub(crate) server: Server,
}

impl Ca {
    pub(crate) fn start() -> Self {
        let dir = DataDir::init();
        let server = dir.start();
        Self { dir, server }
    }

    /// A second, independent CA for `trust_domain` (`sigil init` with its
    /// own root and issuing keys).
    pub(crate) fn start_for(trust_domain: &str) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("data");
        let output = sigil(&[
            "init",
            "--trust-domain",
            trust_domain,
            "--data-dir",
            path.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "init: {}", stderr(&output));
        let dir = DataDir {
            fingerprint: stdout(&output).trim().to_owned(),
            temp,
            path,
        };
        let server = dir.start();
        Self { dir, server }
    }

    /// Issues an SVID through a join token created with `token` (the body of
    /// `POST /admin/v1/join-tokens`). Synchronous: call it outside the
    /// async part of a test.
    pub(crate) fn issue_with(&self, token: Value) -> Svid {
        let token = self.server.token_with(token);
        let (key, csr) = p256_csr();
        let response = self.server.redeem(&token, &csr);
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        let body: Value = response.json().unwrap();
        Svid {
            spiffe_id: body["spiffe_id"].as_str().unwrap().to_owned(),
            serial: body["serial"].as_str().unwrap().to_owned(),
            chain_pem: body["cert_chain_pem"].as_str().unwrap().to_owned(),
            key_pem: key.serialize_pem(),
        }
    }

    pub(crate) fn issue(&self, spiffe_id: &str) -> Svid {
        self.issue_with(json!({"spiffe_id": spiffe_id}))
    }

    /// Signs `params` for a fresh P-256 key with the CA's real issuing CA
    /// (`ca/issuing.pem` + `ca/issuing.key`); the chain is that leaf and the
    /// issuing CA, as the CA itself would hand it out.
    pub(crate) fn forge(&self, params: &CertificateParams) -> Svid {
        let issuing_pem = self.dir.read("ca/issuing.pem");
        let issuer = Issuer::from_ca_cert_pem(
            &issuing_pem,
            KeyPair::from_pem(&self.dir.read("ca/issuing.key")).unwrap(),
        )
        .unwrap();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let spiffe_id = params
            .subject_alt_names
            .iter()
            .find_map(|san| match san {
                SanType::URI(uri) => Some(uri.as_str().to_owned()),
                _ => None,
            })
            .unwrap_or_default();
        let serial = params
            .serial_number
            .as_ref()
            .map(|s| hex::encode(s.to_bytes()))
            .unwrap_or_default();
        Svid {
            spiffe_id,
            serial,
            chain_pem: format!("{}{}", cert.pem(), issuing_pem),
            key_pem: key.serialize_pem(),
        }
    }

    /// The issuing CA's own certificate and key, presented as if they were
    /// a workload's SVID.
    pub(crate) fn issuing_ca_as_svid(&self) -> Svid {
        Svid {
            spiffe_id: String::new(),
            serial: String::new(),
            chain_pem: self.dir.read("ca/issuing.pem"),
            key_pem: self.dir.read("ca/issuing.key"),
        }
    }

    /// A trust source that follows this CA, bootstrapped from the root
    /// fingerprint `sigil init` printed.
    pub(crate) async fn live_source(&self) -> TrustSource {
        LiveSource::from_fingerprint(&self.server.url, &self.dir.fingerprint)
            .unwrap()
            .start()
            .await
            .unwrap()
    }

    /// Revokes one certificate through the admin API.
    pub(crate) async fn revoke(&self, serial: &str) {
        let response = self
            .server
            .admin()
            .post_json(
                "/admin/v1/revocations",
                &json!({"serial": serial, "reason": "keyCompromise"}),
            )
            .await
            .unwrap();
        assert_eq!(
            response.status,
            200,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
        let body: Value = response.json().unwrap();
        assert_eq!(body["revoked"], json!([serial]));
    }
}

/// A chain (leaf first) and its key, PEM.
#[derive(Clone)]
pub(crate) struct Svid {
    pub(crate) spiffe_id: String,
    pub(crate) serial: String,
    chain_pem: String,
    key_pem: String,
}

impl Svid {
    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        chain_der(&self.chain_pem)
            .into_iter()
            .map(CertificateDer::from)
            .collect()
    }

    pub(crate) fn credentials(&self) -> Credentials {
        Credentials::from_pem(self.chain_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
    }

    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        let key = KeyPair::from_pem(&self.key_pem).unwrap();
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
    }

    /// Who this SVID says its holder is, as a server would record it.
    pub(crate) fn identity(&self) -> PeerIdentity {
        PeerIdentity::from_verified_chain(&self.chain()).unwrap()
    }

    /// Writes `NAME.pem` and `NAME.key` (mode 0600) into `dir`.
    pub(crate) fn write_files(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.chain_pem).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .unwrap();
        std::io::Write::write_all(&mut file, self.key_pem.as_bytes()).unwrap();
        (cert, key)
    }
}

/// 16 random bytes, first byte in 0x01..=0x7f: the shape of the CA's serials
/// (whose first six bytes are a time, which this verifier never reads).
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    bytes[0] = (bytes[0] & 0x7f).max(1);
    SerialNumber::from_slice(&bytes)
}

/// The parameters of a well-formed X509-SVID for these URI SANs, valid
/// from a minute ago for an hour; tests then break one thing.
pub(crate) fn leaf_params(uris: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = uris
        .iter()
        .map(|uri| SanType::URI(Ia5String::try_from(*uri).unwrap()))
        .collect();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::hours(1);
    params
}
