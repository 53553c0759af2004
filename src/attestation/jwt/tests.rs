//! The attestor against tokens signed here with ring (ES256, EdDSA):
//! every check refuses what it must, and accepts a good token.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::config::{JwksConfig, JwtAttestorConfig, OneOrMany};
use super::*;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An ES256 signer and its JWK.
struct Es256 {
    key: EcdsaKeyPair,
    kid: String,
}

impl Es256 {
    fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Self {
            key,
            kid: kid.to_owned(),
        }
    }

    fn jwk(&self) -> Value {
        let point = self.key.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig",
               "x": b64(&point[1..33]), "y": b64(&point[33..65])})
    }

    fn sign(&self, header: Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64(signature.as_ref()))
    }

    fn token(&self, claims: &Value) -> String {
        self.sign(
            json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }
}

fn namespace() -> Namespace {
    Namespace::new(&"example.org".parse().unwrap())
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn k8s_claims() -> Value {
    json!({
        "iss": "https://kubernetes.default.svc",
        "aud": ["sigil"],
        "sub": "system:serviceaccount:agents:support-bot",
        "exp": now() + 600, "iat": now() - 10, "nbf": now() - 10,
        "jti": "0c5f3d7e-1",
        "kubernetes.io": {"namespace": "agents", "serviceaccount": {"name": "support-bot"}}
    })
}

async fn attestor(dir: &Path, jwks: Value, algorithms: &[&str]) -> JwtAttestor {
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
    let config = JwtAttestorConfig {
        name: "k8s".to_owned(),
        issuer: "https://kubernetes.default.svc".to_owned(),
        jwks: JwksConfig {
            file: Some("jwks.json".into()),
            url: None,
            refresh: None,
            ca_file: None,
        },
        audiences: vec!["sigil".to_owned()],
        algorithms: algorithms.iter().map(|a| (*a).to_owned()).collect(),
        spiffe_id: "spiffe://example.org/k8s/{/kubernetes.io/namespace}/sa/{/kubernetes.io/serviceaccount/name}".to_owned(),
        require: BTreeMap::from([(
            "/kubernetes.io/namespace".to_owned(),
            OneOrMany::Many(vec!["agents".to_owned(), "tools".to_owned()]),
        )]),
        max_ttl: None,
        require_jti: true,
    };
    JwtAttestor::load(&config, dir, &namespace()).await.unwrap()
}

async fn refused(attestor: &JwtAttestor, token: &str) -> &'static str {
    attestor
        .attest(token, &namespace(), OffsetDateTime::now_utc())
        .await
        .unwrap_err()
        .reason
}

#[tokio::test]
async fn a_good_es256_token_maps_to_the_templated_id() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Es256::new("k1");
    let attestor = attestor(dir.path(), json!({"keys": [signer.jwk()]}), &["ES256"]).await;
    let attested = attestor
        .attest(
            &signer.token(&k8s_claims()),
            &namespace(),
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    assert_eq!(
        attested.spiffe_id.as_str(),
        "spiffe://example.org/k8s/agents/sa/support-bot"
    );
    assert_eq!(attested.jti.as_deref(), Some("0c5f3d7e-1"));
    assert_eq!(
        attested.subject.as_deref(),
        Some("system:serviceaccount:agents:support-bot")
    );
}

#[tokio::test]
async fn an_eddsa_token_verifies_with_an_okp_key() {
    let dir = tempfile::tempdir().unwrap();
    let rng = SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let jwk =
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(key.public_key().as_ref())});
    let attestor = attestor(dir.path(), json!({"keys": [jwk]}), &["EdDSA"]).await;
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "EdDSA", "kid": "ed"}).to_string().as_bytes()),
        b64(k8s_claims().to_string().as_bytes())
    );
    let token = format!("{input}.{}", b64(key.sign(input.as_bytes()).as_ref()));
    attestor
        .attest(&token, &namespace(), OffsetDateTime::now_utc())
        .await
        .unwrap();
}

