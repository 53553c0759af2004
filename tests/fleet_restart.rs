//! A fleet restarting behind one address gets through under the default
//! limits: 200 agents (under the per-address connection cap of 256) attest
//! at once, then renew at once, and every one of them succeeds on its
//! first try.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use sigil::client::{CaClient, ClientIdentity};

const FLEET: usize = 200;

#[test]
fn two_hundred_agents_behind_one_address_attest_and_renew_at_once_under_the_default_limits() {
    let dir = DataDir::init();
    let server = dir.start();
    let tokens: Vec<String> = (0..FLEET)
        .map(|index| server.token(&format!("spiffe://example.org/agents/fleet-{index}")))
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let attested: Vec<(Value, rcgen::KeyPair)> = runtime.block_on(async {
        let tasks: Vec<_> = tokens
            .into_iter()
            .map(|token| {
                let client = server.anonymous();
                tokio::spawn(async move {
                    let (key, csr) = p256_csr();
                    let body = json!({
                        "csr": csr,
                        "attestation": {"type": "join_token", "token": token},
                    });
                    let response = client.post_json("/v1/svid", &body).await.unwrap();
                    assert_eq!(
                        response.status,
                        200,
                        "{}",
                        String::from_utf8_lossy(&response.body)
                    );
                    (response.json::<Value>().unwrap(), key)
                })
            })
            .collect();
        let mut attested = Vec::new();
        for task in tasks {
            attested.push(task.await.unwrap());
        }
        attested
    });

    let renewed = runtime.block_on(async {
        let tasks: Vec<_> = attested
            .into_iter()
            .map(|(svid, key)| {
                let identity = ClientIdentity {
                    chain_pem: svid["cert_chain_pem"].as_str().unwrap(),
                    key_pem: &key.serialize_pem(),
                };
                let client =
                    CaClient::new(&server.url, &server.bundle_pem, Some(identity)).unwrap();
                tokio::spawn(async move {
                    let response = client
                        .post_json("/v1/renew", &json!({"csr": p256_csr().1}))
                        .await
                        .unwrap();
                    assert_eq!(
                        response.status,
                        200,
                        "{}",
                        String::from_utf8_lossy(&response.body)
                    );
                })
            })
            .collect();
        let mut renewed = 0;
        for task in tasks {
            task.await.unwrap();
            renewed += 1;
        }
        renewed
    });
    assert_eq!(renewed, FLEET);
}
