//! Revocation as relying parties see it: after an admin revokes, the CRLs
//! the CA publishes make openssl and rustls-webpki refuse the revoked SVID
//! and accept the others.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use serde_json::{Value, json};
use webpki::{BorrowedCertRevocationList, CertRevocationList, RevocationOptionsBuilder};

struct Svid {
    chain_pem: String,
    serial: String,
}

fn svid(server: &Server, spiffe_id: &str) -> Svid {
    let token = server.token(spiffe_id);
    let (_, csr) = p256_csr();
    let body: Value = server.redeem(&token, &csr).json().unwrap();
    Svid {
        chain_pem: body["cert_chain_pem"].as_str().unwrap().to_owned(),
        serial: body["serial"].as_str().unwrap().to_owned(),
    }
}

fn revoke(server: &Server, body: Value) -> sigil::client::Response {
    block_on(server.admin().post_json("/admin/v1/revocations", &body)).unwrap()
}

fn crls(server: &Server) -> (u64, String) {
    let response = block_on(server.anonymous().get("/v1/crls")).unwrap();
    assert_eq!(response.status, 200);
    let number = response.headers["sigil-crl-number"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (number, String::from_utf8(response.body.to_vec()).unwrap())
}

fn openssl_accepts(dir: &DataDir, svid: &Svid, crls_pem: &str) -> (bool, String) {
    openssl_verify_chain(dir, &svid.chain_pem, crls_pem.as_bytes())
}

fn webpki_verdict(dir: &DataDir, svid: &Svid, crls_pem: &str) -> Result<(), webpki::Error> {
    let roots = chain_der(&dir.bundle_pem());
    let anchors = [
        webpki::anchor_from_trusted_cert(&CertificateDer::from(roots[0].as_slice()))
            .unwrap()
            .to_owned(),
    ];
    let chain = chain_der(&svid.chain_pem);
    let leaf = CertificateDer::from(chain[0].as_slice());
    let intermediates = [CertificateDer::from(chain[1].clone())];
    let crl_ders: Vec<CertificateRevocationListDer<'static>> =
        chain_der(crls_pem).into_iter().map(Into::into).collect();
    let crls: Vec<CertRevocationList<'_>> = crl_ders
        .iter()
        .map(|der| BorrowedCertRevocationList::from_der(der).unwrap().into())
        .collect();
    let crl_refs: Vec<&CertRevocationList<'_>> = crls.iter().collect();
    let revocation = RevocationOptionsBuilder::new(&crl_refs)
        .unwrap()
        .with_status_policy(webpki::UnknownStatusPolicy::Deny)
        .with_expiration_policy(webpki::ExpirationPolicy::Enforce)
        .build();
    webpki::EndEntityCert::try_from(&leaf)
        .unwrap()
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            UnixTime::now(),
            webpki::KeyUsage::client_auth(),
            Some(revocation),
            None,
        )
        .map(|_| ())
}