#[tokio::test]
async fn every_check_refuses_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Es256::new("k1");
    let attestor = attestor(dir.path(), json!({"keys": [signer.jwk()]}), &["ES256"]).await;
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = k8s_claims();
        change(&mut claims);
        signer.token(&claims)
    };
    let cases: Vec<(&str, String)> = vec![
        ("jwt wrong audience", with(&|c| c["aud"] = json!(["other"]))),
        (
            "jwt wrong issuer",
            with(&|c| c["iss"] = json!("https://evil")),
        ),
        ("jwt expired", with(&|c| c["exp"] = json!(now() - 120))),
        (
            "jwt not yet valid",
            with(&|c| c["nbf"] = json!(now() + 600)),
        ),
        (
            "jwt not yet valid",
            with(&|c| c["iat"] = json!(now() + 600)),
        ),
        (
            "jwt without jti",
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        (
            "jwt requirement not met",
            with(&|c| c["kubernetes.io"]["namespace"] = json!("kube-system")),
        ),
        (
            "jwt claim not a path segment",
            with(&|c| c["kubernetes.io"]["serviceaccount"]["name"] = json!("a/b")),
        ),
        (
            "jwt claim not a path segment",
            with(&|c| c["kubernetes.io"]["serviceaccount"]["name"] = json!("..")),
        ),
        (
            "jwt claim not a path segment",
            with(&|c| c["kubernetes.io"]["serviceaccount"]["name"] = json!("a%2fb")),
        ),
        ("malformed jwt", "a.b".to_owned()),
        ("oversized jwt", "a".repeat(jose::MAX_TOKEN_LEN + 1)),
    ];
    for (reason, token) in cases {
        assert_eq!(refused(&attestor, &token).await, reason, "{reason}");
    }
}

#[tokio::test]
async fn forged_and_confused_signatures_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Es256::new("k1");
    let attestor = attestor(dir.path(), json!({"keys": [signer.jwk()]}), &["ES256"]).await;
    let good = signer.token(&k8s_claims());
    let (input, _) = good.rsplit_once('.').unwrap();

    // Another key's signature under our kid.
    let other = Es256::new("k1");
    assert_eq!(
        refused(&attestor, &other.token(&k8s_claims())).await,
        "bad jwt signature"
    );
    // alg none, with or without a signature.
    let none = signer.sign(json!({"alg": "none", "kid": "k1"}), &k8s_claims());
    assert_eq!(refused(&attestor, &none).await, "jwt algorithm not allowed");
    let (none_input, _) = none.rsplit_once('.').unwrap();
    assert_eq!(
        refused(&attestor, &format!("{none_input}.")).await,
        "jwt algorithm not allowed"
    );
    // HS256 keyed with the public key: the classic confusion.
    let header = b64(json!({"alg": "HS256", "kid": "k1"}).to_string().as_bytes());
    let payload = b64(k8s_claims().to_string().as_bytes());
    let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, signer.key.public_key().as_ref());
    let mac = ring::hmac::sign(&hmac_key, format!("{header}.{payload}").as_bytes());
    let hs256 = format!("{header}.{payload}.{}", b64(mac.as_ref()));
    assert_eq!(
        refused(&attestor, &hs256).await,
        "jwt algorithm not allowed"
    );
    // An unknown kid.
    let stranger = Es256::new("k2");
    assert_eq!(
        refused(&attestor, &stranger.token(&k8s_claims())).await,
        "jwt unknown key"
    );
    // A flipped bit in the signature.
    let mut bytes = URL_SAFE_NO_PAD
        .decode(good.rsplit_once('.').unwrap().1)
        .unwrap();
    bytes[0] ^= 1;
    assert_eq!(
        refused(&attestor, &format!("{input}.{}", b64(&bytes))).await,
        "bad jwt signature"
    );
}

#[tokio::test]
async fn configs_that_would_weaken_the_checks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let signer = Es256::new("k1");
    std::fs::write(
        dir.path().join("jwks.json"),
        json!({"keys": [signer.jwk()]}).to_string(),
    )
    .unwrap();
    let base = JwtAttestorConfig {
        name: "k8s".to_owned(),
        issuer: "https://kubernetes.default.svc".to_owned(),
        jwks: JwksConfig {
            file: Some("jwks.json".into()),
            url: None,
            refresh: None,
            ca_file: None,
        },
        audiences: vec!["sigil".to_owned()],
        algorithms: vec!["ES256".to_owned()],
        spiffe_id: "spiffe://example.org/k8s/{/sub}".to_owned(),
        require: BTreeMap::new(),
        max_ttl: None,
        require_jti: true,
    };
    let ns = namespace();
    let mut bad = vec![];
    for alg in ["none", "HS256", "HS512", "XX1"] {
        let mut config = base.clone();
        config.algorithms = vec![alg.to_owned()];
        bad.push(config);
    }
    let mut missing = base.clone();
    missing.jwks.file = Some("nope.json".into());
    bad.push(missing);
    let mut http = base.clone();
    http.jwks = JwksConfig {
        file: None,
        url: Some("http://idp/jwks".to_owned()),
        refresh: None,
        ca_file: None,
    };
    bad.push(http);
    let mut reserved = base.clone();
    reserved.spiffe_id = "spiffe://example.org/{/sub}/x".to_owned();
    bad.push(reserved);
    for config in bad {
        assert!(
            JwtAttestor::load(&config, dir.path(), &ns).await.is_err(),
            "{config:?}"
        );
    }
    JwtAttestor::load(&base, dir.path(), &ns).await.unwrap();
}
