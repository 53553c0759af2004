//! The admin client talks only to the CA itself: a server holding some other
//! valid SVID of the trust domain, even one bound to the CA's address, is
//! refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use serde_json::json;
use sigil::client::CaClient;

#[test]
fn an_agent_svid_bound_to_the_cas_address_cannot_impersonate_the_ca() {
    let dir = DataDir::init();
    let server = dir.start();
    // The API refuses to bind the CA's own names to a workload, so make the
    // impostor's SVID the way a thief of the issuing key would.
    let refused = block_on(server.admin().post_json(
        "/admin/v1/join-tokens",
        &json!({"spiffe_id": "spiffe://example.org/agents/mallory", "dns_names": ["localhost"]}),
    ))
    .unwrap();
    assert_error(&refused, 400, "invalid_request");
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &dir.read("ca/issuing.pem"),
        rcgen::KeyPair::from_pem(&dir.read("ca/issuing.key")).unwrap(),
    )
    .unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params.subject_alt_names.push(rcgen::SanType::URI(
        "spiffe://example.org/agents/mallory".try_into().unwrap(),
    ));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let leaf = params.signed_by(&key, &issuer).unwrap();
    let chain = vec![
        leaf.der().to_vec(),
        chain_der(&dir.read("ca/issuing.pem"))[0].clone(),
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let impostor = runtime.block_on(async {
        let config =
            rustls::ServerConfig::builder_with_provider(sigil::crypto_provider::crypto_provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    chain.into_iter().map(Into::into).collect(),
                    rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
                )
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = acceptor.accept(tcp).await;
            }
        });
        addr
    });
    let url = format!("https://127.0.0.1:{}", impostor.port());

    let client = CaClient::new(&url, &dir.bundle_pem(), None).unwrap();
    let error = runtime.block_on(client.get("/healthz")).unwrap_err();
    assert!(format!("{error:#}").contains("TLS handshake"), "{error:#}");

    let cli = sigil(&[
        "token",
        "create",
        "--data-dir",
        dir.arg(),
        "--ca",
        &url,
        "--spiffe-id",
        "spiffe://example.org/agents/x",
    ]);
    assert!(
        !cli.status.success(),
        "the CLI sent its admin credential to an impostor"
    );

    // The real CA, at the same kind of address, is accepted.
    let real = CaClient::new(&server.url, &dir.bundle_pem(), None).unwrap();
    assert_eq!(runtime.block_on(real.get("/healthz")).unwrap().status, 200);
}