#[test]
fn a_revoked_svid_is_refused_by_openssl_and_webpki_and_the_other_accepted() {
    let dir = DataDir::init();
    let server = dir.start();
    let revoked = svid(&server, "spiffe://example.org/agents/stolen");
    let kept = svid(&server, "spiffe://example.org/agents/fine");
    let (before, crls_before) = crls(&server);
    assert!(openssl_accepts(&dir, &revoked, &crls_before).0);
    assert!(webpki_verdict(&dir, &revoked, &crls_before).is_ok());

    let response = revoke(
        &server,
        json!({"serial": revoked.serial, "reason": "keyCompromise"}),
    );
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let body: Value = response.json().unwrap();
    assert_eq!(body["revoked"], json!([revoked.serial]));

    let (after, crls_after) = crls(&server);
    assert!(after > before, "CRL number {after} is not above {before}");
    let (ok, output) = openssl_accepts(&dir, &revoked, &crls_after);
    assert!(!ok && output.contains("revoked"), "{output}");
    let (ok, output) = openssl_accepts(&dir, &kept, &crls_after);
    assert!(ok, "{output}");
    assert_eq!(
        webpki_verdict(&dir, &revoked, &crls_after),
        Err(webpki::Error::CertRevoked)
    );
    assert_eq!(webpki_verdict(&dir, &kept, &crls_after), Ok(()));

    // Revoking again is idempotent: no new CRL, no new audit record, and
    // the first reason stands.
    let audit_len = |server: &Server| {
        let body: Value = block_on(server.admin().get("/admin/v1/audit?limit=1000"))
            .unwrap()
            .json()
            .unwrap();
        body["events"].as_array().unwrap().len()
    };
    let records = audit_len(&server);
    let again = revoke(
        &server,
        json!({"serial": revoked.serial, "reason": "superseded"}),
    );
    assert_eq!(again.status, 200);
    assert_eq!(crls(&server).0, after);
    assert_eq!(audit_len(&server), records);
    let listed: Value = block_on(server.admin().get("/admin/v1/certificates?status=revoked"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["certificates"][0]["reason"], "keyCompromise");
}

#[test]
fn revoking_an_identity_revokes_all_its_svids_and_bans_it_until_the_ban_is_lifted() {
    let dir = DataDir::init();
    let server = dir.start();
    let id = "spiffe://example.org/agents/rogue";
    let first = svid(&server, id);
    let second = svid(&server, id);
    let spare_token = server.token(id);

    let response = revoke(
        &server,
        json!({"spiffe_id": id, "reason": "privilegeWithdrawn"}),
    );
    assert_eq!(response.status, 200);
    let mut revoked: Vec<String> =
        serde_json::from_value(response.json::<Value>().unwrap()["revoked"].clone()).unwrap();
    revoked.sort();
    let mut expected = vec![first.serial.clone(), second.serial.clone()];
    expected.sort();
    assert_eq!(revoked, expected);
    let (_, crls_pem) = crls(&server);
    assert!(!openssl_accepts(&dir, &first, &crls_pem).0);
    assert!(!openssl_accepts(&dir, &second, &crls_pem).0);

    // No new certificate by any path while banned.
    let admin = server.admin();
    let create =
        block_on(admin.post_json("/admin/v1/join-tokens", &json!({"spiffe_id": id}))).unwrap();
    assert_error(&create, 403, "banned");
    let (_, csr) = p256_csr();
    assert_error(&server.redeem(&spare_token, &csr), 403, "banned");

    let listed: Value = block_on(admin.get(&format!(
        "/admin/v1/certificates?spiffe_id={}&status=revoked",
        id.replace(':', "%3A").replace('/', "%2F")
    )))
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(listed["certificates"].as_array().unwrap().len(), 2);
    assert_eq!(listed["certificates"][0]["reason"], "privilegeWithdrawn");

    let path = format!(
        "/admin/v1/bans/{}",
        id.replace(':', "%3A").replace('/', "%2F")
    );
    let lifted = block_on(admin.request(http::Method::DELETE, &path, None, Vec::new())).unwrap();
    assert_eq!(lifted.status, 204);
    let again = block_on(admin.request(http::Method::DELETE, &path, None, Vec::new())).unwrap();
    assert_error(&again, 404, "not_found");
    assert_eq!(
        server.redeem(&spare_token, &csr).status,
        200,
        "the spare token works again"
    );
}

#[test]
fn a_revoked_admin_credential_is_refused_as_revoked() {
    let dir = DataDir::init();
    let server = dir.start();
    let (chain, key, out) = dir.admin_credential("second", &[]);
    let serial = {
        let der = chain_der(&chain);
        let (_, leaf) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
        hex::encode(leaf.raw_serial())
    };
    assert_eq!(revoke(&server, json!({"serial": serial})).status, 200);
    let second = server.client_as(&chain, &key);
    let response = block_on(second.post_json(
        "/admin/v1/join-tokens",
        &json!({"spiffe_id": "spiffe://example.org/agents/x"}),
    ))
    .unwrap();
    assert_error(&response, 403, "revoked");

    // Banning an admin identity also stops minting it locally.
    let banned = revoke(
        &server,
        json!({"spiffe_id": "spiffe://example.org/sigil/admin/second"}),
    );
    assert_eq!(banned.status, 200);
    let refused = sigil(&[
        "admin",
        "credential",
        "--data-dir",
        dir.arg(),
        "--name",
        "second",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("banned"), "{}", stderr(&refused));
}

#[test]
fn revocation_requests_are_checked_and_change_nothing_when_refused() {
    let dir = DataDir::init();
    let server = dir.start();
    let (before, _) = crls(&server);
    for (body, status, code) in [
        (json!({}), 400, "invalid_request"),
        (
            json!({"serial": "00", "spiffe_id": "spiffe://example.org/a"}),
            400,
            "invalid_request",
        ),
        (json!({"serial": "not hex"}), 400, "invalid_request"),
        (
            json!({"serial": "7f000000000000000000000000000001"}),
            404,
            "not_found",
        ),
        (
            json!({"spiffe_id": "spiffe://other.org/a"}),
            400,
            "invalid_spiffe_id",
        ),
        (
            json!({"spiffe_id": "spiffe://example.org/sigil/server"}),
            403,
            "reserved_identity",
        ),
        (
            json!({"spiffe_id": "spiffe://example.org/a", "reason": "certificateHold"}),
            400,
            "invalid_request",
        ),
    ] {
        assert_error(&revoke(&server, body.clone()), status, code);
    }
    let agent = svid(&server, "spiffe://example.org/agents/not-admin");
    let (key, _) = p256_csr();
    let _ = key;
    let anonymous = block_on(
        server
            .anonymous()
            .post_json("/admin/v1/revocations", &json!({"serial": agent.serial})),
    )
    .unwrap();
    assert_error(&anonymous, 401, "client_certificate_required");
    assert_eq!(crls(&server).0, before);
    assert_eq!(dir.count("revocations"), 0);
    assert_eq!(dir.count("bans"), 0);
}

#[test]
fn crl_endpoints_serve_der_with_etags_and_answer_if_none_match() {
    let dir = DataDir::init();
    let server = dir.start();
    let client = server.anonymous();
    let active = block_on(client.get("/v1/crl")).unwrap();
    assert_eq!(active.status, 200);
    assert_eq!(active.content_type.as_deref(), Some("application/pkix-crl"));
    let etag = active.headers["etag"].to_str().unwrap().to_owned();
    assert!(
        active.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("no-cache")
    );

    let chain = chain_der(&dir.read("admin/svid.pem"));
    let (_, issuing) = x509_parser::parse_x509_certificate(&chain[1]).unwrap();
    let key_id = issuing
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(ski) => {
                Some(hex::encode(ski.0))
            }
            _ => None,
        })
        .unwrap();
    let by_issuer = block_on(client.get(&format!("/v1/crl/{key_id}"))).unwrap();
    assert_eq!(by_issuer.body, active.body);
    let cached = block_on(client.get_with("/v1/crl", &[("if-none-match", &etag)])).unwrap();
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    assert_error(
        &block_on(client.get("/v1/crl/00ff")).unwrap(),
        404,
        "not_found",
    );
    assert_error(
        &block_on(client.get("/v1/crls?after=x")).unwrap(),
        400,
        "invalid_request",
    );

    // The CRL verifies with openssl against its issuer.
    std::fs::write(dir.temp.path().join("crl.der"), &active.body).unwrap();
    std::fs::write(
        dir.temp.path().join("chain.pem"),
        dir.read("admin/svid.pem"),
    )
    .unwrap();
    let out = openssl(
        &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"],
        dir.temp.path(),
    );
    let text = stdout(&out);
    assert!(text.contains("CRL Number"), "{text}");
    assert!(text.contains("Authority Key Identifier"), "{text}");
    assert!(!text.contains("Issuing Distribution Point"), "{text}");
}

