//! CSRs that ask for more than a leaf — CA:true, a path length, name
//! constraints, a hundred SANs, another trust domain's or the CA's own
//! identity, extra key usages — made with `openssl req -addext` as an
//! attacker would. None is refused: the CA takes the CSR's public key
//! alone and issues its own leaf profile for the token's identity.

use crate::common::*;
use crate::support::*;

/// Redeems a token for [`AGENT_ID`] with a P-256 CSR made with these extra
/// `openssl req` arguments, and checks the leaf against the profile.
fn issued_despite(addext: &[&str]) {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token(AGENT_ID);
    let csr = openssl_csr(dir.temp.path(), "asking", P256, addext);
    let text = run_openssl(
        dir.temp.path(),
        &["req", "-in", "asking.csr", "-noout", "-text"],
    );
    assert!(
        text.contains("Requested Extensions"),
        "the CSR really asks: {text}"
    );
    let response = server.redeem(&token, &csr);
    assert_sigil_leaf(&dir, &response, AGENT_ID, &csr);
}

#[test]
fn csr_asking_for_ca_true_gets_a_leaf() {
    issued_despite(&[
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
}

#[test]
fn csr_asking_for_a_path_length_gets_a_leaf_without_one() {
    issued_despite(&["-addext", "basicConstraints=critical,CA:TRUE,pathlen:7"]);
}

#[test]
fn csr_asking_for_name_constraints_gets_none() {
    issued_despite(&[
        "-addext",
        "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext",
        "nameConstraints=critical,permitted;URI:.evil.org,permitted;DNS:.evil.org,excluded;URI:example.org",
    ]);
}

#[test]
fn csr_asking_for_a_hundred_sans_gets_only_its_spiffe_id() {
    let mut names: Vec<String> = (0..96).map(|n| format!("DNS:host{n}.evil.org")).collect();
    names.extend([
        "IP:127.0.0.1".to_owned(),
        "email:root@evil.org".to_owned(),
        "URI:https://evil.org/".to_owned(),
        "URI:spiffe://example.org/agents/other".to_owned(),
    ]);
    assert_eq!(names.len(), 100);
    let san = format!("subjectAltName={}", names.join(","));
    issued_despite(&["-addext", &san]);
}

#[test]
fn csr_asking_for_a_spiffe_id_of_another_trust_domain_gets_the_tokens() {
    issued_despite(&[
        "-addext",
        "subjectAltName=critical,URI:spiffe://evil.org/agents/target",
    ]);
}

#[test]
fn csr_asking_for_the_cas_own_admin_identity_gets_the_tokens() {
    issued_despite(&[
        "-addext",
        "subjectAltName=URI:spiffe://example.org/sigil/admin/admin",
    ]);
}

#[test]
fn csr_asking_for_extra_key_usages_gets_the_profiles() {
    issued_despite(&[
        "-addext",
        "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign,cRLSign",
        "-addext",
        "extendedKeyUsage=serverAuth,codeSigning,OCSPSigning,emailProtection,anyExtendedKeyUsage",
    ]);
}

#[test]
fn renewal_csr_asking_for_ca_true_and_another_identity_gets_a_leaf() {
    let dir = DataDir::init();
    let server = dir.start();
    let agent = attest(&server, AGENT_ID);
    let csr = openssl_csr(
        dir.temp.path(),
        "asking",
        P256,
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "subjectAltName=URI:spiffe://example.org/sigil/admin/admin",
        ],
    );
    let response = renew_with(&server, &agent, &serde_json::json!({"csr": csr}));
    assert_sigil_leaf(&dir, &response, AGENT_ID, &csr);
}