#[test]
fn a_waiting_long_poll_returns_the_crl_of_a_revocation_made_while_it_waits() {
    let dir = DataDir::init();
    let server = dir.start();
    let target = svid(&server, "spiffe://example.org/agents/watched");
    let (before, _) = crls(&server);

    // Nothing newer: the poll times out with 304.
    let idle = block_on(
        server
            .anonymous()
            .get(&format!("/v1/crls?after={before}&wait=1")),
    )
    .unwrap();
    assert_eq!(idle.status, 304);

    let client = server.anonymous();
    let url = format!("/v1/crls?after={before}&wait=30");
    let poll = std::thread::spawn(move || block_on(client.get(&url)).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        !poll.is_finished(),
        "the poll answered before anything changed"
    );
    assert_eq!(
        revoke(&server, json!({"serial": target.serial})).status,
        200
    );
    let answer = poll.join().unwrap();
    assert_eq!(answer.status, 200);
    let number: u64 = answer.headers["sigil-crl-number"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(number > before);
    let (ok, output) = openssl_accepts(&dir, &target, &String::from_utf8_lossy(&answer.body));
    assert!(!ok && output.contains("revoked"), "{output}");
}

#[test]
fn crl_numbers_keep_growing_across_restarts() {
    let dir = DataDir::init();
    let server = dir.start();
    let first = svid(&server, "spiffe://example.org/agents/a");
    assert_eq!(revoke(&server, json!({"serial": first.serial})).status, 200);
    let (before, _) = crls(&server);
    assert!(server.terminate().success());

    let server = dir.start();
    let (after_restart, pem_text) = crls(&server);
    assert!(after_restart >= before);
    assert!(
        !openssl_accepts(&dir, &first, &pem_text).0,
        "the revocation survived the restart"
    );
    let second = svid(&server, "spiffe://example.org/agents/b");
    assert_eq!(
        revoke(&server, json!({"serial": second.serial})).status,
        200
    );
    assert!(crls(&server).0 > after_restart);
}

#[test]
fn the_cli_revokes_lists_and_unbans() {
    let dir = DataDir::init();
    let server = dir.start();
    let one = svid(&server, "spiffe://example.org/agents/cli-one");
    let _two = svid(&server, "spiffe://example.org/agents/cli-two");

    let revoked = sigil(&[
        "revoke",
        "--data-dir",
        dir.arg(),
        "--serial",
        &one.serial,
        "--reason",
        "superseded",
    ]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert_eq!(stdout(&revoked).trim(), one.serial);

    let listed = sigil(&["certs", "list", "--data-dir", dir.arg(), "--revoked"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let table = stdout(&listed);
    assert!(
        table.contains(&one.serial) && table.contains("superseded"),
        "{table}"
    );
    assert!(!table.contains("cli-two"), "{table}");

    let live = sigil(&[
        "certs",
        "list",
        "--data-dir",
        dir.arg(),
        "--spiffe-id",
        "spiffe://example.org/agents/cli-two",
        "--json",
    ]);
    let body: Value = serde_json::from_str(&stdout(&live)).unwrap();
    assert_eq!(body["certificates"].as_array().unwrap().len(), 1);

    let banned = sigil(&[
        "revoke",
        "--data-dir",
        dir.arg(),
        "--spiffe-id",
        "spiffe://example.org/agents/cli-two",
    ]);
    assert!(banned.status.success(), "{}", stderr(&banned));
    let unban = sigil(&[
        "unban",
        "--data-dir",
        dir.arg(),
        "--spiffe-id",
        "spiffe://example.org/agents/cli-two",
    ]);
    assert!(unban.status.success(), "{}", stderr(&unban));
    let again = sigil(&[
        "unban",
        "--data-dir",
        dir.arg(),
        "--spiffe-id",
        "spiffe://example.org/agents/cli-two",
    ]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not_found"), "{}", stderr(&again));

    let both = sigil(&[
        "revoke",
        "--data-dir",
        dir.arg(),
        "--serial",
        &one.serial,
        "--spiffe-id",
        "spiffe://example.org/a",
    ]);
    assert!(
        !both.status.success(),
        "--serial and --spiffe-id together are refused"
    );
}

#[test]
fn the_admin_routes_refuse_an_agent_and_odd_paths_and_queries_get_json() {
    let dir = DataDir::init();
    let server = dir.start();
    let token = server.token("spiffe://example.org/agents/nosy");
    let (key, csr) = p256_csr();
    let issued: Value = server.redeem(&token, &csr).json().unwrap();
    let agent = server.client_as(
        issued["cert_chain_pem"].as_str().unwrap(),
        &key.serialize_pem(),
    );
    let revoke = block_on(agent.post_json(
        "/admin/v1/revocations",
        &json!({"serial": issued["serial"]}),
    ))
    .unwrap();
    assert_error(&revoke, 403, "forbidden");
    for path in ["/admin/v1/certificates", "/admin/v1/audit"] {
        assert_error(&block_on(agent.get(path)).unwrap(), 403, "forbidden");
    }
    let unban = block_on(agent.request(
        http::Method::DELETE,
        "/admin/v1/bans/spiffe%3A%2F%2Fexample.org%2Fa",
        None,
        Vec::new(),
    ))
    .unwrap();
    assert_error(&unban, 403, "forbidden");

    let admin = server.admin();
    let bad_path =
        block_on(admin.request(http::Method::DELETE, "/admin/v1/bans/%FF", None, Vec::new()))
            .unwrap();
    assert_error(&bad_path, 400, "invalid_request");
    assert_error(
        &block_on(server.anonymous().get("/v1/crl/%FF")).unwrap(),
        400,
        "invalid_request",
    );
    let far: Value = block_on(admin.get("/admin/v1/audit?after=18446744073709551615"))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(far["events"], json!([]));
    let own = revoke_as(
        &server,
        json!({"spiffe_id": "spiffe://example.org/sigil/admin/admin"}),
    );
    assert_error(&own, 403, "forbidden");
    assert_eq!(dir.count("bans"), 0);
}

fn revoke_as(server: &Server, body: Value) -> sigil::client::Response {
    block_on(server.admin().post_json("/admin/v1/revocations", &body)).unwrap()
}
